"""The run lifecycle every runner goes through: the rows-in/rows-out check, the options, errors in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.components import data_gate
from pipeline.governance import report, runs
from pipeline.guards import disk_space
from pipeline.metadata import run_summary
from pipeline.metadata.store import open_store
from pipeline.runners import lifecycle
from tests.conftest import LOCAL_RUNNER, copy_modules, small_run_env, tiny_input


def _summary_with_rows(rows_per_split: dict[str, int], span: int = 0) -> run_summary.RunSummary:
    """A run's summary as far as the row check reads it: ExampleGen's Examples (span as TFX 1.16 records
    it, a custom property) and the rows StatisticsGen counted."""
    examples = metadata_store_pb2.Artifact()
    examples.custom_properties["span"].int_value = span
    example_gen = run_summary.ComponentRun("CsvExampleGen", "executed", 0.0, None, {"examples": [examples]})
    return run_summary.RunSummary("p", "r", [example_gen], rows_per_split, {}, {}, None, None)


def test_lost_rows_fail_the_run_loudly(sample_data_dir, sample_rows):
    config = configs.load_config(data_root=str(sample_data_dir))
    lifecycle.check_rows_read(config, _summary_with_rows({"train": 1000, "eval": len(sample_rows) - 1000}))
    with pytest.raises(lifecycle.RowCountMismatch, match="hold 1,500 rows but ExampleGen's splits hold 1,499"):
        lifecycle.check_rows_read(config, _summary_with_rows({"train": 1000, "eval": 499}))


def test_rows_are_counted_in_the_span_the_run_read(tmp_path, sample_data_dir):
    # Span 2 arrived after the run read span 1: the run's rows are span 1's.
    for span, rows in ((1, 1500), (2, 600)):
        (tmp_path / f"span-{span}").mkdir()
        lines = (sample_data_dir / "data.csv").read_bytes().splitlines(keepends=True)[: rows + 1]
        (tmp_path / f"span-{span}" / "data.csv").write_bytes(b"".join(lines))
    config = configs.load_config(data_root=str(tmp_path), input_pattern="span-{SPAN}/*.csv")
    lifecycle.check_rows_read(config, _summary_with_rows({"train": 1100, "eval": 400}, span=1))
    with pytest.raises(lifecycle.RowCountMismatch, match=r"files span-2/data.csv; span 2\) hold 600 rows"):
        lifecycle.check_rows_read(config, _summary_with_rows({"train": 1100, "eval": 400}, span=2))


def test_validate_only_stops_a_run_after_the_data_gate():
    assert lifecycle.stop_after(lifecycle.parse_args([], "r")) is None
    assert lifecycle.stop_after(lifecycle.parse_args(["--validate-only"], "r")) == data_gate.DATA_GATE_ID
    with pytest.raises(SystemExit) as exited:
        lifecycle.parse_args(["--validate"], "r")
    assert exited.value.code == 2


def test_a_write_on_a_full_disk_stops_the_run_with_one_line(tmp_path, capsys):
    config = configs.load_config(data_root=tiny_input(tmp_path, 2**20), output_root=str(tmp_path / "out"))
    with pytest.raises(disk_space.OutOfSpace) as stopped:
        with lifecycle._explaining(config, None, lambda: ["Transform"]):
            raise RuntimeError("Arrow's write failed: [Errno 28] No space left on device [while running 'Write']")
    # The error names no file: the line names the folder of the component that was running.
    assert str(stopped.value).startswith(
        f"out of disk space: writing {config.pipeline_root}/Transform failed; {disk_space.mount_point(str(tmp_path))} has ")
    with pytest.raises(KeyError):  # Anything else goes on as it was.
        with lifecycle._explaining(config, None, lambda: ["Transform"]):
            raise KeyError("x")

    def run_once():
        raise stopped.value

    assert lifecycle.main(run_once) == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {stopped.value}"]


@pytest.mark.e2e
def test_runner_reports_a_bad_setting_in_one_line_and_writes_nothing(tmp_path):
    env = {
        **os.environ,
        "PIPELINE_DATA_ROOT": str(tmp_path / "nowhere"),
        "PIPELINE_OUTPUT_ROOT": str(tmp_path / "out"),
    }
    result = subprocess.run(
        [sys.executable, str(configs.PROJECT_ROOT / "pipeline" / "runners" / "local_runner.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "error: data folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_a_failing_component_prints_its_error_where_it_was_raised_and_the_full_log(tmp_path, sample_data_dir):
    """A broken module file: the console says what failed, the user's line that raised it and where the
    full log (with the traceback) is, and nothing else."""
    modules = copy_modules(tmp_path / "modules")
    transform = modules / "transform_module.py"
    source = transform.read_text()
    transform.write_text(source.replace("    outputs = {}\n", "    outputs = {'x': undefined_name}\n", 1))
    broken_line = transform.read_text().splitlines().index("    outputs = {'x': undefined_name}") + 1
    result = subprocess.run(
        LOCAL_RUNNER, env=small_run_env(sample_data_dir, tmp_path / "out", modules), cwd=configs.PROJECT_ROOT,
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 1
    assert re.search(rf"^\d\d:\d\d:\d\d {'Transform':<32} FAILED after ", result.stdout, re.MULTILINE)
    errors = result.stderr.splitlines()
    assert errors[:2] == [
        "error: NameError: name 'undefined_name' is not defined",
        f"  at {transform}, line {broken_line}, in preprocessing_fn",
    ]
    assert len(errors) == 3 and errors[2].startswith("The full log: "), result.stderr
    full = Path(errors[2].removeprefix("The full log: ")).read_text()
    assert "Traceback (most recent call last)" in full and f'File "{transform}", line {broken_line}' in full
    # The run's record keeps that error (TFX keeps none), so its report's outcome says it too.
    config = configs.load_config(output_root=str(tmp_path / "out"))
    info = runs.find_run(open_store(config), config.pipeline_name, "latest")
    kind, headline, detail = report.outcome(info)
    assert headline == "Stopped: Transform failed."
    assert detail == "\n".join(errors[:2]).removeprefix("error: ") + f"\n(the full log: {errors[2].removeprefix('The full log: ')})"
