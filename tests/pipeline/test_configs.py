import os
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
    monkeypatch.setenv("PIPELINE_TRAIN_STEPS", "7")
    monkeypatch.setenv("PIPELINE_LEARNING_RATE", "0.5")
    monkeypatch.setenv("PIPELINE_HIDDEN_UNITS", "8,4")
    monkeypatch.setenv("PIPELINE_ENABLE_CACHE", "false")
    monkeypatch.setenv("PIPELINE_BEAM_PIPELINE_ARGS", "--direct_num_workers=2 --direct_running_mode=multi_processing")
    monkeypatch.setenv("PIPELINE_OUTPUT_ROOT", str(tmp_path))
    config = configs.load_config()
    assert config.train_steps == 7
    assert config.learning_rate == 0.5
    assert config.hidden_units == (8, 4)
    assert config.enable_cache is False
    assert config.beam_pipeline_args == ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
    assert config.serving_model_dir == str(tmp_path / "serving_model" / "chicago-taxi")
    # Where `pipeline promote` publishes: beside the Pusher's serving directory, never the same one.
    assert config.production_model_dir == str(tmp_path / "production_model" / "chicago-taxi")


def test_explicit_overrides_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("PIPELINE_TRAIN_STEPS", "7")
    assert configs.load_config(train_steps=3).train_steps == 3


def _error(**overrides) -> str:
    with pytest.raises(configs.ConfigError) as raised:
        configs.load_config(**overrides)
    return str(raised.value)


# Each environment value a user may get wrong, and the whole message: the variable, what it accepts, the
# value given.
BAD_ENVIRONMENT = {
    "PIPELINE_TRAIN_STEPS=many": "PIPELINE_TRAIN_STEPS must be a whole number of at least 1, got 'many'",
    "PIPELINE_TRAIN_STEPS=-5": "PIPELINE_TRAIN_STEPS must be a whole number of at least 1, got '-5'",
    "PIPELINE_HIDDEN_UNITS=64,x": (
        "PIPELINE_HIDDEN_UNITS must be a comma-separated list of whole numbers of at least 1, e.g. 64,32, "
        "got '64,x'"
    ),
    "PIPELINE_HIDDEN_UNITS=64,0": (
        "PIPELINE_HIDDEN_UNITS must be a comma-separated list of whole numbers of at least 1, e.g. 64,32, "
        "got '64,0'"
    ),
    "PIPELINE_BLESSING_LOWER_BOUND=2": (
        "PIPELINE_BLESSING_LOWER_BOUND must be a number from 0 to 1 (the task's blessing metric, auc, lies "
        "in [0, 1]), got '2'"
    ),
    "PIPELINE_BLESSING_MAX_DECREASE=-0.1": (
        "PIPELINE_BLESSING_MAX_DECREASE must be a number from 0 to 1 (the task's blessing metric, auc, lies "
        "in [0, 1]), got '-0.1'"
    ),
    "TAXI_EVAL_AUC_LOWER_BOUND=1.5": (
        "TAXI_EVAL_AUC_LOWER_BOUND must be a number from 0 to 1 (the task's blessing metric, auc, lies in "
        "[0, 1]), got '1.5'"
    ),
    "PIPELINE_RETRIES=-1": "PIPELINE_RETRIES must be a whole number of 0 or more, got '-1'",
    "PIPELINE_RETRY_BACKOFF_S=-1": "PIPELINE_RETRY_BACKOFF_S must be a number of 0 or more, got '-1'",
    "PIPELINE_LEARNING_RATE=fast": "PIPELINE_LEARNING_RATE must be a number, got 'fast'",
    "PIPELINE_ENABLE_CACHE=maybe": (
        "PIPELINE_ENABLE_CACHE must be one of 1/0, true/false, yes/no, on/off, got 'maybe'"
    ),
    "PIPELINE_BEAM_PROFILE=direct": (
        "PIPELINE_BEAM_PROFILE must be one of auto, in_memory, multi_processing, dataflow, flink, spark, "
        "portable, got 'direct'"
    ),
    "PIPELINE_NUMERIC_DRIFT_MIN_DISTANCE=0": (
        "PIPELINE_NUMERIC_DRIFT_MIN_DISTANCE must be a number above 0 and at most 1, got '0'"
    ),
    "PIPELINE_METADATA_MYSQL_URL=postgres://db/mlmd": (
        "PIPELINE_METADATA_MYSQL_URL must start with mysql://, got postgres scheme"
    ),
    # The URL is never repeated: it may hold a password.
    "PIPELINE_METADATA_MYSQL_URL=mysql://taxi:hunter2@db/mlmd": (
        "PIPELINE_METADATA_MYSQL_URL may not contain a password (it would be recorded with the run); set "
        "PIPELINE_METADATA_MYSQL_PASSWORD or metadata_mysql_password_file instead"
    ),
    "PIPELINE_SCALE=huge": "PIPELINE_SCALE must be one of sample, full, got 'huge'",
    "PIPELINE_BEAM_PIPELINE_ARGS=--labels='a": (
        "PIPELINE_BEAM_PIPELINE_ARGS must be Beam flags as a shell splits them, e.g. --direct_num_workers=2, "
        "got \"--labels='a\""
    ),
}


@pytest.mark.parametrize("setting", BAD_ENVIRONMENT)
def test_a_bad_environment_value_is_named_with_what_is_accepted(setting, monkeypatch):
    variable, _, value = setting.partition("=")
    monkeypatch.setenv(variable, value)
    assert _error() == BAD_ENVIRONMENT[setting]


def test_the_scale_gives_the_training_settings_left_empty(monkeypatch):
    """sample: fixed steps whatever the input; full: whole passes in large batches, no steps at all."""
    for key in list(os.environ):
        if key.startswith(configs.ENV_PREFIX):
            monkeypatch.delenv(key)
    sample = configs.load_config()
    assert (sample.scale, sample.train_steps, sample.batch_size, sample.epochs) == ("sample", 300, 128, 3)
    monkeypatch.setenv("PIPELINE_SCALE", "full")
    full = configs.load_config()
    assert (full.train_steps, full.batch_size, full.epochs) == (None, 4096, 1)
    assert full.hyperparameters["batch_size"] == 4096
    monkeypatch.setenv("PIPELINE_BATCH_SIZE", "1024")
    monkeypatch.setenv("PIPELINE_EPOCHS", "2")
    assert (configs.load_config().batch_size, configs.load_config().epochs) == (1024, 2)
    # Steps would silently cut the pass short: refused by name.
    monkeypatch.setenv("PIPELINE_TRAIN_STEPS", "500")
    assert _error() == (
        "PIPELINE_TRAIN_STEPS does not apply at PIPELINE_SCALE=full (got '500'): the Trainer makes "
        "PIPELINE_EPOCHS whole passes over the training split; unset it, or use the sample scale"
    )


def test_a_bad_value_given_in_code_is_named_by_its_field(monkeypatch):
    # The environment's value is not the one refused: the error names the field given instead.
    monkeypatch.setenv("PIPELINE_TRAIN_STEPS", "7")
    assert _error(train_steps=0) == "train_steps must be a whole number of at least 1, got 0"
    assert _error(blessing_lower_bound=1.5) == (
        "blessing_lower_bound must be a number from 0 to 1 (the task's blessing metric, auc, lies in [0, 1]), "
        "got 1.5"
    )
    assert _error(log_level="loud") == "log_level must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"


def test_the_blessing_bounds_follow_the_tasks_metric():
    # sparse_categorical_accuracy lies in [0, 1]; a metric outside BOUNDED_METRICS takes any lower bound.
    assert _error(task="examples.penguin.modules", blessing_lower_bound=2.0) == (
        "blessing_lower_bound must be a number from 0 to 1 (the task's blessing metric, "
        "sparse_categorical_accuracy, lies in [0, 1]), got 2.0"
    )
    assert configs.load_config(blessing_lower_bound=1.0, blessing_max_decrease=0.0).blessing_lower_bound == 1.0
    assert "sparse_categorical_accuracy" in configs.BOUNDED_METRICS and "auc" in configs.BOUNDED_METRICS
    assert configs.blessing_form("blessing_lower_bound", "mean_label") == "a number"
    assert configs.blessing_form("blessing_max_decrease", "mean_label") == "a number of 0 or more"


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


def test_the_gates_settings_are_checked(tmp_path):
    assert _error(min_eval_rows=0) == "min_eval_rows must be a whole number of at least 1, got 0"
    assert _error(numeric_drift_min_distance=1.5) == (
        "numeric_drift_min_distance must be a number above 0 and at most 1, got 1.5"
    )
    overrides = configs.env_overrides({"PIPELINE_NUMERIC_DRIFT_OVERRIDES": "fare=0.2, trip_start_timestamp=off"})
    assert overrides == {"numeric_drift_overrides": ("fare=0.2", "trip_start_timestamp=off")}
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    # A feature the schema does not have is named before anything runs.
    config = configs.load_config(data_root=str(tmp_path), numeric_drift_overrides=("fares=0.2",))
    expected = "numeric_drift_overrides names 'fares'.*PIPELINE_NUMERIC_DRIFT_OVERRIDES"
    with pytest.raises(configs.ConfigError, match=expected):
        input_checks.preflight(config)


def test_the_task_gives_the_defaults_and_settings_override_them():
    config = configs.load_config()
    task = config.task_spec
    assert (config.task, config.pipeline_name) == ("modules", task.name)
    assert config.schema_path == task.schema_file and config.data_root == task.data_root
    assert config.blessing_lower_bound == config.blessing_bound == task.blessing_bound
    assert config.slice_feature_keys == task.slice_feature_keys
    assert configs.load_config(blessing_lower_bound=0.9, slice_feature_keys=()).slice_feature_keys == ()
    with pytest.raises(configs.ConfigError, match="task 'no_such_task' cannot be loaded"):
        configs.load_config(task="no_such_task")


def test_the_older_names_of_settings_still_work():
    """TAXI_* variables and the eval_auc_* names of the blessing settings, from before tasks were
    interchangeable; the new names win where both are given."""
    old = configs.env_overrides({"TAXI_TRAIN_STEPS": "7", "TAXI_EVAL_AUC_LOWER_BOUND": "0.8"})
    assert old == {"train_steps": 7, "blessing_lower_bound": 0.8}
    both = configs.env_overrides({"TAXI_TRAIN_STEPS": "7", "PIPELINE_TRAIN_STEPS": "9",
                                  "PIPELINE_EVAL_AUC_LOWER_BOUND": "0.8", "PIPELINE_BLESSING_LOWER_BOUND": "0.6"})
    assert both == {"train_steps": 9, "blessing_lower_bound": 0.6}
    assert configs.load_config(eval_auc_lower_bound=0.75, eval_auc_max_decrease=0.01).blessing_max_decrease == 0.01
    with pytest.raises(configs.ConfigError, match="^TAXI_EPOCHS must be a whole number of at least 1, got 'many'$"):
        configs.env_overrides({"TAXI_EPOCHS": "many"})


def test_slice_thresholds_come_from_the_task_and_a_setting_replaces_them(monkeypatch):
    task = configs.load_config().task_spec
    assert configs.load_config().slice_thresholds == tuple(
        configs.SliceThreshold(*name.split("=", 1), bounds["lower_bound"], bounds["max_decrease"])
        for name, bounds in task.blessing_slice_thresholds.items()
    ) != ()
    monkeypatch.setenv("PIPELINE_BLESSING_SLICE_THRESHOLDS",
                       '{"payment_type=Credit Card": {"lower_bound": 0.55, "max_decrease": 0.1}}')
    assert configs.load_config().slice_thresholds == (
        configs.SliceThreshold("payment_type", "Credit Card", 0.55, 0.1),)
    monkeypatch.setenv("PIPELINE_BLESSING_SLICE_THRESHOLDS", "{}")
    assert configs.load_config().slice_thresholds == ()


SLICE_FORM = 'a JSON object of "feature=value": {"lower_bound": <number>, "max_decrease": <number>}'


@pytest.mark.parametrize(("setting", "error"), [
    ("[0.6]", f" must be {SLICE_FORM}, got '[0.6]' (not a JSON object)"),
    ('{"payment_type": {"lower_bound": 0.6, "max_decrease": 0}}',
     f" must be {SLICE_FORM}, got '{{\"payment_type\": {{\"lower_bound\": 0.6, \"max_decrease\": 0}}}}' "
     "('payment_type' is not \"feature=value\")"),
    ('{"payment_type=Cash": {"lower_bound": 0.6}}',
     f" must be {SLICE_FORM}, got '{{\"payment_type=Cash\": {{\"lower_bound\": 0.6}}}}' ('payment_type=Cash' "
     "needs exactly a numeric lower_bound and max_decrease, got {'lower_bound': 0.6})"),
    ("{'payment_type=Cash': 1}", f" must be {SLICE_FORM}, got \"{{'payment_type=Cash': 1}}\" (not valid JSON: "
     "Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    # Each slice's bounds lie where the overall ones must (blessing_form).
    ('{"payment_type=Cash": {"lower_bound": 0.6, "max_decrease": -0.1}}',
     ": the max_decrease of payment_type=Cash must be a number from 0 to 1 (the task's blessing metric, auc, lies "
     "in [0, 1]), got -0.1"),
    ('{"payment_type=Cash": {"lower_bound": 1.5, "max_decrease": 0}}',
     ": the lower_bound of payment_type=Cash must be a number from 0 to 1 (the task's blessing metric, auc, lies "
     "in [0, 1]), got 1.5"),
])
def test_a_bad_slice_threshold_setting_is_refused_naming_the_variable(setting, error, monkeypatch):
    monkeypatch.setenv("PIPELINE_BLESSING_SLICE_THRESHOLDS", setting)
    assert _error() == "PIPELINE_BLESSING_SLICE_THRESHOLDS" + error
    # Given in code (or by the task), the field is named instead.
    monkeypatch.delenv("PIPELINE_BLESSING_SLICE_THRESHOLDS")
    assert _error(blessing_slice_thresholds=setting) == "blessing_slice_thresholds" + error


FARE_TASK = "examples.taxi_fare.modules"


def test_a_task_whose_blessing_metric_is_lower_is_better_takes_an_upper_bound_and_an_allowed_increase(monkeypatch):
    config = configs.load_config(task=FARE_TASK)
    task = config.task_spec
    assert (task.regression, task.blessing_higher_is_better, task.blessing_metric) == (
        True, False, "mean_absolute_error")
    assert (config.blessing_upper_bound, config.blessing_max_increase) == (task.blessing_bound, task.blessing_max_change)
    assert (config.blessing_bound, config.blessing_max_change) == (task.blessing_bound, task.blessing_max_change)
    assert (config.blessing_lower_bound, config.blessing_max_decrease) == (None, None)
    assert configs.load_config(task=FARE_TASK, blessing_upper_bound=2.5).blessing_bound == 2.5
    # The other direction's bounds judge nothing the user meant: refused, naming what to set instead.
    assert _error(task=FARE_TASK, blessing_lower_bound=1.0) == (
        "blessing_lower_bound does not apply to task examples.taxi_fare.modules: its blessing metric, "
        "mean_absolute_error, is one where lower is better (got 1.0); set PIPELINE_BLESSING_UPPER_BOUND and "
        "PIPELINE_BLESSING_MAX_INCREASE instead"
    )
    assert _error(blessing_max_increase=0.1) == (
        "blessing_max_increase does not apply to task modules: its blessing metric, auc, is one where higher is "
        "better (got 0.1); set PIPELINE_BLESSING_LOWER_BOUND and PIPELINE_BLESSING_MAX_DECREASE instead"
    )
    # An error is never below 0: an upper bound below 0 could never be met.
    assert _error(task=FARE_TASK, blessing_upper_bound=-1.0) == (
        "blessing_upper_bound must be a number of 0 or more (the task's blessing metric, mean_absolute_error, is "
        "never below 0), got -1.0"
    )
    monkeypatch.setenv("PIPELINE_BLESSING_MAX_INCREASE", "-0.5")
    assert _error(task=FARE_TASK).startswith("PIPELINE_BLESSING_MAX_INCREASE must be a number of 0 or more")
    monkeypatch.delenv("PIPELINE_BLESSING_MAX_INCREASE")
    # Its slices are judged by an upper bound and an allowed increase too.
    monkeypatch.setenv("PIPELINE_BLESSING_SLICE_THRESHOLDS",
                       '{"payment_type=Cash": {"upper_bound": 3, "max_increase": 0.5}}')
    assert configs.load_config(task=FARE_TASK).slice_thresholds == (
        configs.SliceThreshold("payment_type", "Cash", 3.0, 0.5),)
    monkeypatch.setenv("PIPELINE_BLESSING_SLICE_THRESHOLDS",
                       '{"payment_type=Cash": {"lower_bound": 3, "max_decrease": 0.5}}')
    assert _error(task=FARE_TASK) == (
        'PIPELINE_BLESSING_SLICE_THRESHOLDS must be a JSON object of "feature=value": {"upper_bound": <number>, '
        '"max_increase": <number>}, got \'{"payment_type=Cash": {"lower_bound": 3, "max_decrease": 0.5}}\' '
        "('payment_type=Cash' needs exactly a numeric upper_bound and max_increase, got {'lower_bound': 3, "
        "'max_decrease': 0.5})"
    )


TASK_MODULE = '''
NAME = "made-up"
DATA_ROOT = SCHEMA_FILE = TRANSFORM_MODULE_FILE = TRAINER_MODULE_FILE = "/nowhere"
LABEL_KEY = "y"
LABEL_SOURCE_KEYS = ("y",)
METRICS = ("ExampleCount", "MeanSquaredError")
BLESSING_METRIC = "mean_squared_error"
'''


@pytest.mark.parametrize(("package", "declared", "error"), [
    ("both_pairs", "CLASSES = ()\nBLESSING_LOWER_BOUND = BLESSING_MAX_DECREASE = 0\nBLESSING_UPPER_BOUND = "
     "BLESSING_MAX_INCREASE = 1", "must define BLESSING_LOWER_BOUND and BLESSING_MAX_DECREASE (a blessing metric "
     "where higher is better) or BLESSING_UPPER_BOUND and BLESSING_MAX_INCREASE (one where lower is better), one "
     "pair and not the other"),
    ("neither_pair", "CLASSES = ()", "must define BLESSING_LOWER_BOUND and BLESSING_MAX_DECREASE"),
    ("half_a_pair", "CLASSES = ()\nBLESSING_UPPER_BOUND = 1", "must define BLESSING_LOWER_BOUND and"),
    ("mixed_pair", "CLASSES = ()\nBLESSING_UPPER_BOUND = 1\nBLESSING_MAX_DECREASE = 0", "one pair and not the other"),
    ("one_class", "CLASSES = ('only',)\nBLESSING_UPPER_BOUND = 1\nBLESSING_MAX_INCREASE = 0",
     "task 'one_class': CLASSES needs at least two classes (a classification) or none (a regression: the label is "
     "a number), got ('only',)"),
])
def test_a_task_declares_its_blessing_direction_by_the_pair_of_bounds_it_names(
        package, declared, error, tmp_path, monkeypatch):
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "task.py").write_text(TASK_MODULE + declared + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(configs.ConfigError) as raised:
        configs.load_task(package)
    assert error in str(raised.value)


def test_a_task_package_that_cannot_be_imported_says_why(tmp_path, monkeypatch):
    message = str(pytest.raises(configs.ConfigError, configs.load_task, "nowhere_task").value)
    assert message == (
        "task 'nowhere_task' cannot be loaded: No module named 'nowhere_task'. PIPELINE_TASK names a package with a "
        "task module (modules, examples.penguin.modules, or one of your own), importable by this Python: installed, "
        "or the folder holding its top-level package on PYTHONPATH"
    )
    # Found on the import path, anywhere: a package whose task module imports what is not there is named so.
    (tmp_path / "broken_task").mkdir()
    (tmp_path / "broken_task" / "__init__.py").write_text("")
    (tmp_path / "broken_task" / "task.py").write_text("from . import featurs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = str(pytest.raises(configs.ConfigError, configs.load_task, "broken_task").value)
    assert message.startswith("task 'broken_task' cannot be loaded: an import in its code failed: cannot import "
                              "name 'featurs' from 'broken_task'")
