# The two commands a new user needs: `make run` (the whole pipeline on the shipped data) and
# `make test` (the test suite). Both create the environment from requirements.lock first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-all run test notebook tensorboard schema-infer schema-candidate lock clean-outputs bench

install:
	@scripts/setup_env.sh requirements.lock

# The core environment plus the optional orchestrators (Airflow, Kubeflow Pipelines SDK, Luigi).
install-all:
	@scripts/setup_env.sh requirements-orchestrators.lock

run: install
	$(PY) pipeline/runners/local_runner.py

# install_os_packages.sh adds Chromium (the report test renders HTML headless); a no-op once present.
test: install-all
	@scripts/install_os_packages.sh
	$(PY) -m pytest

# The walkthrough notebook in JupyterLab; it writes under PIPELINE_NOTEBOOK_OUTPUT_ROOT (tfx_output/notebook).
notebook: install
	$(VENV)/bin/jupyter lab notebooks/pipeline_walkthrough.ipynb

# TensorBoard on the Trainer's logs of the newest run that trained (found in ML Metadata; PIPELINE_*
# variables choose the store, as for `make run`); TENSORBOARD_ARGS="--port 6007" or a run name to change.
tensorboard: install
	$(VENV)/bin/pipeline tensorboard $(TENSORBOARD_ARGS)

# A new task's schema before its first run: TFDV's statistics of the task's data (PIPELINE_TASK names the
# task), then its inference, written to the task's schema file only when that file does not exist yet.
schema-infer: install
	$(PY) scripts/infer_schema.py

# Write the newest SchemaGen inference next to the curated schema, with a diff, for review.
schema-candidate: install
	$(PY) scripts/update_schema.py

# Re-resolve requirements.in into requirements.lock (needs network; review the diff).
# The orchestrators lock is resolved first; the core lock is then constrained by it, so it is a subset.
lock: install
	$(VENV)/bin/uv pip compile requirements-orchestrators.in --python-version 3.10 -o requirements-orchestrators.lock
	$(VENV)/bin/uv pip compile requirements.in -c requirements-orchestrators.lock --python-version 3.10 -o requirements.lock

# Benchmark (not part of the tests; bench/README.md): ours against TFX's own taxi example on the same
# data, then ours on generated 150k and 1.5M-row inputs. BENCH_REPS and BENCH_SIZES adjust it.
BENCH_REPS ?= 3
BENCH_SIZES ?= 150k,1.5M
bench: install
	$(PY) -m bench.run compare --reps $(BENCH_REPS)
	$(PY) -m bench.run scale --sizes $(BENCH_SIZES)

clean-outputs:
	rm -rf tfx_output

# A local Flink (or Spark) cluster on loopback for the `flink` (`spark`) profile (docs/distributed-engines.md):
# `make cluster-up` starts it from the pinned artifacts (cluster/artifacts.lock) and prints the PIPELINE_*
# settings that point a run at it; `make cluster-down` stops every process by its id. CLUSTER_ARGS passes
# options on (other ports: CLUSTER_ARGS="--rest-port 9081"; `.venv/bin/python -m cluster up --help`).
ENGINE ?= flink
.PHONY: cluster-up cluster-down cluster-status
cluster-up: install
	$(PY) -m cluster up $(ENGINE) $(CLUSTER_ARGS)

cluster-down: install
	$(PY) -m cluster down $(ENGINE) $(CLUSTER_ARGS)

cluster-status: install
	$(PY) -m cluster status $(ENGINE) $(CLUSTER_ARGS)

.PHONY: run-beam schedule
# The same pipeline on TFX's Beam orchestrator; PIPELINE_BEAM_PROFILE picks where Beam work runs.
run-beam: install
	$(PY) pipeline/runners/beam_runner.py

# Beam runs whenever a new span arrives (PIPELINE_INPUT_PATTERN='span-{SPAN}/*.csv'); see docs/runners.md.
schedule: install
	$(PY) -m pipeline.runners.scheduler

# Continuous training and delivery (.github/workflows/continuous-training.yml and rollback.yml; docs/ci-cd.md).
# Each CI job calls one of these and tests/ci/ runs them as the jobs
# do, so the workflows hold no logic the tests do not reach. PIPELINE_* settings apply as for `make run`;
# CI_ARTIFACTS collects what the jobs upload.
CI_ARTIFACTS ?= tfx_output/ci
PIPELINE_CLI := $(VENV)/bin/pipeline
.PHONY: unit-test validate-data train check-blessing promote rollback

# The fast loop: every test but the real pipeline runs (the import contracts and the workflow checks too).
unit-test: install-all
	$(PY) -m pytest -m "not e2e"

# The pre-flight check and the pipeline up to the data gate on PIPELINE_DATA_ROOT, then the run's report
# (statistics, anomalies, schema). The runner's exit 1: the gate rejected the data (the report says why);
# its exit 2: the pre-flight check refused the input before anything ran, so there is no run to report.
validate-data: install
	@mkdir -p $(CI_ARTIFACTS)
	@$(PY) pipeline/runners/local_runner.py --validate-only; status=$$?; \
	if [ $$status -le 1 ]; then $(PIPELINE_CLI) report latest -o $(CI_ARTIFACTS)/validation-report.html || status=1; fi; \
	exit $$status

# The whole pipeline, then the run's HTML report and its summary (JSON), also when the gate stopped it.
train: install
	@mkdir -p $(CI_ARTIFACTS)
	@$(PY) pipeline/runners/local_runner.py; status=$$?; \
	if [ $$status -le 1 ]; then \
	  $(PIPELINE_CLI) report latest -o $(CI_ARTIFACTS)/run-report.html \
	  && $(PIPELINE_CLI) runs --limit 1 --format json > $(CI_ARTIFACTS)/run-summary.json || status=1; \
	fi; \
	exit $$status

# The newest run's metrics against the blessing thresholds as Markdown, into CI_ARTIFACTS and appended to
# $GITHUB_STEP_SUMMARY when set (the job's summary page); `pipeline blessing` exits 3 when the model was not
# blessed (or none was evaluated), and make fails with it.
check-blessing: install
	@mkdir -p $(CI_ARTIFACTS)
	$(PIPELINE_CLI) blessing latest > $(CI_ARTIFACTS)/blessing.md

# Publish a run's blessed model into the production serving directory (PIPELINE_PRODUCTION_MODEL_DIR): the run
# PROMOTION_RUN names (the one the training job judged and a person approved), else the newest. It and
# PROMOTION_REASON are read by the shell, never pasted into the command line.
promote: install
	$(PIPELINE_CLI) promote "$${PROMOTION_RUN:-latest}" --reason "$$PROMOTION_REASON"

# Return production to an earlier blessed model: ROLLBACK_VERSION (a serving version or model id; empty:
# the newest blessed model not serving now) and ROLLBACK_REASON, both read by the shell.
rollback: install
	$(PIPELINE_CLI) rollback --production $${ROLLBACK_VERSION:+"$$ROLLBACK_VERSION"} --reason "$$ROLLBACK_REASON"
