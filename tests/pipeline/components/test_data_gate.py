"""What the pipeline does with bad input and with a worse model: it stops, says why, and keeps what it had.

One store serves every case: a good run pushes a model, a deliberately degraded candidate is evaluated
against it and not pushed, then each bad input runs against the same output root, in the plain layout
(data.csv) and in the span layout (the bad file is the newest span, span-2/data.csv, beside a good
span-1). Every case checks the message the user sees (file and span, column, problem), that nothing was
pushed, and that the pushed model and the earlier MLMD records are untouched. Pre-flight cases stop
before any component starts; data-gate cases stop after ExampleGen, StatisticsGen, ExampleValidator and
the gate.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from pathlib import Path
from typing import Callable

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.components import data_gate
from pipeline.metadata import run_record, run_summary
from pipeline.metadata.store import connection_config, open_store
from pipeline.runners import local_runner
from tests.conftest import run_local_pipeline, small_run_env
from tests.docs.commands import documented

pytestmark = pytest.mark.e2e

# Nodes that may run before the data gate stops a run.
UP_TO_THE_GATE = {
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    pipeline_definition.CURATED_SCHEMA_ID,
    "ExampleValidator",
    pipeline_definition.RESOLVER_ID,
    data_gate.BASELINE_RESOLVER_ID,
    data_gate.DATA_GATE_ID,
}


@dataclasses.dataclass
class Store:
    config: configs.PipelineConfig
    env: dict[str, str]
    degraded_output: str


def _store(config: configs.PipelineConfig):
    return open_store(connection_config(config))


def _serving_snapshot(config: configs.PipelineConfig) -> dict[str, str]:
    """Every file under the serving directory with its SHA-256."""
    root = Path(config.serving_model_dir)
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _mlmd_snapshot(config: configs.PipelineConfig) -> dict:
    store = _store(config)
    return {
        "executions": {e.id: e.SerializeToString(deterministic=True) for e in store.get_executions()},
        "artifacts": {a.id: a.SerializeToString(deterministic=True) for a in store.get_artifacts()},
    }


def _node_of(store, execution_id: int, pipeline_name: str) -> str:
    node_type = store.get_context_type("node")
    for context in store.get_contexts_by_execution(execution_id):
        if context.type_id == node_type.id:
            return context.name.removeprefix(pipeline_name + ".")
    return "?"


@pytest.fixture(scope="module")
def store(tmp_path_factory, sample_data_dir) -> Store:
    """A good run that pushes, then a degraded candidate (never trained: learning rate 0) on the same data.

    The good run is docs/configuration.md's first `make run` line: 200 training steps, into the test's
    folder instead of /data/taxi.
    """
    output_root = tmp_path_factory.mktemp("gates_output")
    env = small_run_env(sample_data_dir, output_root)
    documented("docs/configuration.md", "PIPELINE_TRAIN_STEPS=200 PIPELINE_OUTPUT_ROOT=/data/taxi make run").replace(
        "/data/taxi", str(output_root)).run(env)
    degraded = {**env, "PIPELINE_LEARNING_RATE": "0", "PIPELINE_BLESSING_LOWER_BOUND": "0",
                "PIPELINE_BLESSING_SLICE_THRESHOLDS": '{"payment_type=Credit Card": {"lower_bound": 0, "max_decrease": 1}}'}
    degraded_output = run_local_pipeline(degraded)
    return Store(configs.load_config(**configs.env_overrides(env)), env, degraded_output)


def test_a_worse_candidate_is_not_pushed_and_the_reason_is_printed_and_recorded(store):
    output = store.degraded_output
    assert "Blessed: no" in output
    assert "Pushed: no" in output
    # The absolute floors were 0 for this run, any change allowed on the slice: only the comparison with the
    # blessed baseline on the whole eval split can fail.
    reason_line = next(line for line in output.splitlines() if line.startswith("Not blessed because: "))
    assert "auc (overall)" in reason_line and "against the blessed baseline's" in reason_line
    assert "the threshold allows no less than -0.0000" in reason_line
    summary = run_summary.summarize_latest_run(
        connection_config(store.config), store.config.pipeline_name
    )
    assert summary.blessed is False and summary.pushed_to is None
    values = re.search(r"auc \(overall\) ([0-9.]+) against the blessed baseline's ([0-9.]+)", reason_line)
    candidate, baseline = float(values.group(1)), float(values.group(2))
    assert candidate < baseline
    assert candidate == pytest.approx(summary.eval_metrics["auc"], abs=1e-4)
    context = run_summary.latest_run_context(_store(store.config), store.config.pipeline_name)
    assert run_record.read_record(context)["blessing_reason"] == reason_line.removeprefix(
        "Not blessed because: "
    )
    assert len(list(Path(store.config.serving_model_dir).iterdir())) == 1


# --- the bad-input table -------------------------------------------------------------------------


def _csv_text(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _every_tenth(rows, **changes):
    return [dict(row, **changes) if i % 10 == 0 else row for i, row in enumerate(rows)]


def _replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = new
    return "".join(lines)


def _empty(rows) -> bytes:
    return b""


def _header_only(rows) -> bytes:
    return _csv_text(rows).splitlines(keepends=True)[0].encode()


def _wrong_field_count(rows) -> bytes:
    return _replace_line(_csv_text(rows), 7, "1,2,3\n").encode()


def _not_utf8(rows) -> bytes:
    lines = _csv_text(rows).encode().splitlines(keepends=True)
    lines[4] = lines[4].replace(b",", b",\xe9", 1)  # Latin-1 "é" on line 5
    return b"".join(lines)


def _no_label_column(rows) -> bytes:
    return _csv_text(rows, [c for c in rows[0] if c != "tips"]).encode()


def _missing_label_value(rows) -> bytes:
    return _csv_text([dict(row, tips="") if i == 2 else row for i, row in enumerate(rows)]).encode()


def _category_out_of_domain(rows) -> bytes:
    return _csv_text(_every_tenth(rows, payment_type="Bitcoin")).encode()


def _value_out_of_range(rows) -> bytes:
    return _csv_text(_every_tenth(rows, trip_start_hour="25")).encode()


def _missing_column(rows) -> bytes:
    return _csv_text(rows, [c for c in rows[0] if c != "trip_miles"]).encode()


def _new_column(rows) -> bytes:
    return _csv_text([dict(row, driver_id="d1") for row in rows]).encode()


def _missing_values(rows) -> bytes:
    return _csv_text(_every_tenth(rows, fare="")).encode()


def _wrong_type(rows) -> bytes:
    return _csv_text(_every_tenth(rows, trip_seconds="about ten minutes")).encode()


def _drift(rows) -> bytes:
    return _csv_text([dict(row, payment_type="Cash") for row in rows]).encode()


def _too_few_rows(rows) -> bytes:
    return _csv_text(rows[:60]).encode()


def _unit_change(rows) -> bytes:
    # trip_seconds delivered in milliseconds.
    return _csv_text([dict(row, trip_seconds=str(int(row["trip_seconds"]) * 1000) if row["trip_seconds"] else "")
                      for row in rows]).encode()


def _fares_tripled(rows) -> bytes:
    return _csv_text([dict(row, fare=repr(float(row["fare"]) * 3)) for row in rows]).encode()


@dataclasses.dataclass
class Case:
    name: str
    make: Callable[[list[dict[str, str]]], bytes]
    exit_code: int  # 2: stopped before the pipeline (pre-flight), 1: stopped by the data gate
    expected: tuple[str, ...]


CASES = [
    Case("empty file", _empty, 2, ("is empty: expected a header line and rows",)),
    Case("header only", _header_only, 2, ("has a header but no rows",)),
    Case("row with the wrong number of fields", _wrong_field_count, 2,
         ("line 7 has 3 fields, the header has 18",)),
    Case("bytes that are not UTF-8", _not_utf8, 2, ("line 5 is not UTF-8 text",)),
    Case("no label column", _no_label_column, 2, ("the header has no 'tips' column",)),
    Case("a row without a label", _missing_label_value, 2,
         ("line 4 has no value in the label column 'tips'",)),
    Case("missing column", _missing_column, 2,
         ("the header lacks column(s) the curated schema requires: trip_miles",)),
    Case("new column", _new_column, 2, ("the header has column(s) the curated schema does not know: driver_id",)),
    Case("too few rows", _too_few_rows, 1,
         ("[train] whole dataset: Too few rows: ", "the minimum is 200 (min_train_rows)",
          "[eval] whole dataset: Too few rows: ", "the minimum is 50 (min_eval_rows)")),
    Case("category out of domain", _category_out_of_domain, 1,
         ("column 'payment_type'", "Unexpected string values", "Bitcoin")),
    Case("value out of range", _value_out_of_range, 1,
         ("column 'trip_start_hour'", "Out-of-range values")),
    Case("missing values", _missing_values, 1, ("column 'fare'", "Missing values")),
    Case("wrong type", _wrong_type, 1, ("column 'trip_seconds'", "Unexpected data type")),
    Case("drift against the last accepted data", _drift, 1,
         ("column 'payment_type'", "High Linfty distance", "above the threshold 0.1")),
    Case("a unit change (trip_seconds in milliseconds)", _unit_change, 1,
         ("[all splits] column 'trip_seconds': Numeric drift: its values moved by", "(Kolmogorov-Smirnov distance)")),
    Case("every fare tripled", _fares_tripled, 1,
         ("[all splits] column 'fare': Numeric drift: its values moved by",)),
]
LAYOUTS = ("plain", "spans")


def _write_input(data_dir: Path, layout: str, data: bytes, sample_rows) -> tuple[Path, str]:
    """The bad file where the layout puts a run's input: (its path, how the gate names the data)."""
    if layout == "plain":
        bad = data_dir / "data.csv"
        where = "files data.csv; span 0"
    else:
        (data_dir / "span-1").mkdir(parents=True)
        (data_dir / "span-1" / "data.csv").write_text(_csv_text(sample_rows))
        bad = data_dir / "span-2" / "data.csv"
        where = "files span-2/data.csv; span 2"
        (data_dir / "span-3").mkdir()  # Newer, but empty (a copy not started yet): skipped, and said so.
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(data)
    return bad, where


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_stops_with_a_clear_message_and_keeps_what_was_there(
    case, layout, store, sample_rows, tmp_path, monkeypatch, capsys
):
    data_dir = tmp_path / "data"
    bad_file, where = _write_input(data_dir, layout, case.make(sample_rows), sample_rows)
    serving_before = _serving_snapshot(store.config)
    mlmd_before = _mlmd_snapshot(store.config)
    assert serving_before, "the good run pushed nothing"

    for name, value in store.env.items():
        if name.startswith(configs.ENV_PREFIX):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIPELINE_DATA_ROOT", str(data_dir))
    if layout == "spans":
        monkeypatch.setenv("PIPELINE_INPUT_PATTERN", "span-{SPAN}/*.csv")
    exit_code = local_runner.main()
    captured = capsys.readouterr()

    error_lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert exit_code == case.exit_code, captured.out + captured.err
    assert len(error_lines) == 1, captured.err
    message = captured.err[captured.err.index("error: "):]
    assert "Traceback" not in message
    for fragment in case.expected:
        assert fragment in message, message
    if case.exit_code == 2:
        named = f"input file {bad_file}" + (" (span 2)" if layout == "spans" else "")
        assert error_lines[0].startswith(f"error: {named}"), error_lines[0]
    else:
        assert f"the data in {data_dir} ({where})" in message
        assert "Transform, Trainer, Evaluator and Pusher did not run" in message
        assert "Pushed: no" in captured.out
        if layout == "spans":
            assert f"Skipped {data_dir / 'span-3'}: it holds no file matching '*.csv', so span 2 is the newest" \
                in captured.out

    # Nothing pushed, the pushed model untouched, every earlier MLMD record as it was.
    assert _serving_snapshot(store.config) == serving_before
    mlmd_after = _mlmd_snapshot(store.config)
    for kind in ("executions", "artifacts"):
        assert {k: mlmd_after[kind][k] for k in mlmd_before[kind]} == mlmd_before[kind]
    new_executions = set(mlmd_after["executions"]) - set(mlmd_before["executions"])
    metadata = _store(store.config)
    new_nodes = {_node_of(metadata, e, store.config.pipeline_name) for e in new_executions}
    if case.exit_code == 2:
        assert not new_executions
    else:
        assert new_nodes <= UP_TO_THE_GATE, new_nodes
        [gate] = [
            e for e in metadata.get_executions_by_id(new_executions)
            if _node_of(metadata, e.id, store.config.pipeline_name) == data_gate.DATA_GATE_ID
        ]
        assert gate.last_known_state == metadata_store_pb2.Execution.FAILED
        # It published nothing: these statistics never become the next run's drift baseline.
        outputs = [e for e in metadata.get_events_by_execution_ids([gate.id])
                   if e.type == metadata_store_pb2.Event.OUTPUT]
        assert not outputs
        context = run_summary.latest_run_context(metadata, store.config.pipeline_name)
        record = run_record.read_record(context)
        assert case.expected[0] in record["data_gate"]
        # The record names the data the run read: its span and files.
        assert record["spans"] == [0 if layout == "plain" else 2]
        assert list(record["input_files"]) == [str(bad_file.relative_to(data_dir))]
