"""The make targets the CI/CD workflows call, run here as the jobs run them, on the 1,500-row sample.

One store serves the whole delivery story, in the order a repository lives it: data validated, a model
trained, gated and promoted (the run the gate named; promoted again, to nothing); a second model trained;
an evaluation with an unreachable blessing bound (the training job's failure path: `check-blessing` exits
non-zero with the reason and the table, and `promote` refuses); the second model promoted by its run's
name although a newer run exists; production rolled back with a reason; then data the gate rejects, and
input the pre-flight check refuses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.governance.blessing import EXIT_NOT_BLESSED
from pipeline.governance.runs import PROMOTION_TYPE, ROLLBACK_TYPE, list_rollbacks
from pipeline.guards.serving_dir import serving_versions
from pipeline.metadata.store import open_store
from tests.conftest import PROJECT_ROOT, small_run_env, write_rows
from tests.docs.commands import Command, documented

pytestmark = pytest.mark.e2e

# A reason no shell may interpret: make passes it to the command through the environment.
TRICKY_REASON = 'AUC fell "sharply"; $(touch INJECTED) `touch INJECTED` $$HOME'


@dataclasses.dataclass
class Step:
    target: str
    returncode: int  # make's: 2 whenever the command failed, which fails the job
    stdout: str
    stderr: str
    seconds: float
    artifacts: dict[str, str]  # the CI_ARTIFACTS files after the step, by name
    step_summary: str
    outputs: dict[str, str]  # what the step wrote to $GITHUB_OUTPUT


@dataclasses.dataclass
class Story:
    config: configs.PipelineConfig
    steps: dict[str, Step]
    production: list[list[str]]  # the production serving versions after each promotion or rollback
    workdir: Path
    production_lineage: str  # `pipeline lineage serving --production` after the rollback


def _outside_make(env: dict[str, str]) -> dict[str, str]:
    """`env` without what a running make passes to its children (under `make test` these tests are in one), so
    make here runs as a workflow step starts it: a top-level make, its messages unnumbered."""
    return {k: v for k, v in env.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}


def make(command: Command, env: dict[str, str], workdir: Path, label: str) -> Step:
    """A documented `make <target>` from the repository root, as a workflow step runs it (a top-level make),
    with its own step summary."""
    artifacts = workdir / label
    summary = workdir / f"{label}-step-summary.md"
    outputs = workdir / f"{label}-outputs.txt"
    env = {**env, "CI_ARTIFACTS": str(artifacts), "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
    start = time.monotonic()
    result = command.run(env, check=False)
    seconds = time.monotonic() - start
    files = {p.name: p.read_text() for p in artifacts.iterdir()} if artifacts.is_dir() else {}
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines()) if outputs.exists() else {}
    [_, target] = command.words
    return Step(target, result.returncode, result.stdout, result.stderr, seconds, files,
                summary.read_text() if summary.exists() else "", written)


@pytest.fixture(scope="module")
def story(tmp_path_factory, sample_data_dir, sample_rows) -> Story:
    workdir = tmp_path_factory.mktemp("ci")
    env = small_run_env(sample_data_dir, workdir / "output")
    config = configs.load_config(**configs.env_overrides(env))
    steps: dict[str, Step] = {}
    production = []
    # The commands docs/ci-cd.md shows for running the jobs by hand; the reasons are the test's.
    validate = documented("docs/ci-cd.md", "make validate-data")
    train, check = documented("docs/ci-cd.md", "make train && make check-blessing").steps
    promote = documented("docs/ci-cd.md", 'PROMOTION_REASON="by hand" make promote')
    rollback = documented("docs/ci-cd.md", 'ROLLBACK_REASON="AUC dropped on Mondays" make rollback')

    def step(label: str, command: Command, extra: dict[str, str] | None = None) -> Step:
        steps[label] = make(command, {**env, **(extra or {})}, workdir, label)
        if steps[label].target in ("promote", "rollback"):
            production.append(serving_versions(config.production_model_dir))
        return steps[label]

    def train_and_check(label: str, extra: dict[str, str] | None = None) -> None:
        """`make train && make check-blessing`: the check only after the training succeeded."""
        if step(f"train{label}", train, extra).returncode != 0:
            pytest.fail(f"make train failed:\n{steps[f'train{label}'].stderr[-4000:]}")
        step(f"check{label}", check, extra)

    step("validate", validate)
    train_and_check("")
    # The promotion job gets the judged run from the training job's outputs, as the workflow wires it.
    step("promote", promote.replace("by hand", "first"), {"PROMOTION_RUN": steps["check"].outputs.get("run", "?")})
    step("promote-again", promote)
    # A second model: more training steps, any change of the metric allowed.
    second = {"PIPELINE_TRAIN_STEPS": "80", "PIPELINE_BLESSING_MAX_DECREASE": "1.0"}
    step("train-second", train, second)
    # The same model judged again against a bound no model reaches: the Evaluator alone runs again.
    unreachable = {**second, "PIPELINE_BLESSING_LOWER_BOUND": "0.999"}
    train_and_check("-unblessed", unreachable)
    step("promote-unblessed", promote.replace("by hand", "must be refused"), unreachable)
    # The second run, approved while a newer (unblessed) run came in: promoted by its name.
    second_run = json.loads(steps["train-second"].artifacts["run-summary.json"])["runs"][0]["run"]
    step("promote-second", promote.replace("by hand", "second"), {**second, "PROMOTION_RUN": second_run})
    step("rollback", rollback.replace("AUC dropped on Mondays", TRICKY_REASON), {"ROLLBACK_VERSION": ""})
    production_lineage = documented("docs/ci-cd.md", ".venv/bin/pipeline lineage serving --production").run(env).stdout

    bad = [dict(row) for row in sample_rows]
    for row in bad[::10]:
        row["payment_type"] = "Bitcoin"
    bad_dir = write_rows(workdir / "bad-data" / "data.csv", bad).parent
    step("validate-rejected", validate, {"PIPELINE_DATA_ROOT": str(bad_dir)})
    step("check-rejected", check)
    empty_dir = workdir / "empty-data"
    empty_dir.mkdir()
    (empty_dir / "data.csv").write_text(",".join(sample_rows[0]) + "\n")
    step("validate-refused", validate, {"PIPELINE_DATA_ROOT": str(empty_dir)})
    print("make target seconds: " + ", ".join(f"{k} {v.seconds:.0f}" for k, v in steps.items()))
    return Story(config, steps, production, workdir, production_lineage)


def _command_status(step: Step) -> int:
    """The exit status of the command make ran ("make: *** [Makefile:12: train] Error 3"), 0 if it succeeded."""
    if step.returncode == 0:
        return 0
    found = re.search(rf"make: \*\*\* \[Makefile:\d+: {re.escape(step.target)}\] Error (\d+)", step.stderr)
    assert found, step.stderr[-3000:]
    return int(found.group(1))


def _ok(step: Step) -> None:
    assert step.returncode == 0, f"make {step.target} exited {step.returncode}\n{step.stdout[-4000:]}\n{step.stderr[-4000:]}"


def test_validate_data_runs_up_to_the_gate_and_reports_the_data(story):
    step = story.steps["validate"]
    _ok(step)
    for node in ("CsvExampleGen", "StatisticsGen", "ExampleValidator", "DataGate"):
        assert f"{node:<32} finished in " in step.stdout
    for node in ("Transform", "Trainer", "Evaluator", "Pusher", "SchemaGen"):
        assert node not in step.stdout
    assert "Blessed: not evaluated" in step.stdout and "Pushed: no" in step.stdout
    report = step.artifacts["validation-report.html"]
    assert "Data statistics" in report and "payment_type" in report
    assert "No anomalies against the curated schema." in report
    # The training run after it finds the validated components done.
    assert re.search(r"StatisticsGen\s+cached", story.steps["train"].stdout)


def test_train_writes_the_report_and_the_summary_and_the_gate_passes_a_blessed_model(story):
    train, check = story.steps["train"], story.steps["check"]
    _ok(train)
    assert {"run-report.html", "run-summary.json"} <= set(train.artifacts)
    [run] = json.loads(train.artifacts["run-summary.json"])["runs"]
    assert run["blessed"] is True and run["pushed_version"]
    assert f"Run {run['run']}" in train.artifacts["run-report.html"] and "BLESSED" in train.artifacts["run-report.html"]
    _ok(check)
    assert check.outputs == {"run": run["run"], "blessed": "true"}
    summary = check.step_summary
    assert summary == check.artifacts["blessing.md"] + "\n"
    assert summary.startswith(f"### Model blessed: run {run['run']} of chicago-taxi")
    assert re.search(r"^\| auc \| overall \| at least 0\.6 \| 0\.\d{4} \| - \| - \| pass \|$", summary, re.MULTILINE)
    assert re.search(r"^\| auc \| payment_type=Credit Card \| at least 0 \| 0\.\d{4} \| - \| - \| pass \|$", summary,
                     re.MULTILINE)
    # The first blessed model has no baseline to be compared with.
    assert "No baseline: no model was serving, so this is the first model judged" in summary
    assert re.search(r"^\| auc \| overall \| no decrease against the baseline \| 0\.\d{4} \| - \| - \| "
                     r"not applied \(no baseline\) \|$", summary, re.MULTILINE)


def test_promote_publishes_the_blessed_model_once(story):
    first, again = story.steps["promote"], story.steps["promote-again"]
    _ok(first)
    _ok(again)
    assert len(story.production[0]) == 1 and story.production[1] == story.production[0]
    version = story.production[0][0]
    assert Path(story.config.production_model_dir, version, "saved_model.pb").is_file()
    assert f"of run {story.steps['check'].outputs['run']} as version {version} (was nothing)" in first.stdout
    assert "nothing promoted" in again.stdout


def test_an_unreachable_bound_fails_the_gate_with_the_reason_and_nothing_is_promoted(story):
    train, check, promote = (story.steps[k] for k in ("train-unblessed", "check-unblessed", "promote-unblessed"))
    _ok(train)  # the pipeline ran; the model gate is the next step
    assert "Blessed: no" in train.stdout and re.search(r"Trainer\s+cached", train.stdout)
    assert _command_status(check) == EXIT_NOT_BLESSED
    reason = re.search(r"auc \(overall\) 0\.\d{4} is below the lower bound 0\.999", check.stderr)
    assert reason, check.stderr
    summary = check.step_summary
    assert summary.startswith("### Model NOT blessed: run ")
    assert check.outputs["blessed"] == "false"
    assert f"**Why:** {reason.group(0)}" in summary
    assert re.search(r"^\| auc \| overall \| at least 0\.999 \| 0\.\d{4} \| 0\.\d{4} \| - \| \*\*FAIL\*\* \|$", summary,
                     re.MULTILINE)
    # The baseline is the model this one would replace: the first, pushed before it (the candidate itself is
    # never its own baseline). Any change is allowed here, so the change threshold passes.
    first_auc = re.search(r"^\| auc \| overall \| at least 0\.6 \| (0\.\d{4}) \|", story.steps["check"].step_summary,
                          re.MULTILINE)
    assert first_auc, story.steps["check"].step_summary
    assert re.search(r"^\| auc \| overall \| a decrease of at most 1 against the baseline \| 0\.\d{4} \| "
                     rf"{re.escape(first_auc.group(1))} \| [+-]0\.\d{{4}} \| pass \|$", summary, re.MULTILINE), summary
    # The Credit Card slice is compared with the same baseline on its own rows.
    first_card = re.search(r"^\| auc \| payment_type=Credit Card \| at least 0 \| (0\.\d{4}) \|",
                           story.steps["check"].step_summary, re.MULTILINE)
    assert first_card, story.steps["check"].step_summary
    assert re.search(r"^\| auc \| payment_type=Credit Card \| a decrease of at most 1 against the baseline \| "
                     rf"0\.\d{{4}} \| {re.escape(first_card.group(1))} \| [+-]0\.\d{{4}} \| pass \|$", summary,
                     re.MULTILINE), summary
    assert "Baseline: model " in summary and "No baseline" not in summary
    assert check.artifacts["blessing.md"] + "\n" == summary
    assert _command_status(promote) == 1
    assert "refusing to promote" in promote.stderr and "below the lower bound 0.999" in promote.stderr
    assert "Traceback" not in promote.stderr
    assert story.production[2] == story.production[1]  # the refused promotion wrote nothing


def test_the_approved_run_is_promoted_although_a_newer_run_exists(story):
    promote = story.steps["promote-second"]
    _ok(promote)
    second_run = json.loads(story.steps["train-second"].artifacts["run-summary.json"])["runs"][0]["run"]
    assert f"of run {second_run} as version {story.production[3][-1]}" in promote.stdout
    assert len(story.production[3]) == 2


def test_rollback_returns_production_to_the_first_model_with_the_reason_recorded(story):
    _ok(story.steps["rollback"])
    before, after = story.production[3], story.production[4]
    assert len(before) == 2 and len(after) == 3 and after[:2] == before
    first = Path(story.config.production_model_dir, before[0])
    restored = Path(story.config.production_model_dir, after[-1])
    assert (restored / "saved_model.pb").read_bytes() == (first / "saved_model.pb").read_bytes()
    store = open_store(story.config)
    [rollback] = list_rollbacks(store, ROLLBACK_TYPE)
    assert rollback.prop("reason") == TRICKY_REASON  # verbatim: no shell interpreted it
    assert rollback.prop("to_version") == after[-1] and rollback.prop("from_version") == before[-1]
    assert not (PROJECT_ROOT / "INJECTED").exists()
    promotions = list_rollbacks(store, PROMOTION_TYPE)
    assert sorted(p.prop("reason") for p in promotions) == ["first", "second"]
    # Where the model live in production came from: the rollback, of the first promoted model.
    lineage = story.production_lineage
    assert lineage.startswith(f"Serving version {after[-1]} (live now)\n"), lineage[:500]
    assert f"Rolled back to as version {after[-1]} by " in lineage


def test_validate_data_reports_data_the_gate_rejects(story):
    step = story.steps["validate-rejected"]
    assert _command_status(step) == 1
    assert "error: data gate:" in step.stderr and "Bitcoin" in step.stderr
    rejected_report = step.artifacts["validation-report.html"]
    assert "Bitcoin" in rejected_report
    # The report's outcome says which component stopped the run and gives the gate's whole message.
    assert "Stopped by the data gate (DataGate): no model was trained." in rejected_report
    assert "<pre>data gate: the data in " in rejected_report
    check = story.steps["check-rejected"]
    assert _command_status(check) == EXIT_NOT_BLESSED
    assert "### No model evaluated" in check.step_summary
    assert "**Why:** the data gate stopped the run, so no model was trained: " in check.step_summary


def test_validate_data_writes_no_report_when_the_input_is_refused_before_any_run(story):
    step = story.steps["validate-refused"]
    assert _command_status(step) == configs.EXIT_CONFIG_ERROR
    assert "it has a header but no rows" in step.stderr and "Traceback" not in step.stderr
    assert "validation-report.html" not in step.artifacts


def test_make_unit_test_is_the_fast_loop():
    """`make unit-test`, the workflow's first job, is this suite without the e2e tests (not run here again)."""
    dry = subprocess.run(["make", "-n", "unit-test"], check=False, cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env=_outside_make(dict(os.environ)), timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == '.venv/bin/python -m pytest -m "not e2e"'
