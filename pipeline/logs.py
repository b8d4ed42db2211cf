"""What a run shows a person, and the full log kept in a file for when something goes wrong.

By default the console gets the progress lines, the summary, errors, and the warnings a user can act on:
those logged or warned by code outside the installed libraries (the pipeline's, the task's modules, a
notebook's cells) and the few library warnings in ACTIONABLE. Everything else the libraries say (TFX's
INFO records, deprecation notices, Beam's and TensorFlow's warnings) goes only to the run's log file,
<output_root>/logs/<pipeline>/<time>-<pid>-<runner>.log, whose path a failed run prints. PIPELINE_LOG_LEVEL=INFO
(or DEBUG) shows it all on the console too.

TensorFlow's C++ logging can only be set by level, through TF_CPP_MIN_LOG_LEVEL, read once when TensorFlow
loads: `set_process_defaults` (called by the package's __init__, before any TensorFlow import) sets it
from the same setting, and child processes inherit it; ML Metadata's C++ logging (glog) likewise through
GLOG_minloglevel (a MySQL server that stops answering gets an error line for each of TFX's ten attempts
to connect, which then raise the Python exception that says it). Level 2 (errors only) is not enough:
TensorFlow 2.16 logs three errors at import ("Unable to register cuFFT/cuDNN/cuBLAS factory") on every
machine, so the default is 3 (fatal only). A failing TensorFlow operation still raises its Python exception with the
message, and a fatal error still prints; what level 3 drops is C++ errors a Python exception does not
carry, which PIPELINE_LOG_LEVEL=INFO shows again.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import logging
import math
import os
import re
import shlex
import sys
import sysconfig
import time
import traceback
import warnings
from pathlib import Path
from typing import Iterator, TextIO

import absl.logging

from pipeline import configs

# Library warnings a user can act on, shown on the console: (logger name, start of the message).
ACTIONABLE = (
    # A Beam argument (PIPELINE_BEAM_PIPELINE_ARGS) that Beam does not know and ignores: a typo.
    ("apache_beam.options.pipeline_options", "Discarding unparseable args"),
    ("apache_beam.options.pipeline_options", "Discarding flag"),
)
# Library warnings at import, before any handler is set, that nothing a user does here changes: the Google
# clients' notices of their Python 3.10 support windows (TFX 1.16 requires Python <= 3.10).
QUIET_AT_IMPORT = (
    ("FutureWarning", "google.api_core._python_version_support"),
    ("FutureWarning", "google.auth.transport.grpc"),
)
# Library errors that only announce the exception the run then reports itself: the log file keeps them.
REDUNDANT = (
    ("absl", "Execution %d failed."),  # TFX's launcher.
    ("luigi-interface", "[pid %s] Worker %s failed    %s"),  # Luigi's worker, with the whole traceback.
    # Beam's runner, when a worker's data stream breaks: the component then fails (pipeline/beam/worker_loss.py).
    ("apache_beam.runners.worker.data_plane", "Failed to read inputs in the data plane."),
)
# Beam's DoFn runner logs the exception of a failed step (the record's message is the exception itself)
# as it raises it on: the run reports the same error.
_BEAM_RERAISE = "apache_beam.runners.common"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d] %(message)s"
_CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
# Python's own modules: records logged from there are a library's too.
_STDLIB_PATHS = tuple({os.path.realpath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib")})
# The pipeline's own package, wherever it is installed.
_OWN_PATH = os.path.realpath(configs.PROJECT_ROOT / "pipeline") + os.sep
# What _MaskSecrets replaces (mask_secret adds to it).
_SECRETS: set[str] = set()
# A record that must only reach the log file (the traceback of a failure the console already names).
_FILE_ONLY = "pipeline_file_only"


# The C++ libraries' minimum log levels, read once as each loads: TensorFlow's, ML Metadata's (glog's). Both
# count 0 (INFO) to 3 (FATAL).
NATIVE_LOG_LEVELS = ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel")


def format_number(value) -> str:
    """A metric or count as the console, `pipeline blessing` and the report show it: whole numbers whole,
    with thousands separators (3,776), others to 4 decimals (0.9501), "-" for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4f}"
    if isinstance(value, float) and abs(value) >= 1e15:  # beyond where a float holds every whole number
        return f"{value:.4g}"
    return f"{int(value):,}"


def native_log_level(level: str | None) -> str:
    """NATIVE_LOG_LEVELS for a log level setting: everything at INFO and DEBUG, fatal errors only else
    (an unknown level is reported where the run reads its configuration)."""
    return "0" if (level or "").strip().upper() in ("DEBUG", "INFO") else "3"


def set_process_defaults(environ: dict[str, str] | None = None) -> None:
    """What must be set before TensorFlow, ML Metadata and the Google clients load, here and in the processes
    this one starts (Beam's workers, a scheduler's runs): the C++ log levels (NATIVE_LOG_LEVELS) from
    PIPELINE_LOG_LEVEL unless the user set them, and, below INFO, QUIET_AT_IMPORT ignored (PYTHONWARNINGS)."""
    environ = os.environ if environ is None else environ
    level = configs.environ_value("LOG_LEVEL", environ)
    for name in NATIVE_LOG_LEVELS:
        environ.setdefault(name, native_log_level(level))
    if native_log_level(level) == "0":
        return
    for category, module in QUIET_AT_IMPORT:
        warnings.filterwarnings("ignore", category=getattr(builtins, category), module=re.escape(module))
    given = [entry for entry in environ.get("PYTHONWARNINGS", "").split(",") if entry]
    ours = [f"ignore::{category}:{module}" for category, module in QUIET_AT_IMPORT]
    environ["PYTHONWARNINGS"] = ",".join(given + [entry for entry in ours if entry not in given])


def shell_exports(environ: dict[str, str] | None = None) -> str:
    """What set_process_defaults sets, as a shell's `export` line: for processes that load TensorFlow before
    any of our code runs, such as the tfx CLI (`eval "$(pipeline env)"`, docs/runners.md)."""
    environ = dict(os.environ if environ is None else environ)
    set_process_defaults(environ)
    names = [name for name in (*NATIVE_LOG_LEVELS, "PYTHONWARNINGS") if environ.get(name)]
    return "export " + " ".join(f"{name}={shlex.quote(environ[name])}" for name in names)


def from_library(pathname: str) -> bool:
    """Whether a record or warning comes from an installed package or Python itself, not from the
    pipeline's code or the user's (a task's modules, a script, a notebook's cells)."""
    if pathname.startswith("<"):  # Python's frozen modules and generated code.
        return True
    path = os.path.realpath(pathname)
    if path.startswith(_OWN_PATH):
        return False
    return path.startswith(_STDLIB_PATHS) or not {"site-packages", "dist-packages"}.isdisjoint(Path(path).parts)


class _ConsoleFilter(logging.Filter):
    """At WARNING and above: records of the user's code, library errors and ACTIONABLE warnings."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        if self.level <= logging.INFO:
            return True
        if getattr(record, _FILE_ONLY, False) or any(
            record.name == name and record.msg == msg for name, msg in REDUNDANT
        ):
            return False
        if record.name == _BEAM_RERAISE and isinstance(record.msg, BaseException):
            return False  # Beam logs the error of a step with its traceback, then raises it to the run.
        if record.levelno >= logging.ERROR or not from_library(record.pathname):
            return True
        return any(record.name == name and str(record.msg).startswith(start) for name, start in ACTIONABLE)


class _MaskSecrets(logging.Filter):
    """Replaces every registered secret (the MySQL password) in a record before a handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001  (a malformed record: the handler reports it as it would)
                return True
            if any(secret in message for secret in _SECRETS):
                for secret in _SECRETS:
                    message = message.replace(secret, "********")
                record.msg, record.args = message, ()
        return True


def mask_secret(secret: str) -> None:
    """Never write `secret` to the console or a log file configured here."""
    if secret:
        _SECRETS.add(secret)


class _Console(logging.StreamHandler):
    """A handler onto the given stream, else onto whatever sys.stderr is when a record comes (a notebook's
    kernel or a test's capture may replace it after `configure`)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._follow = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow:
            self.stream = sys.stderr
        super().emit(record)


class _LogFile(logging.FileHandler):
    """The run's log file; a record that cannot be written for want of space is dropped without a word.
    Logging's default prints a traceback per record to stderr: on a full disk, one for every record TFX,
    Beam and TensorFlow log, burying the one line that says the disk is full."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not _disk_full(sys.exc_info()[1]):
            super().handleError(record)

    def flush(self) -> None:
        with _unless_disk_full():
            super().flush()

    def close(self) -> None:
        with _unless_disk_full():
            super().close()


def _disk_full(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


@contextlib.contextmanager
def _unless_disk_full():
    """Lets an OSError through unless it is a full disk."""
    try:
        yield
    except OSError as error:
        if not _disk_full(error):
            raise


class _Handlers:
    """The handlers `configure` installed, replaced by the next call."""

    console: logging.Handler | None = None
    file: logging.FileHandler | None = None


def log_file_for(config: configs.PipelineConfig, runner: str) -> Path:
    """A new log file for a run, <output_root>/logs/<pipeline>/<time>-<pid>-<runner>.log; the oldest
    files beyond log_files_to_keep go."""
    folder = Path(config.output_root) / "logs" / config.pipeline_name
    if config.log_files_to_keep and folder.is_dir():
        older = sorted(folder.glob("*.log"), key=lambda path: path.stat().st_mtime, reverse=True)
        for old in older[config.log_files_to_keep - 1:]:
            with contextlib.suppress(OSError):
                old.unlink()
    return folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{runner}.log"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning routed to logging, with the warning's own file as the record's origin."""
    if file is not None:
        _show_warning.original(message, category, filename, lineno, file, line)
        return
    logger = logging.getLogger("py.warnings")
    record = logger.makeRecord(
        logger.name, logging.WARNING, filename, lineno, "%s: %s", (category.__name__, message), None
    )
    logger.handle(record)


_show_warning.original = warnings.showwarning


def configure(level: str | None, log_file: str | Path | None = None, stream: TextIO | None = None) -> Path | None:
    """Route every Python log record and warning: the console (stderr) as the module docstring says, and
    all of them from INFO (DEBUG at DEBUG) into `log_file` when given. Returns the log file's path."""
    name = (level or "WARNING").strip().upper()
    if name not in configs.LOG_LEVELS:
        raise configs.ConfigError(
            f"log level {level!r} is not one of {', '.join(configs.LOG_LEVELS)} (set {configs.ENV_PREFIX}LOG_LEVEL)"
        )
    numeric = logging.getLevelName(name)
    root = logging.getLogger()
    # absl (TFX) calls logging.basicConfig() on its first record and TensorFlow gives its logger a handler
    # of its own when it loads: both would print around the filter.
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler in (_Handlers.console, _Handlers.file):
            handler.close()
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.propagate = True
    tf_logger.setLevel(logging.NOTSET)
    console = _Console(stream)
    console.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
    console.addFilter(_ConsoleFilter(numeric))
    console.addFilter(_MaskSecrets())
    root.addHandler(console)
    _Handlers.console, _Handlers.file = console, None
    path = None
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FILE_FORMAT))
        handler.setLevel(min(numeric, logging.INFO))
        handler.addFilter(_MaskSecrets())
        root.addHandler(handler)
        _Handlers.file = handler
    root.setLevel(min(numeric, logging.INFO) if path else numeric)
    # TFX logs through absl, whose own level (its verbosity) would otherwise drop INFO records first.
    absl.logging.set_verbosity(logging.getLevelName(root.level).lower())
    warnings.showwarning = _show_warning
    return path


def _unraisable(unraisable, _is_finalizing=sys.is_finalizing, _logging=logging) -> None:
    """sys.unraisablehook of a Beam worker: an error Python ignores (in a __del__, say) as a log record,
    which the worker sends to the run; none while the worker's interpreter shuts down, when TensorFlow's
    objects fail in __del__ on every worker after its work is done and reported. (What it calls is bound
    here: by then the interpreter may have emptied this module's globals.)"""
    if _is_finalizing():
        return
    _logging.getLogger("py.unraisable").warning(
        "Exception ignored in %r", unraisable.object,
        exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback),
    )


def configure_beam_worker() -> None:
    """In a Beam worker process: its warnings and ignored errors as log records, which the worker sends to
    the run's process (Beam logs them there as "Worker: ..." records), instead of onto the console."""
    warnings.showwarning = _show_warning
    sys.unraisablehook = _unraisable


def log_file() -> Path | None:
    """The log file of the last `configure`, if it had one."""
    return Path(_Handlers.file.baseFilename) if _Handlers.file else None


def _users_frame(error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the error's traceback in code a library called: a module file's function, a
    component's executor; None when the error came from the libraries alone."""
    called = []
    for frame in traceback.extract_tb(error.__traceback__):
        if from_library(frame.filename):
            called.append(None)
        elif called:
            called.append(frame)
    frames = [frame for frame in called if frame is not None]
    return frames[-1] if frames else None


class ExplainedFailure(RuntimeError):
    """A failure whose message says what happened and what to change (a full disk, a lost store or Beam
    worker), the error behind it chained: report_failure shows the message alone."""


def error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """The error and those it was raised from or while handling, innermost last: where the causes that
    explain a failure (ENOSPC, a lost server or worker) sit under the errors the libraries wrap them in."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def report_failure(error: BaseException, stream: TextIO | None = None) -> None:
    """A failed run: its traceback into the log file; on the console an ExplainedFailure's message, any
    other error with where in the user's code it was raised; then where the full log is. Without a log
    file, an unexplained error's traceback is printed."""
    explained = isinstance(error, ExplainedFailure)
    if log_file() is None:
        if not explained:
            traceback.print_exception(type(error), error, error.__traceback__, file=stream or sys.stderr)
            return
    else:
        to_file_only(logging.getLogger(__name__), "The run failed", exc_info=(type(error), error, error.__traceback__))
    stream = stream or sys.stderr
    stream.write(f"error: {failure_text(error)}\n")
    name_log_file(stream)


def failure_text(error: BaseException) -> str:
    """A failed run's error as the console shows it (after "error: "), and as the run's record keeps it for
    the report: an ExplainedFailure's message; any other error's first lines and where in the user's code
    it was raised."""
    if isinstance(error, ExplainedFailure):
        return str(error)
    lines = str(error).strip().splitlines() or [""]
    # Beam appends the whole worker traceback to the message; its first lines say what went wrong.
    shown = lines[:8] + (["  ..."] if len(lines) > 8 else [])
    text = f"{type(error).__name__}: " + "\n".join(shown)
    frame = _users_frame(error)
    if frame is not None:
        text += f"\n  at {frame.filename}, line {frame.lineno}, in {frame.name}"
    return text


def to_file_only(logger: logging.Logger, msg: str, *args, exc_info=None) -> None:
    """An error record for the log file alone: one the console already says in other words."""
    logger.error(msg, *args, exc_info=exc_info, extra={_FILE_ONLY: True})


def name_log_file(stream: TextIO | None = None) -> None:
    """Say where the full log is, if there is one."""
    path = log_file()
    if path is not None:
        _Handlers.file.flush()
        (stream or sys.stderr).write(f"The full log: {path}\n")
        (stream or sys.stderr).flush()
