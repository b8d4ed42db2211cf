"""The Beam args of each profile, and the auto profile's choice by input size."""

from __future__ import annotations

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

from pipeline import configs, inputs
from pipeline import pipeline as pipeline_definition
from pipeline.beam import profiles
from tests.conftest import tiny_input


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


def test_explicit_profile_and_extra_args_are_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "MULTI_PROCESSING_MIN_INPUT_BYTES", 100)
    monkeypatch.setenv("PIPELINE_BEAM_PROFILE", "in_memory")
    monkeypatch.setenv("PIPELINE_BEAM_PIPELINE_ARGS", "--runner=DirectRunner --direct_num_workers=1")
    config = configs.load_config(data_root=tiny_input(tmp_path, 1000), output_root=str(tmp_path / "out"))
    assert profiles.beam_args(config) == ["--runner=DirectRunner", "--direct_num_workers=1"]


def test_remote_data_stays_in_memory_unless_a_profile_says_otherwise():
    config = configs.load_config(data_root="gs://bucket/taxi")
    assert not inputs.is_local(config)
    assert profiles.resolved_beam_profile(config) == "in_memory"


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
    with pytest.raises(configs.ConfigError, match="beam_profile 'direct' is not one of auto, in_memory, "):
        configs.load_config(beam_profile="direct")
