"""Which run `pipeline runs` and `report latest` call newest, on a real ML Metadata store (in memory) that
holds runs started within one millisecond, named as a clock stepped back would name them."""

from __future__ import annotations

import json

from pipeline import configs
from pipeline.governance import runs
from pipeline.metadata import run_record, run_summary
from tests.pipeline.metadata.test_run_summary import store_with_runs

# Names that sort backwards: each run started after the clock stepped back an hour.
NAMES = [f"2026-12-06T{hour:02d}:00:00.000000" for hour in (23, 22, 21, 20, 19, 18)]


def test_the_run_started_last_is_newest_whatever_its_name_and_time():
    # Written as fast as MLMD takes them: most runs share their creation millisecond with another, so
    # only MLMD's ids say which came first.
    store, _ = store_with_runs(NAMES)
    listed = runs.list_runs(store, "p")
    assert [run.name for run in listed] == NAMES[::-1]
    assert runs.find_run(store, "p", "latest").name == NAMES[-1]
    assert run_summary.latest_run_context(store, "p").name == NAMES[-1]


def _record(store, context_name: str, record: dict) -> None:
    """`record` on a run's context, as run_record.record_run writes it."""
    run_record.write_record(store, store.get_context_by_type_and_name("pipeline_run", context_name), record)


def test_a_runs_record_reads_back_as_json_values_not_json_text():
    """What `runs --format json` and `lineage --format json` print: config, task_files, input_files and spans
    are stored as JSON text (ML Metadata keeps strings and numbers) and read back as the values."""
    store, _ = store_with_runs(["r1", "r2"])
    config = configs.load_config()
    record = run_record.collect(config, runner="test")
    record[run_record.PREFIX + "spans"] = "[0]"
    record[run_record.PREFIX + "input_files"] = '{"data.csv": {"bytes": 12, "sha256": "ab"}}'
    _record(store, "r2", record)
    newest, older = runs.list_runs(store, "p")
    assert newest.record["config"]["train_steps"] == config.train_steps
    assert newest.record["task_files"]["task.py"] == run_record.file_sha256(configs.PROJECT_ROOT / "modules" / "task.py")
    assert newest.record["spans"] == [0] and newest.record["input_files"]["data.csv"]["bytes"] == 12
    assert newest.record["runner"] == "test" and older.record == {}
    json.dumps(newest.as_dict())  # Nothing in it needs a fallback to str.


def test_each_run_carries_its_tasks_blessing_metric():
    store, _ = store_with_runs(["r1", "r2", "r3"])
    _record(store, "r2", {run_record.PREFIX + "task": "examples.penguin.modules"})
    _record(store, "r3", {run_record.PREFIX + "task": "a.task.since.removed"})
    config = configs.load_config()
    found = {run.name: runs.with_blessing_metric(run, config) for run in runs.list_runs(store, "p")}
    # None of them evaluated a model; the name is the task's that ran (the configured one when unknown).
    assert {name: run.blessing_metric for name, run in found.items()} == {
        "r1": ("auc", None), "r2": ("sparse_categorical_accuracy", None), "r3": ("auc", None),
    }
    assert found["r2"].as_dict()["blessing_metric"] == {"name": "sparse_categorical_accuracy", "value": None}
