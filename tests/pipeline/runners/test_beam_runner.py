"""The Beam runner end to end through the tfx CLI, the Beam profiles, and the rows-in/rows-out check."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.beam import profiles
from pipeline.components import data_gate
from pipeline.guards import store_lock
from pipeline.metadata import run_record, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import run_command, small_run_env
from tests.docs.commands import documented
from tests.orchestrator_checks import ALL_NODES, CACHED_WHEN_UNCHANGED, cli_json, store_held_by_another_run

pytestmark = pytest.mark.e2e


# What a user fills in for each remote engine (PIPELINE_<FIELD>); nothing here is contacted.
@dataclasses.dataclass
class BeamRun:
    config: configs.PipelineConfig
    env: dict[str, str]
    created: str
    output: str
    summary: run_summary.RunSummary


@pytest.fixture(scope="module")
def beam_run(tmp_path_factory, sample_data_dir) -> BeamRun:
    """`tfx pipeline create` then `tfx run create` with the Beam engine.

    In memory: multi_processing workers each import TensorFlow, minutes on a small sample. The
    rows-in/rows-out check runs either way.
    """
    home = tmp_path_factory.mktemp("beam_home")
    env = {
        **small_run_env(sample_data_dir, tmp_path_factory.mktemp("output")),
        "BEAM_HOME": str(home),
    }
    config = configs.load_config(**configs.env_overrides(env))
    created = documented(
        "docs/runners.md", "tfx pipeline create --engine beam --pipeline_path pipeline/runners/beam_runner.py"
    ).run(env).stdout
    assert (home / config.pipeline_name / "pipeline_args.json").is_file()
    # Compiling the pipeline ran nothing.
    assert not Path(config.metadata_path).exists()
    output = documented("docs/runners.md", "tfx run create --engine beam --pipeline_name chicago-taxi").run(env).stdout
    summary = run_summary.summarize_latest_run(
        connection_config(config), config.pipeline_name
    )
    return BeamRun(config, env, created, output, summary)


def test_tfx_cli_creates_and_runs_the_pipeline_on_beam(beam_run, sample_rows):
    assert f'Pipeline "{beam_run.config.pipeline_name}" created successfully.' in beam_run.created
    states = {run.node_id: run.state for run in beam_run.summary.components}
    assert states == {node: "executed" for node in ALL_NODES}
    # No row lost: the runner itself compares them, and so does this test.
    assert sum(beam_run.summary.rows_per_split.values()) == len(sample_rows)
    assert beam_run.summary.blessed is True
    assert Path(beam_run.summary.pushed_to, "saved_model.pb").is_file()


def test_beam_run_prints_progress_and_summary_and_records_itself(beam_run):
    for node in ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert f"{node:<32} started" in beam_run.output
        assert f"{node:<32} finished in " in beam_run.output
    assert "Blessed: yes" in beam_run.output
    log, report = beam_run.output.splitlines()[-2:]
    assert re.fullmatch(r"Log: \S+-beam\.log", log) and Path(log.removeprefix("Log: ")).is_file()
    run_id = beam_run.summary.run_id
    assert report == f"Report: pipeline report {run_id} -o {beam_run.config.report_file(run_id)}"
    store = open_store(connection_config(beam_run.config))
    record = run_record.read_record(run_summary.latest_run_context(store, beam_run.config.pipeline_name))
    assert record["runner"] == "beam"
    # The default profile, auto, runs a small input in memory.
    assert record["config"]["beam_profile"] == "auto"
    assert profiles.resolved_beam_profile(beam_run.config) == "in_memory"
    # The run let go of the store.
    assert store_lock.busy(beam_run.config) is None


def test_runs_and_lineage_commands_read_the_beam_run(beam_run, capsys):
    [run] = cli_json(capsys, beam_run.config, "runs")["runs"]
    assert run["status"] == "complete" and run["record"]["runner"] == "beam"
    assert {c["node"] for c in run["components"]} >= {"CsvExampleGen", "Transform", "Trainer", "Pusher"}
    story = cli_json(capsys, beam_run.config, "lineage", "serving")
    assert story["run"] == run["run"] and story["live"] is True
    assert story["record"]["runner"] == "beam"
    assert story["blessed"] is True and story["examples"]


def test_the_runner_file_runs_the_pipeline_again_from_the_cache(beam_run):
    """The runner run as a script, as docs/runners.md shows it, on the store the CLI's run left: nothing
    changed, so everything comes from the cache. (After the tests that read that one run.)"""
    output = documented("docs/runners.md", "python pipeline/runners/beam_runner.py").run(beam_run.env).stdout
    summary = run_summary.summarize_latest_run(connection_config(beam_run.config), beam_run.config.pipeline_name)
    assert summary.run_id != beam_run.summary.run_id
    states = {run.node_id: run.state for run in summary.components}
    assert {node: states[node] for node in CACHED_WHEN_UNCHANGED} == {node: "cached" for node in CACHED_WHEN_UNCHANGED}
    assert "Blessed: yes" in output


def test_validate_only_runs_up_to_the_data_gate_on_beam(beam_run):
    """Last in this module: it adds a run to the store the tests above read."""
    output = run_command([sys.executable, "pipeline/runners/beam_runner.py", "--validate-only"], beam_run.env)
    summary = run_summary.summarize_latest_run(connection_config(beam_run.config), beam_run.config.pipeline_name)
    states = {run.node_id: run.state for run in summary.components}
    # TFX's partial run: the gate and what it depends on (served from the cache), nothing downstream.
    assert {node for node, state in states.items() if state == "executed"} >= {data_gate.DATA_GATE_ID}
    assert {"CsvExampleGen", "StatisticsGen", "ExampleValidator", data_gate.DATA_GATE_ID} <= set(states)
    assert not {"Transform", "Trainer", "Evaluator", "Pusher", "SchemaGen"} & set(states)
    assert "Blessed: not evaluated" in output and "Pushed: no" in output


def test_a_second_run_is_refused_naming_the_run_that_holds_the_store(beam_run):
    env = {**beam_run.env, "PIPELINE_RUN_LOCK_TIMEOUT_S": "0"}
    before = len(open_store(connection_config(beam_run.config)).get_executions())
    with store_held_by_another_run(env) as holder:
        result = subprocess.run([sys.executable, "pipeline/runners/beam_runner.py"], cwd=configs.PROJECT_ROOT,
                                env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == store_lock.EXIT_BUSY, result.stderr[-3000:]
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert f"is using the ML Metadata store {beam_run.config.metadata_path}: a local run (pid {holder.pid} " in error
    assert "Traceback" not in result.stderr
    assert len(open_store(connection_config(beam_run.config)).get_executions()) == before
