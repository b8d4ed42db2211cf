"""The Beam running mode chosen by input size, and the TFX source package it avoids."""

from __future__ import annotations

from pipeline import configs
from pipeline import pipeline as taxi_pipeline


def _data(tmp_path, size: int):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_bytes(b"x" * size)
    return str(tmp_path / "data")


def test_small_input_runs_in_memory_with_no_beam_args(tmp_path):
    config = configs.load_config(data_root=_data(tmp_path, 1000), output_root=str(tmp_path / "out"))
    # Beam's own default (in-memory, one worker): no arg, so TFX builds no source package of itself.
    assert configs.direct_runner_args(config) == ()
    assert taxi_pipeline.create_pipeline(config).beam_pipeline_args == []


def test_large_input_gets_a_worker_per_core(tmp_path, monkeypatch):
    monkeypatch.setattr(configs, "MULTI_PROCESSING_MIN_INPUT_BYTES", 100)
    monkeypatch.setattr(configs.os, "cpu_count", lambda: 3)
    config = configs.load_config(data_root=_data(tmp_path, 1000), output_root=str(tmp_path / "out"))
    assert configs.direct_runner_args(config) == (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=3",
    )


def test_explicit_beam_args_are_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXI_BEAM_PIPELINE_ARGS", "--runner=DirectRunner --direct_num_workers=1")
    config = configs.load_config(data_root=_data(tmp_path, 1000), output_root=str(tmp_path / "out"))
    assert configs.direct_runner_args(config) == ("--runner=DirectRunner", "--direct_num_workers=1")


def test_remote_data_keeps_the_configured_args():
    config = configs.load_config(data_root="gs://bucket/taxi")
    assert configs.local_input_bytes(config) is None
    assert configs.direct_runner_args(config) == config.beam_pipeline_args


def test_transform_statistics_are_off_unless_asked_for(tmp_path, monkeypatch):
    config = configs.load_config(data_root=_data(tmp_path, 10), output_root=str(tmp_path / "out"))
    transform = next(c for c in taxi_pipeline.create_components(config) if c.id == "Transform")
    assert transform.exec_properties["disable_statistics"] == 1
    monkeypatch.setenv("TAXI_TRANSFORM_STATISTICS", "true")
    config = configs.load_config(data_root=config.data_root, output_root=str(tmp_path / "out"))
    transform = next(c for c in taxi_pipeline.create_components(config) if c.id == "Transform")
    assert transform.exec_properties["disable_statistics"] == 0
