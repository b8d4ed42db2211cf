"""The Beam runner end to end through the tfx CLI, the Beam profiles, and the rows-in/rows-out check."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
)
from apache_beam.runners import create_runner
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.beam import profiles
from pipeline.guards import store_lock
from pipeline.metadata import run_record, run_summary
from pipeline.runners import dag_run
from pipeline.metadata.store import connection_config
from pipeline.metadata.store import open_store
from tests.conftest import run_command, small_run_env
from tests.orchestrator_checks import ALL_NODES, cli_json

# What a user fills in for each remote engine (TAXI_<FIELD>); nothing here is contacted.
REMOTE_SETTINGS = {
    "dataflow": {"beam_gcp_project": "my-project", "beam_gcp_region": "europe-west1",
                 "beam_temp_location": "gs://my-bucket/tmp"},
    "flink": {"beam_cluster_master": "flink-jobmanager:8081"},
    "spark": {"beam_cluster_master": "spark://spark-master:7077"},
}
RUNNER_CLASSES = {
    "auto": "SwitchingDirectRunner",
    "in_memory": "SwitchingDirectRunner",
    "multi_processing": "SwitchingDirectRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
}


def _options(args: list[str]) -> dict:
    return PipelineOptions(args).get_all_options()


@pytest.mark.parametrize("profile", list(configs.BEAM_PROFILES))
def test_each_profile_builds_pipeline_options_whose_runner_resolves(profile):
    config = configs.load_config(beam_profile=profile, **REMOTE_SETTINGS.get(profile, {}))
    args = profiles.beam_args(config)
    options = _options(args)
    # Every flag is one Beam knows: an unknown one would be missing from the parsed options.
    for arg in args:
        name, value = arg.removeprefix("--").split("=", 1)
        assert str(options[name]) == value, arg
    # No --runner means Beam's default, the DirectRunner (the local profiles pass no args at all).
    runner = create_runner(PipelineOptions(args).view_as(StandardOptions).runner or "DirectRunner")
    assert type(runner).__name__ == RUNNER_CLASSES[profile]


def test_remote_profiles_ship_the_project_and_its_lock_to_workers():
    for profile, settings in REMOTE_SETTINGS.items():
        options = PipelineOptions(profiles.beam_args(configs.load_config(beam_profile=profile, **settings)))
        setup = options.view_as(SetupOptions)
        assert setup.setup_file == str(configs.PROJECT_ROOT / "setup.py")
        assert setup.requirements_file == str(configs.PROJECT_ROOT / "requirements.lock")
        assert Path(setup.setup_file).is_file() and Path(setup.requirements_file).is_file()
    dataflow = PipelineOptions(profiles.beam_args(configs.load_config(
        beam_profile="dataflow", beam_sdk_container_image="europe-docker.pkg.dev/p/r/taxi:1",
        **REMOTE_SETTINGS["dataflow"])))
    assert dataflow.view_as(GoogleCloudOptions).project == "my-project"
    assert dataflow.view_as(GoogleCloudOptions).temp_location == "gs://my-bucket/tmp"
    assert dataflow.get_all_options()["sdk_container_image"] == "europe-docker.pkg.dev/p/r/taxi:1"
    assert dataflow.view_as(SetupOptions).requirements_file is None  # The image holds the lock.
    flink = PipelineOptions(profiles.beam_args(configs.load_config(
        beam_profile="flink", beam_sdk_container_image="taxi:1", **REMOTE_SETTINGS["flink"])))
    assert flink.view_as(PortableOptions).environment_type == "DOCKER"
    assert flink.view_as(PortableOptions).environment_config == "taxi:1"


def test_profile_settings_come_from_the_environment_and_extra_args_win(monkeypatch):
    monkeypatch.setenv("TAXI_BEAM_PROFILE", "multi_processing")
    monkeypatch.setenv("TAXI_BEAM_DIRECT_NUM_WORKERS", "3")
    monkeypatch.setenv("TAXI_BEAM_PIPELINE_ARGS", "--direct_num_workers=2")
    options = PipelineOptions(profiles.beam_args(configs.load_config())).view_as(DirectOptions)
    assert options.direct_running_mode == "multi_processing"
    assert options.direct_num_workers == 2


def test_a_profile_missing_a_setting_names_its_variable():
    with pytest.raises(configs.ConfigError, match="needs beam_gcp_project \\(set TAXI_BEAM_GCP_PROJECT\\)"):
        profiles.beam_args(configs.load_config(beam_profile="dataflow"))
    with pytest.raises(configs.ConfigError, match="beam_profile 'direct' is not one of auto, in_memory, "):
        configs.load_config(beam_profile="direct")


def _summary_with_rows(rows_per_split: dict[str, int], span: int = 0) -> run_summary.RunSummary:
    """A run's summary as far as the row check reads it: ExampleGen's Examples (span as TFX 1.16 records
    it, a custom property) and the rows StatisticsGen counted."""
    examples = metadata_store_pb2.Artifact()
    examples.custom_properties["span"].int_value = span
    example_gen = run_summary.ComponentRun("CsvExampleGen", "executed", 0.0, None, {"examples": [examples]})
    return run_summary.RunSummary("p", "r", [example_gen], rows_per_split, {}, {}, None, None)


def test_lost_rows_fail_the_run_loudly(sample_data_dir, sample_rows):
    config = configs.load_config(data_root=str(sample_data_dir))
    dag_run.check_rows_read(config, _summary_with_rows({"train": 1000, "eval": len(sample_rows) - 1000}))
    with pytest.raises(dag_run.RowCountMismatch, match="hold 1,500 rows but ExampleGen's splits hold 1,499"):
        dag_run.check_rows_read(config, _summary_with_rows({"train": 1000, "eval": 499}))


def test_rows_are_counted_in_the_span_the_run_read(tmp_path, sample_data_dir):
    # Span 2 arrived after the run read span 1: the run's rows are span 1's.
    for span, rows in ((1, 1500), (2, 600)):
        (tmp_path / f"span-{span}").mkdir()
        lines = (sample_data_dir / "data.csv").read_bytes().splitlines(keepends=True)[: rows + 1]
        (tmp_path / f"span-{span}" / "data.csv").write_bytes(b"".join(lines))
    config = configs.load_config(data_root=str(tmp_path), input_pattern="span-{SPAN}/*.csv")
    dag_run.check_rows_read(config, _summary_with_rows({"train": 1100, "eval": 400}, span=1))
    with pytest.raises(dag_run.RowCountMismatch, match=r"files span-2/data.csv; span 2\) hold 600 rows"):
        dag_run.check_rows_read(config, _summary_with_rows({"train": 1100, "eval": 400}, span=2))


@dataclasses.dataclass
class BeamRun:
    config: configs.PipelineConfig
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
    tfx = str(Path(sys.executable).parent / "tfx")
    created = run_command(
        [tfx, "pipeline", "create", "--engine", "beam", "--pipeline_path", "pipeline/runners/beam_runner.py"], env
    )
    assert (home / config.pipeline_name / "pipeline_args.json").is_file()
    # Compiling the pipeline ran nothing.
    assert not Path(config.metadata_path).exists()
    output = run_command(
        [tfx, "run", "create", "--engine", "beam", "--pipeline_name", config.pipeline_name], env
    )
    summary = run_summary.summarize_latest_run(
        connection_config(config), config.pipeline_name
    )
    return BeamRun(config, created, output, summary)


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
    store = open_store(connection_config(beam_run.config))
    record = run_record.read_record(run_summary.latest_run_context(store, beam_run.config.pipeline_name))
    assert record["runner"] == "beam"
    # The default profile, auto, runs a small input in memory.
    assert json.loads(record["config"])["beam_profile"] == "auto"
    assert profiles.resolved_beam_profile(beam_run.config) == "in_memory"
    # The run let go of the store.
    with store_lock.hold(store_lock.lock_path_for(beam_run.config.metadata_path), timeout_s=0):
        pass


def test_runs_and_lineage_commands_read_the_beam_run(beam_run, capsys):
    [run] = cli_json(capsys, beam_run.config, "runs")["runs"]
    assert run["status"] == "complete" and run["record"]["runner"] == "beam"
    assert {c["node"] for c in run["components"]} >= {"CsvExampleGen", "Transform", "Trainer", "Pusher"}
    story = cli_json(capsys, beam_run.config, "lineage", "serving")
    assert story["run"] == run["run"] and story["live"] is True
    assert story["record"]["runner"] == "beam"
    assert story["blessed"] is True and story["examples"]
