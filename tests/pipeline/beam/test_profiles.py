"""The Beam args of each profile, and the auto profile's choice by input size."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
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

from pipeline import configs, inputs
from pipeline import pipeline as pipeline_definition
from pipeline.beam import profiles
from tests.conftest import tiny_input
from tests.servers import free_port


def test_small_input_runs_in_memory_with_no_beam_args(tmp_path):
    config = configs.load_config(data_root=tiny_input(tmp_path, 1000), output_root=str(tmp_path / "out"))
    assert profiles.resolved_beam_profile(config) == "in_memory"
    # Beam's own default (in-memory, one worker): no arg, so TFX builds no source package of itself.
    assert profiles.beam_args(config) == []
    assert pipeline_definition.create_pipeline(config).beam_pipeline_args == []


def test_large_input_gets_a_worker_per_core(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "MULTI_PROCESSING_MIN_INPUT_BYTES", 100)
    config = configs.load_config(data_root=tiny_input(tmp_path, 1000), output_root=str(tmp_path / "out"))
    assert profiles.resolved_beam_profile(config) == "multi_processing"
    args = profiles.beam_args(config)
    assert "--direct_running_mode=multi_processing" in args
    assert "--direct_num_workers=0" in args  # Beam: one worker per core.


def _evaluator_args(config) -> list[str]:
    """The Beam args TFX gives the Evaluator: the pipeline's, then the component's."""
    compiled = pipeline_definition.create_pipeline(config)
    [evaluator] = [c for c in compiled.components if c.id == "Evaluator"]
    return list(evaluator.executor_spec.beam_pipeline_args)


def test_the_evaluator_runs_in_one_process_where_its_eval_split_is_small(tmp_path, monkeypatch):
    """A large input with the eval split capped by max_eval_rows: every other component gets a worker
    per core, the Evaluator one process (its args come last, so they win in Beam's parsing)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_text("a,b\n" + "1,2\n" * 10_000)
    data_root = str(tmp_path / "data")
    monkeypatch.setattr(profiles, "MULTI_PROCESSING_MIN_INPUT_BYTES", 10_000)  # the input is 40,004 bytes
    config = configs.load_config(data_root=data_root, output_root=str(tmp_path / "out"), max_eval_rows=100)
    train, evaluation = inputs.split_hash_buckets(config)
    assert evaluation == 1 and train >= 99  # the eval split capped: about 100 rows
    assert profiles.evaluator_beam_args(config) == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    args = _evaluator_args(config)
    assert args[: len(profiles.beam_args(config))] == profiles.beam_args(config)
    options = PipelineOptions(args).view_as(DirectOptions)
    assert (options.direct_running_mode, options.direct_num_workers) == ("in_memory", 1)
    [transform] = [c for c in pipeline_definition.create_pipeline(config).components if c.id == "Transform"]
    assert PipelineOptions(transform.executor_spec.beam_pipeline_args).view_as(DirectOptions).direct_running_mode == (
        "multi_processing"
    )
    # Without the cap the eval split is a third of the input: the Evaluator gets a worker per core too.
    uncapped = configs.load_config(data_root=data_root, output_root=str(tmp_path / "out"), max_eval_rows=0)
    assert profiles.evaluator_beam_args(uncapped) == []
    assert _evaluator_args(uncapped) == profiles.beam_args(uncapped)


def test_explicit_profile_and_extra_args_are_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "MULTI_PROCESSING_MIN_INPUT_BYTES", 100)
    monkeypatch.setenv("PIPELINE_BEAM_PROFILE", "in_memory")
    monkeypatch.setenv("PIPELINE_BEAM_PIPELINE_ARGS", "--runner=DirectRunner --direct_num_workers=1")
    config = configs.load_config(data_root=tiny_input(tmp_path, 1000), output_root=str(tmp_path / "out"))
    assert profiles.beam_args(config) == ["--runner=DirectRunner", "--direct_num_workers=1"]
    assert _evaluator_args(config) == ["--runner=DirectRunner", "--direct_num_workers=1"]
    monkeypatch.setenv("PIPELINE_BEAM_PROFILE", "auto")
    config = configs.load_config(data_root=str(tmp_path / "data"), output_root=str(tmp_path / "out"))
    assert profiles.resolved_beam_profile(config) == "multi_processing"
    assert profiles.evaluator_beam_args(config) == []  # explicit args are used as given


def test_remote_data_stays_in_memory_unless_a_profile_says_otherwise():
    config = configs.load_config(data_root="gs://bucket/taxi")
    assert not inputs.is_local(config)
    assert profiles.resolved_beam_profile(config) == "in_memory"


REMOTE_SETTINGS = {
    "dataflow": {"beam_gcp_project": "my-project", "beam_gcp_region": "europe-west1",
                 "beam_temp_location": "gs://my-bucket/tmp"},
    "flink": {"beam_cluster_master": "flink-jobmanager:8081", "beam_job_endpoint": "flink-jobmanager:8099"},
    "spark": {"beam_job_endpoint": "spark-master:8099"},
    "portable": {"beam_job_endpoint": "job-service:8099"},
}


RUNNER_CLASSES = {
    "auto": "SwitchingDirectRunner",
    "in_memory": "SwitchingDirectRunner",
    "multi_processing": "SwitchingDirectRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "portable": "PortableRunner",
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
        parsed = options[name]
        assert value in parsed if isinstance(parsed, list) else str(parsed) == value, arg
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
    monkeypatch.setenv("PIPELINE_BEAM_PROFILE", "multi_processing")
    monkeypatch.setenv("PIPELINE_BEAM_DIRECT_NUM_WORKERS", "3")
    monkeypatch.setenv("PIPELINE_BEAM_PIPELINE_ARGS", "--direct_num_workers=2")
    options = PipelineOptions(profiles.beam_args(configs.load_config())).view_as(DirectOptions)
    assert options.direct_running_mode == "multi_processing"
    assert options.direct_num_workers == 2


def test_a_profile_missing_a_setting_names_its_variable():
    with pytest.raises(configs.ConfigError, match="needs beam_gcp_project \\(set PIPELINE_BEAM_GCP_PROJECT\\)"):
        profiles.beam_args(configs.load_config(beam_profile="dataflow"))
    with pytest.raises(configs.ConfigError, match="^beam_profile must be one of auto, in_memory, .*, got 'direct'$"):
        configs.load_config(beam_profile="direct")


def test_portable_runners_wait_on_their_job_service_as_long_as_a_job_runs():
    # Beam 2.60 holds a job's state stream to --job_server_timeout: its default, 60 s, failed Transform.
    for profile in ("flink", "spark", "portable"):
        config = configs.load_config(beam_profile=profile, **REMOTE_SETTINGS[profile])
        options = PipelineOptions(profiles.beam_args(config))
        assert options.view_as(PortableOptions).job_server_timeout == 86400
    with pytest.raises(configs.ConfigError, match="^beam_job_server_timeout_s must be a whole number of at least 1, got 0$"):
        configs.load_config(beam_job_server_timeout_s=0)


def test_an_external_worker_pool_is_the_workers_environment(monkeypatch):
    monkeypatch.setenv("PIPELINE_BEAM_PROFILE", "portable")
    monkeypatch.setenv("PIPELINE_BEAM_JOB_ENDPOINT", "localhost:8099")
    monkeypatch.setenv("PIPELINE_BEAM_ENVIRONMENT_TYPE", "EXTERNAL")
    monkeypatch.setenv("PIPELINE_BEAM_ENVIRONMENT_CONFIG", "localhost:50000")
    options = PipelineOptions(profiles.beam_args(configs.load_config(**configs.env_overrides())))
    assert options.view_as(StandardOptions).runner == "PortableRunner"
    assert options.view_as(PortableOptions).job_endpoint == "localhost:8099"
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"
    assert options.view_as(PortableOptions).environment_config == "localhost:50000"
    # The module files' functions by value, as for every remote profile; the pool already runs in an
    # environment holding the lock and the project, so nothing is built, shipped or installed: the
    # requirements file TFX needs to see (else it builds a package of itself) names none.
    setup = options.view_as(SetupOptions)
    assert setup.pickle_library == "cloudpickle"
    assert setup.setup_file is None
    assert setup.requirements_file == str(profiles.PREPARED_WORKERS_REQUIREMENTS)
    assert setup.requirements_cache == "skip"
    assert not [line for line in Path(setup.requirements_file).read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    # The dependency flag TFX looks for is there: it adds no package of its own.
    from tfx.utils import dependency_utils  # TFX's helper loads Beam's options; only this test needs it.

    args = profiles.beam_args(configs.load_config(**configs.env_overrides()))
    assert dependency_utils.make_beam_dependency_flags(args) == args
    monkeypatch.delenv("PIPELINE_BEAM_ENVIRONMENT_CONFIG")
    with pytest.raises(configs.ConfigError, match="EXTERNAL needs beam_environment_config, the worker pool's "
                       "host:port \\(set PIPELINE_BEAM_ENVIRONMENT_CONFIG\\)"):
        profiles.beam_args(configs.load_config(**configs.env_overrides()))


def test_an_environment_config_set_wins_over_the_image():
    config = configs.load_config(beam_profile="flink", beam_sdk_container_image="taxi:1",
                                 beam_environment_config="registry/taxi:2", **REMOTE_SETTINGS["flink"])
    assert PipelineOptions(profiles.beam_args(config)).view_as(PortableOptions).environment_config == "registry/taxi:2"


def test_the_flink_and_spark_profiles_go_through_a_job_server_and_name_each_job():
    for profile in ("flink", "spark"):
        config = configs.load_config(beam_profile=profile, **REMOTE_SETTINGS[profile])
        options = PipelineOptions(profiles.beam_args(config))
        assert options.view_as(PortableOptions).job_endpoint == REMOTE_SETTINGS[profile]["beam_job_endpoint"]
        # Idle Python workers kept for the job's next stage: Spark starts new ones per stage otherwise.
        assert options.get_all_options()["environment_cache_millis"] == "30000"
        compiled = pipeline_definition.create_pipeline(config)
        names = {c.id: [a for a in c.executor_spec.beam_pipeline_args if a.startswith("--job_name=")]
                 for c in compiled.components if hasattr(c.executor_spec, "beam_pipeline_args")}
        assert names == {
            "CsvExampleGen": ["--job_name=chicago-taxi-csvexamplegen"],
            "StatisticsGen": ["--job_name=chicago-taxi-statisticsgen"],
            "Transform": ["--job_name=chicago-taxi-transform"],
            "Evaluator": ["--job_name=chicago-taxi-evaluator"],
        }
    with pytest.raises(configs.ConfigError, match="needs beam_job_endpoint \\(set PIPELINE_BEAM_JOB_ENDPOINT\\)"):
        profiles.beam_args(configs.load_config(beam_profile="flink", beam_cluster_master="jm:8081"))
    # The local profiles name no job: the DirectRunner has no job list, and the args stay Beam's default.
    assert profiles.job_name_args(configs.load_config(beam_profile="in_memory"), "Transform") == []


def test_a_flink_jobmanager_or_spark_master_nobody_answers_at_is_refused_at_once():
    port = free_port()
    settings = {"beam_job_endpoint": "127.0.0.1:1", "beam_environment_type": "PROCESS",
                "beam_environment_config": '{"command": "boot"}'}
    with pytest.raises(configs.ConfigError, match=f"^the Flink JobManager at 127.0.0.1:{port} \\(beam_cluster_master, "
                       "set PIPELINE_BEAM_CLUSTER_MASTER\\) does not answer: "):
        profiles.check_engine(configs.load_config(beam_profile="flink", beam_cluster_master=f"127.0.0.1:{port}",
                                                  **settings), timeout_s=5)
    with pytest.raises(configs.ConfigError, match="^the Flink JobManager at flink-jobmanager.invalid:8081 "
                       "\\(beam_cluster_master, set PIPELINE_BEAM_CLUSTER_MASTER\\) does not answer: "):
        profiles.check_engine(configs.load_config(beam_profile="flink", beam_cluster_master="flink-jobmanager.invalid:8081",
                                                  **settings), timeout_s=5)
    with pytest.raises(configs.ConfigError, match=f"^the Spark master at spark://127.0.0.1:{port} "):
        profiles.check_engine(configs.load_config(beam_profile="spark", beam_cluster_master=f"spark://127.0.0.1:{port}",
                                                  **settings), timeout_s=5)


def test_a_job_endpoint_nobody_answers_at_is_refused_at_once():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        # Any gRPC server answers the connection check; Beam's job API is exercised end to end
        # (tests/pipeline/beam/test_worker_boot.py).
        profiles.check_engine(configs.load_config(beam_profile="portable", beam_job_endpoint=f"127.0.0.1:{port}"))
    finally:
        server.stop(None)
    with pytest.raises(configs.ConfigError, match=f"no Beam job service answers at 127.0.0.1:{port} within 1 s "
                       "\\(beam_job_endpoint, set PIPELINE_BEAM_JOB_ENDPOINT\\)"):
        profiles.check_engine(
            configs.load_config(beam_profile="portable", beam_job_endpoint=f"127.0.0.1:{port}"), timeout_s=1
        )
    # Other profiles have no job service of their own to check.
    profiles.check_engine(configs.load_config(beam_profile="in_memory"), timeout_s=1)
