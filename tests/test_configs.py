import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.guards import input_checks


def test_defaults_are_absolute_and_independent_of_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(configs.ENV_PREFIX):
            monkeypatch.delenv(key)
    config = configs.load_config()
    assert config.data_root == str(configs.PROJECT_ROOT / "data")
    assert Path(config.schema_path).is_file()
    assert Path(config.transform_module_file).is_file()
    assert Path(config.trainer_module_file).is_file()
    assert config.metadata_path == str(
        configs.PROJECT_ROOT / "tfx_output" / "metadata" / "chicago-taxi" / "metadata.db"
    )
    assert config.pipeline_root.startswith(str(configs.PROJECT_ROOT))


def test_environment_overrides_are_parsed_to_the_field_types(monkeypatch, tmp_path):
    monkeypatch.setenv("TAXI_TRAIN_STEPS", "7")
    monkeypatch.setenv("TAXI_LEARNING_RATE", "0.5")
    monkeypatch.setenv("TAXI_HIDDEN_UNITS", "8,4")
    monkeypatch.setenv("TAXI_ENABLE_CACHE", "false")
    monkeypatch.setenv("TAXI_BEAM_PIPELINE_ARGS", "--direct_num_workers=2 --direct_running_mode=multi_processing")
    monkeypatch.setenv("TAXI_OUTPUT_ROOT", str(tmp_path))
    config = configs.load_config()
    assert config.train_steps == 7
    assert config.learning_rate == 0.5
    assert config.hidden_units == (8, 4)
    assert config.enable_cache is False
    assert config.beam_pipeline_args == ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
    assert config.serving_model_dir == str(tmp_path / "serving_model" / "chicago-taxi")


def test_explicit_overrides_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("TAXI_TRAIN_STEPS", "7")
    assert configs.load_config(train_steps=3).train_steps == 3


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("TAXI_TRAIN_STEPS", "many")
    with pytest.raises(ValueError, match="TAXI_TRAIN_STEPS='many' is not a valid int"):
        configs.load_config()


def test_out_of_range_values_are_refused():
    with pytest.raises(ValueError, match="train_steps must be at least 1"):
        configs.load_config(train_steps=0)
    with pytest.raises(ValueError, match="eval_auc_lower_bound"):
        configs.load_config(eval_auc_lower_bound=1.5)


def test_unknown_setting_is_refused():
    with pytest.raises(configs.ConfigError, match="unknown pipeline settings: train_stpes"):
        configs.load_config(train_stpes=3)


def test_missing_inputs_are_named_before_anything_runs(tmp_path):
    with pytest.raises(configs.ConfigError, match=f"data folder {tmp_path / 'nowhere'} does not exist"):
        input_checks.preflight(configs.load_config(data_root=str(tmp_path / "nowhere")))
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(configs.ConfigError, match="no input files match '\\*.csv'"):
        input_checks.preflight(configs.load_config(data_root=str(tmp_path)))
    with pytest.raises(configs.ConfigError, match="no input files match 'span-\\{SPAN\\}/\\*.csv'"):
        input_checks.preflight(configs.load_config(data_root=str(tmp_path), input_pattern="span-{SPAN}/*.csv"))
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(configs.ConfigError, match="schema_path .* does not exist"):
        input_checks.preflight(
            configs.load_config(data_root=str(tmp_path), schema_path=str(tmp_path / "none.pbtxt"))
        )
    with pytest.raises(configs.ConfigError, match="data folder gs://bucket/taxi is not on this machine"):
        input_checks.preflight(configs.load_config(data_root="gs://bucket/taxi"))
    with pytest.raises(configs.ConfigError, match="input_pattern 'span-\\{VERSION\\}/\\*.csv'"):
        input_checks.preflight(configs.load_config(data_root=str(tmp_path), input_pattern="span-{VERSION}/*.csv"))


def test_runner_reports_a_bad_setting_in_one_line_and_writes_nothing(tmp_path):
    env = {
        **os.environ,
        "TAXI_DATA_ROOT": str(tmp_path / "nowhere"),
        "TAXI_OUTPUT_ROOT": str(tmp_path / "out"),
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


def test_the_gates_settings_are_checked(tmp_path):
    with pytest.raises(configs.ConfigError, match="min_eval_rows must be at least 1, got 0"):
        configs.load_config(min_eval_rows=0)
    with pytest.raises(configs.ConfigError, match=r"numeric_drift_min_distance must be in \(0, 1\], got 1.5"):
        configs.load_config(numeric_drift_min_distance=1.5)
    overrides = configs.env_overrides({"TAXI_NUMERIC_DRIFT_OVERRIDES": "fare=0.2, trip_start_timestamp=off"})
    assert overrides == {"numeric_drift_overrides": ("fare=0.2", "trip_start_timestamp=off")}
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    # A feature the schema does not have is named before anything runs.
    config = configs.load_config(data_root=str(tmp_path), numeric_drift_overrides=("fares=0.2",))
    expected = "numeric_drift_overrides names 'fares'.*TAXI_NUMERIC_DRIFT_OVERRIDES"
    with pytest.raises(configs.ConfigError, match=expected):
        input_checks.preflight(config)
