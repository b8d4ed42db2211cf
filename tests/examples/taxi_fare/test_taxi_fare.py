"""The taxi fare task (examples/taxi_fare/), a regression judged by errors where lower is better: its eval
config's thresholds and TFMA's verdict on them, and, end to end, a fork of it made outside the repository
as docs/configuration.md says (copied, named once, its schema inferred from its data, run, blessed, then
refused by a tighter bound)."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.governance import blessing
from pipeline.metadata import artifact_files, run_summary
from pipeline.runners import progress
from tests.conftest import PROJECT_ROOT, read_rows, write_rows
from tests.docs.commands import documented, run_together
from tests.tfma_evaluations import evaluator_run

TASK = "examples.taxi_fare.modules"


def _judged(tmp_path: Path, candidate: float, baseline: float | None = None) -> run_summary.ComponentRun:
    """The Evaluator's outputs for a candidate of this mean absolute error (and a baseline of that one), judged
    by TFMA against the task's eval config (an upper bound of 4 dollars, an increase of at most 0.25)."""
    config = configs.load_config(task=TASK)
    values = {"overall": {"mean_absolute_error": candidate, "example_count": 3776.0}}
    old = None if baseline is None else {"overall": {"mean_absolute_error": baseline, "example_count": 3776.0}}
    return evaluator_run(tmp_path, config, values, old)


def _blessed(evaluator: run_summary.ComponentRun) -> bool:
    return bool(evaluator.output("blessing").custom_properties["blessed"].int_value)


def test_tfma_blesses_an_error_at_most_the_upper_bound_and_no_more_than_the_allowed_increase(tmp_path):
    first = _judged(tmp_path / "first", 2.0)
    assert _blessed(first)
    assert [progress.threshold_line(c) for c in run_summary.threshold_checks(first)] == [
        "mean_absolute_error (overall) 2.0000, at most 4: pass",
        "mean_absolute_error (overall): an increase of at most 0.25 against the baseline: not applied (no baseline: "
        "the first model judged)",
    ]
    too_high = _judged(tmp_path / "too_high", 4.5)
    assert not _blessed(too_high)
    evaluation = too_high.output("evaluation").uri
    assert artifact_files.blessing_failures(evaluation) == [
        "mean_absolute_error (overall) 4.5000 is above the upper bound 4"]
    # Against a baseline: worse by 0.2 passes, worse by 0.4 does not; better always does.
    assert _blessed(_judged(tmp_path / "a_little_worse", 2.2, baseline=2.0))
    assert _blessed(_judged(tmp_path / "better", 1.5, baseline=2.0))
    worse = _judged(tmp_path / "worse", 2.4, baseline=2.0)
    assert not _blessed(worse)
    (value, change) = run_summary.threshold_checks(worse)
    assert (value.bound, value.passed, change.bound, change.passed) == (
        "at most 4", True, "an increase of at most 0.25 against the baseline", False)
    assert round(change.change, 6) == 0.4
    (failure,) = artifact_files.blessing_failures(worse.output("evaluation").uri)
    assert failure.startswith("mean_absolute_error (overall) 2.4000 against the blessed baseline's 2.0000: a "
                              "change of +0.4000, the threshold allows no more than +0.2500")
    verdict = blessing.markdown(blessing.Verdict(
        pipeline="taxi-fare", run="r", status="complete", blessed=False, reason=failure,
        checks=run_summary.threshold_checks(worse), baseline="Baseline: model 7.", metrics={}, record={},
        pushed_version=None))
    assert "| mean_absolute_error | overall | an increase of at most 0.25 against the baseline | 2.4000 | 2 " \
           "| +0.4000 | **FAIL** |" in verdict


# The fork's rows: a fixed sample of the shipped data, enough for the gate's minimum rows in each split.
FORK_ROWS = 2000


@pytest.mark.e2e
def test_a_fork_of_the_fare_task_outside_the_repository_runs_as_the_docs_say(tmp_path, monkeypatch):
    """docs/configuration.md's fork, literally: the fare task's package copied outside the repository and
    named once (PIPELINE_TASK), its task.py told where its data is, its schema inferred from that data (and not
    inferred again over it), then `make run`: blessed by an error at most the bound, pushed; with a bound it
    cannot meet, refused, saying so, with Transform and the Trainer served from the cache."""
    tasks = tmp_path / "my-tasks"
    copy = documented("docs/configuration.md",
                      "mkdir -p ../my-tasks && cp -r examples/taxi_fare/modules ../my-tasks/my_task")
    export = documented("docs/configuration.md",
                        "export PYTHONPATH=$PWD/../my-tasks${PYTHONPATH:+:$PYTHONPATH} PIPELINE_TASK=my_task")
    infer = documented("docs/configuration.md", "make schema-infer")
    run = documented("docs/configuration.md", "make run")
    # The test's environment without any PIPELINE_ setting, then a small run's: few steps, outputs apart.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "TAXI_"))}
    env.update(PIPELINE_OUTPUT_ROOT=str(tmp_path / "output"), PIPELINE_TRAIN_STEPS="200", PIPELINE_EVAL_STEPS="4",
               PIPELINE_EPOCHS="1")
    export = export.replace("$PWD/../my-tasks", str(tasks))
    run_together([copy.replace("../my-tasks", str(tasks))], env)
    # No import in the copied package names a package: it runs under its new name unchanged.
    for path in (tasks / "my_task").glob("*.py"):
        assert not re.search(r"(?m)^\s*(from|import) (examples|modules|my_task)\b", path.read_text()), path
    # Step 1: task.py names the fork's pipeline and its data folder (its schema goes beside the package).
    task_file = tasks / "my_task" / "task.py"
    text = re.sub(r"(?m)^NAME = .*$", 'NAME = "my-fare"', task_file.read_text())
    task_file.write_text(re.sub(r"(?m)^DATA_ROOT = .*$", 'DATA_ROOT = str(_HERE.parent / "data")', text))
    write_rows(tasks / "data" / "data.csv", random.Random(7).sample(read_rows(), FORK_ROWS))

    inferred = run_together([export, infer], env).stdout
    schema = tasks / "schema" / "schema.pbtxt"
    assert f"Schema of task my_task inferred from {tasks / 'data'} (18 features): {schema}" in inferred
    before = schema.read_bytes()
    # As the export leaves the shell: the same command again is refused, naming the file, which stays as it was.
    exported = {**env, "PYTHONPATH": f"{tasks}{os.pathsep}{env.get('PYTHONPATH', '')}", "PIPELINE_TASK": "my_task"}
    again = infer.run(exported, check=False)
    assert again.returncode == 2 and f"error: {schema} exists: it is the task's curated schema" in again.stderr
    assert schema.read_bytes() == before

    first = run_together([export, run], env).stdout
    monkeypatch.syspath_prepend(str(tasks))  # This process reads the fork's store as the shell would.
    config = configs.load_config(**configs.env_overrides(exported))
    assert (config.pipeline_name, config.schema_path) == ("my-fare", str(schema))
    summary = run_summary.summarize_latest_run(config, "my-fare")
    assert summary.blessed is True and summary.pushed_to.startswith(config.serving_model_dir)
    assert re.search(r"mean_absolute_error \(overall\) [0-3]\.\d{4}, at most 4: pass", first), first
    assert "an increase of at most 0.25 against the baseline: not applied (no baseline" in first
    assert "Blessed: yes" in first and f"Pushed to: {config.serving_model_dir}/" in first
    assert 0 < summary.eval_metrics["mean_absolute_error"] < 4 and "auc" not in summary.eval_metrics

    refused = run.run({**exported, "PIPELINE_BLESSING_UPPER_BOUND": "0.5"}).stdout
    assert ", at most 0.5: FAIL" in refused and "is above the upper bound 0.5" in refused, refused
    assert "Blessed: no" in refused and "Pushed: no" in refused
    summary = run_summary.summarize_latest_run(config, "my-fare")
    assert {c.node_id for c in summary.components if c.state == "executed"} >= {"Evaluator"}
    assert {c.node_id for c in summary.components if c.state == "cached"} >= {"Transform", "Trainer"}
