"""What the console shows and what the run's log file keeps (pipeline/logs.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings

import absl.logging
import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import configs, logs
from pipeline.configs import PROJECT_ROOT


@pytest.fixture
def restore_logging():
    """configure() rewires the process's logging; put pytest's and everyone's handlers back after."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level, warnings.showwarning, logs._Handlers.console, logs._Handlers.file)
    verbosity = absl.logging.get_verbosity()
    yield
    absl.logging.set_verbosity(verbosity)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in before[0]:
            handler.close()
    for handler in before[0]:
        root.addHandler(handler)
    root.setLevel(before[1])
    warnings.showwarning = before[2]
    logs._Handlers.console, logs._Handlers.file = before[3], before[4]
    logs._SECRETS.clear()


class _NoOutput(beam.DoFn):
    def process(self, element):
        print(element)


def _console_and_file(level: str, tmp_path, emit) -> tuple[str, str]:
    console = io.StringIO()
    path = logs.configure(level, tmp_path / "run.log", stream=console)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = logs._show_warning
        emit()
    logs._Handlers.file.flush()
    return console.getvalue(), path.read_text()


def _emit_each_kind():
    logging.getLogger("pipeline.example").warning("the task's data needs a look")  # Our code.
    warnings.warn("a notice from the user's code", UserWarning)  # The user's code.
    beam.ParDo(_NoOutput())  # Beam's "No iterator is returned" warning: a library's, nothing to act on.
    PipelineOptions(["--direct_num_workrs=2"]).get_all_options()  # A misspelt Beam arg: actionable.
    logging.getLogger("absl").error("Execution %d failed.", 7)  # TFX's echo of the error the run reports.


def test_the_console_shows_what_a_user_can_act_on_and_the_file_keeps_everything(tmp_path, restore_logging):
    console, full = _console_and_file("WARNING", tmp_path, _emit_each_kind)
    assert console.splitlines() == [
        "WARNING pipeline.example: the task's data needs a look",
        "WARNING py.warnings: UserWarning: a notice from the user's code",
        "WARNING apache_beam.options.pipeline_options: Discarding unparseable args: ['--direct_num_workrs=2']",
    ]
    for line in (*console.splitlines(), "No iterator is returned by the process method", "Execution 7 failed."):
        assert line.split(": ", 1)[-1] in full


def test_info_shows_everything_on_the_console(tmp_path, restore_logging):
    console, _ = _console_and_file("INFO", tmp_path, _emit_each_kind)
    assert "No iterator is returned by the process method" in console
    assert "Execution 7 failed." in console


def test_a_failure_names_the_users_line_and_the_full_log(tmp_path, restore_logging):
    path = logs.configure("WARNING", tmp_path / "run.log", stream=io.StringIO())

    def preprocessing_fn(inputs):
        return {"x": undefined_name}  # noqa: F821

    try:
        json.loads("{}", object_hook=preprocessing_fn)  # The user's function, called by a library.
    except NameError as error:
        failure = io.StringIO()
        logs.report_failure(error, failure)
    line = preprocessing_fn.__code__.co_firstlineno + 1
    assert failure.getvalue().splitlines() == [
        "error: NameError: name 'undefined_name' is not defined",
        f"  at {__file__}, line {line}, in preprocessing_fn",
        f"The full log: {path}",
    ]
    assert "Traceback (most recent call last)" in path.read_text()

    # An error from the libraries alone names no line of the user's.
    try:
        json.loads("{")
    except ValueError as error:
        failure = io.StringIO()
        logs.report_failure(error, failure)
    assert failure.getvalue().splitlines()[1:] == [f"The full log: {path}"]


def test_beams_echo_of_a_failed_step_goes_to_the_file_only(tmp_path, restore_logging):
    error = OSError(28, "No space left on device [while running 'Write']")
    console, full = _console_and_file(
        "WARNING", tmp_path, lambda: logging.getLogger("apache_beam.runners.common").error(error))
    assert console == "" and "[while running 'Write']" in full


def test_an_explained_failure_is_its_message_alone_and_its_traceback_goes_to_the_file(tmp_path, restore_logging):
    path = logs.configure("WARNING", tmp_path / "run.log", stream=io.StringIO())
    try:
        raise logs.ExplainedFailure("out of disk space: writing /x failed; ...")
    except RuntimeError as error:
        failure = io.StringIO()
        logs.report_failure(error, failure)
    assert failure.getvalue().splitlines() == [
        "error: out of disk space: writing /x failed; ...", f"The full log: {path}"]
    assert "Traceback (most recent call last)" in path.read_text()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a file every write to fails with ENOSPC")
def test_a_log_file_on_a_full_disk_loses_its_records_without_a_word(restore_logging, capfd):
    console = io.StringIO()
    logs.configure("WARNING", "/dev/full", stream=console)
    for number in range(3):
        logging.getLogger("pipeline.example").warning("record %d", number)
    assert console.getvalue().splitlines() == [f"WARNING pipeline.example: record {n}" for n in range(3)]
    assert "Logging error" not in capfd.readouterr().err


def test_a_registered_secret_is_masked_on_the_console_and_in_the_file(tmp_path, restore_logging):
    logs.mask_secret("s3cr3t-pw")
    console, full = _console_and_file(
        "INFO", tmp_path, lambda: logging.getLogger("tfx.example").info("connecting with password %s", "s3cr3t-pw")
    )
    assert "s3cr3t-pw" not in console + full
    assert "connecting with password ********" in console and "connecting with password ********" in full


def test_each_run_gets_a_new_log_file_and_old_ones_go(tmp_path):
    config = configs.load_config(output_root=str(tmp_path), log_files_to_keep=3)
    folder = tmp_path / "logs" / config.pipeline_name
    folder.mkdir(parents=True)
    for age in range(5):
        old = folder / f"old-{age}.log"
        old.write_text("")
        os.utime(old, (1_000_000 - age, 1_000_000 - age))
    path = logs.log_file_for(config, "local")
    assert path.parent == folder and path.name.endswith("-local.log") and not path.exists()
    # Two kept, and the new one makes three.
    assert sorted(p.name for p in folder.iterdir()) == ["old-0.log", "old-1.log"]


def test_a_bad_log_level_is_named():
    with pytest.raises(configs.ConfigError, match="^log_level must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'$"):
        configs.load_config(log_level="loud")
    assert configs.load_config(log_level=" info").log_level == "INFO"


def test_the_cpp_levels_and_child_warnings_follow_the_log_level():
    quiet = {}
    logs.set_process_defaults(quiet)
    assert quiet["TF_CPP_MIN_LOG_LEVEL"] == quiet["GLOG_minloglevel"] == "3"
    assert "ignore::FutureWarning:google.api_core._python_version_support" in quiet["PYTHONWARNINGS"]
    logs.set_process_defaults(quiet)  # Idempotent: entries are not added twice.
    assert quiet["PYTHONWARNINGS"].count("google.api_core") == 1
    for level in ("INFO", "debug"):
        loud = {"TAXI_LOG_LEVEL": level}
        logs.set_process_defaults(loud)
        assert loud["TF_CPP_MIN_LOG_LEVEL"] == loud["GLOG_minloglevel"] == "0" and "PYTHONWARNINGS" not in loud
    mine = {"TF_CPP_MIN_LOG_LEVEL": "1", "GLOG_minloglevel": "2", "PYTHONWARNINGS": "error"}
    logs.set_process_defaults(mine)
    assert mine["TF_CPP_MIN_LOG_LEVEL"] == "1" and mine["PYTHONWARNINGS"].startswith("error,ignore::")
    assert mine["GLOG_minloglevel"] == "2"


def test_a_shell_gets_the_same_defaults_as_an_export_line():
    """`eval "$(pipeline env)"`, for the tfx CLI, which loads TensorFlow before any of our code runs."""
    assert logs.shell_exports({}) == (
        "export TF_CPP_MIN_LOG_LEVEL=3 GLOG_minloglevel=3 "
        "PYTHONWARNINGS=ignore::FutureWarning:google.api_core._python_version_support,"
        "ignore::FutureWarning:google.auth.transport.grpc"
    )
    assert logs.shell_exports({"PIPELINE_LOG_LEVEL": "INFO"}) == "export TF_CPP_MIN_LOG_LEVEL=0 GLOG_minloglevel=0"
    # What the user set stays, quoted for the shell.
    assert logs.shell_exports({"TF_CPP_MIN_LOG_LEVEL": "1", "PYTHONWARNINGS": "error::x y"}).startswith(
        "export TF_CPP_MIN_LOG_LEVEL=1 GLOG_minloglevel=3 PYTHONWARNINGS='error::x y,ignore::FutureWarning:"
    )
    exported = subprocess.run(
        ["bash", "-c", f'{logs.shell_exports({})}; echo "$TF_CPP_MIN_LOG_LEVEL $GLOG_minloglevel $PYTHONWARNINGS"'],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    ).stdout
    assert exported.split() == ["3", "3", logs.shell_exports({}).split("PYTHONWARNINGS=")[1]]


_LATE_FAILURE = """
from pipeline import logs

logs.configure_beam_worker()


class FailsWhenDeleted:
    def __del__(self):
        raise RuntimeError("deleted at shutdown")


# Deleted as the interpreter empties the module's globals, after it has emptied `sys` there.
logs.zz_deleted_last = FailsWhenDeleted()
"""


def test_a_beam_worker_says_nothing_about_errors_ignored_while_it_shuts_down():
    """What every multi-processing run printed on its console, once per worker, before the fix."""
    done = subprocess.run([sys.executable, "-c", _LATE_FAILURE], capture_output=True, text=True, timeout=120,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr and "is_finalizing" not in done.stderr, done.stderr


_IMPORT_TENSORFLOW = """
import pipeline
import tensorflow as tf
try:
    tf.raw_ops.Reshape(tensor=tf.constant([1, 2, 3]), shape=[2])
except tf.errors.InvalidArgumentError as error:
    print("raised:", error.message)
"""


@pytest.mark.e2e
@pytest.mark.parametrize("level", ["", "INFO"])
def test_tensorflow_says_nothing_at_import_by_default_and_everything_at_info(level):
    """TensorFlow 2.16 logs three C++ errors at import on every machine ("Unable to register cuFFT
    factory", cuDNN, cuBLAS; TF_CPP_MIN_LOG_LEVEL=2 still shows them): silent by default, with a failing
    operation's error still raised; all of it at INFO."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    env.pop("PIPELINE_LOG_LEVEL", None), env.pop("TAXI_LOG_LEVEL", None)
    if level:
        env["PIPELINE_LOG_LEVEL"] = level
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_TENSORFLOW], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert "Input to reshape is a tensor with 3 values" in result.stdout, result.stderr[-3000:]
    if level:
        assert "Unable to register cuDNN factory" in result.stderr
    else:
        assert result.stderr == ""


def test_a_metric_or_count_has_one_format_wherever_it_is_shown():
    """The console's summary, `pipeline blessing` and the report's metric tables all use it."""
    assert [logs.format_number(v) for v in (None, float("nan"), 384, 3776.0, 1_500_000.0, 0.95012, 0.5)] == [
        "-", "-", "384", "3,776", "1,500,000", "0.9501", "0.5000"]
