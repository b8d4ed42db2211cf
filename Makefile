# The two commands a new user needs: `make run` (the whole pipeline on the shipped data) and
# `make test` (the test suite). Both create the environment from requirements.lock first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-all run test notebook tensorboard schema-candidate lock clean-outputs bench

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

.PHONY: run-beam schedule
# The same pipeline on TFX's Beam orchestrator; PIPELINE_BEAM_PROFILE picks where Beam work runs.
run-beam: install
	$(PY) pipeline/runners/beam_runner.py

# Beam runs whenever a new span arrives (PIPELINE_INPUT_PATTERN='span-{SPAN}/*.csv'); see README.
schedule: install
	$(PY) -m pipeline.runners.scheduler
