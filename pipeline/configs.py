"""Every tunable of the pipeline in one place, and the task it runs.

Each setting has a default that does not depend on the current directory and can be overridden by an
environment variable (`PIPELINE_<NAME>`; the older `TAXI_<NAME>` is read too), so the same code serves a
laptop, CI and a scheduler. Tests and notebooks override settings with `load_config(name=value)` instead.
What is learned, from which data, and how a model is judged come from the task (`task`, a package with a
`task` module: modules/ by default); settings left empty take the task's values.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import re
import shlex
import urllib.parse
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "PIPELINE_"
# The prefix settings had before tasks were interchangeable; still read, after ENV_PREFIX.
LEGACY_ENV_PREFIX = "TAXI_"
# Settings renamed when the blessing metric became the task's: the old names still set the new ones.
RENAMED_SETTINGS = {"eval_auc_lower_bound": "blessing_lower_bound", "eval_auc_max_decrease": "blessing_max_decrease"}


class ConfigError(ValueError):
    """A setting or input the user must fix; the message names it."""


# The values of the log_level setting (pipeline/logs.py says what each shows).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Every command's exit status for a ConfigError: nothing was started or written.
EXIT_CONFIG_ERROR = 2
# The MySQL password is never a setting (every setting is recorded with each run): it comes from this
# variable, or from the file metadata_mysql_password_file names (pipeline/metadata/mysql.py reads it).
METADATA_MYSQL_PASSWORD_ENV = ENV_PREFIX + "METADATA_MYSQL_PASSWORD"


def environ_value(name: str, environ: dict[str, str] | None = None) -> str | None:
    """`PIPELINE_<NAME>`, else `TAXI_<NAME>`: an environment value by its name without the prefix."""
    environ = os.environ if environ is None else environ
    for prefix in (ENV_PREFIX, LEGACY_ENV_PREFIX):
        value = environ.get(prefix + name)
        if value:
            return value
    return None


@dataclasses.dataclass(frozen=True)
class Task:
    """What the pipeline learns to predict and how a model is judged: a task package's `task` module
    (modules/task.py is the default task), the only place the pipeline learns about the data."""

    package: str
    name: str
    data_root: str
    schema_file: str
    transform_module_file: str
    trainer_module_file: str
    label_key: str
    label_source_keys: tuple[str, ...]
    classes: tuple[str, ...]
    metrics: tuple[str, ...]
    per_class_metrics: tuple[str, ...]
    slice_feature_keys: tuple[str, ...]
    blessing_metric: str
    # The blessing metric's direction, declared by the bound a task names: BLESSING_LOWER_BOUND (with
    # BLESSING_MAX_DECREASE) for a metric where higher is better, BLESSING_UPPER_BOUND (with
    # BLESSING_MAX_INCREASE) for one where lower is better, such as a regression's error.
    blessing_higher_is_better: bool
    blessing_bound: float
    blessing_max_change: float
    blessing_slice_thresholds: dict
    numeric_drift_overrides: tuple[str, ...]

    @property
    def multiclass(self) -> bool:
        return len(self.classes) > 2

    @property
    def regression(self) -> bool:
        """A task with no classes: its label is a number."""
        return not self.classes


# Attributes a task module may leave out, with their value then.
_TASK_DEFAULTS = {
    "per_class_metrics": (),
    "slice_feature_keys": (),
    "blessing_slice_thresholds": {},
    "numeric_drift_overrides": (),
}


# The blessing's bound and allowed change by the direction of the blessing metric (higher is better?), as a
# task module names them and as settings (blessing_<name>) and slice thresholds' keys (<name>) do.
BLESSING_BOUNDS = {True: ("lower_bound", "max_decrease"), False: ("upper_bound", "max_increase")}


@dataclasses.dataclass(frozen=True)
class SliceThreshold:
    """The blessing metric's bounds on the rows where one feature has one value, judged beside the whole
    eval split's (a task's BLESSING_SLICE_THRESHOLDS, or the blessing_slice_thresholds setting): its lower
    bound and allowed decrease, or, for a metric where lower is better, its upper bound and allowed increase."""

    feature: str
    value: str
    bound: float
    max_change: float


def parse_slice_thresholds(text: str, higher_is_better: bool = True) -> tuple[SliceThreshold, ...]:
    """The blessing_slice_thresholds setting, JSON: {"feature=value": {"lower_bound": 0.6, "max_decrease":
    0.02}, ...} (for a blessing metric where lower is better, "upper_bound" and "max_increase"); both bounds
    are required, so that a typo is refused instead of judging nothing. A ValueError says what is wrong
    (PipelineConfig names the setting and the ranges of the bounds)."""
    bound_key, change_key = BLESSING_BOUNDS[higher_is_better]
    try:
        parsed = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    found = []
    for name, bounds in parsed.items():
        feature, equals, value = name.partition("=")
        if not feature.strip() or not equals:
            raise ValueError(f"{name!r} is not \"feature=value\"")
        if not isinstance(bounds, dict) or set(bounds) != {bound_key, change_key} or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in bounds.values()):
            raise ValueError(f"{name!r} needs exactly a numeric {bound_key} and {change_key}, got {bounds!r}")
        found.append(SliceThreshold(feature.strip(), value, float(bounds[bound_key]), float(bounds[change_key])))
    return tuple(found)


def metric_name(class_name: str) -> str:
    """The name TFMA gives a metric class's values: "BinaryAccuracy" -> "binary_accuracy", "AUC" -> "auc"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


@functools.lru_cache(maxsize=8)
def load_task(package: str) -> Task:
    """The task defined by `<package>.task`, checked: a missing attribute is named, not met later."""
    try:
        module = importlib.import_module(f"{package}.task")
    except ImportError as error:
        missing = isinstance(error, ModuleNotFoundError) and error.name and f"{package}.task".startswith(error.name)
        if not missing:  # The package is there; an import inside its code failed.
            raise ConfigError(f"task {package!r} cannot be loaded: an import in its code failed: {error}") from None
        raise ConfigError(
            f"task {package!r} cannot be loaded: {error}. {ENV_PREFIX}TASK names a package with a task module "
            "(modules, examples.penguin.modules, or one of your own), importable by this Python: installed, "
            "or the folder holding its top-level package on PYTHONPATH"
        ) from None
    values = _blessing_bounds(module)
    missing = []
    for field in dataclasses.fields(Task):
        if field.name == "package" or field.name in values:
            continue
        attribute = field.name.upper()
        if hasattr(module, attribute):
            value = getattr(module, attribute)
            values[field.name] = tuple(value) if isinstance(value, (list, tuple)) else value
        elif field.name in _TASK_DEFAULTS:
            values[field.name] = _TASK_DEFAULTS[field.name]
        else:
            missing.append(attribute)
    if missing:
        raise ConfigError(f"task module {module.__file__} does not define {', '.join(missing)}")
    task = Task(package=package, **values)
    if len(task.classes) == 1:
        raise ConfigError(
            f"task {package!r}: CLASSES needs at least two classes (a classification) or none (a regression: "
            f"the label is a number), got {task.classes}"
        )
    if task.blessing_metric not in {metric_name(m) for m in task.metrics}:
        raise ConfigError(
            f"task {package!r}: BLESSING_METRIC {task.blessing_metric!r} is not computed by METRICS "
            f"({', '.join(metric_name(m) for m in task.metrics)})"
        )
    return task


def _blessing_bounds(module) -> dict:
    """The blessing's direction, bound and allowed change as a task module declares them: a lower bound and
    an allowed decrease, or an upper bound and an allowed increase, never both."""
    named = {higher: [hasattr(module, f"BLESSING_{name.upper()}") for name in names]
             for higher, names in BLESSING_BOUNDS.items()}
    if any(named[True]) == any(named[False]) or not all(named[True] if any(named[True]) else named[False]):
        raise ConfigError(
            f"task module {module.__file__} must define BLESSING_LOWER_BOUND and BLESSING_MAX_DECREASE (a "
            "blessing metric where higher is better) or BLESSING_UPPER_BOUND and BLESSING_MAX_INCREASE (one "
            "where lower is better), one pair and not the other"
        )
    higher = any(named[True])
    bound, change = (getattr(module, f"BLESSING_{name.upper()}") for name in BLESSING_BOUNDS[higher])
    return {"blessing_higher_is_better": higher, "blessing_bound": bound, "blessing_max_change": change}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Settings for one pipeline; paths are absolute. Empty settings take the task's values."""

    # The task's package (its `task` module says what is learned and how a model is judged).
    task: str = "modules"
    pipeline_name: str = ""
    # Folder holding the input CSV files, and which files in it are data.
    data_root: str = ""
    # A pattern with {SPAN} (e.g. "span-{SPAN}/*.csv") reads data in spans: each run takes the newest.
    input_pattern: str = "*.csv"
    # The curated schema that data is validated against and that Transform and Trainer use.
    schema_path: str = ""
    transform_module_file: str = ""
    trainer_module_file: str = ""
    # Everything the pipeline writes goes under output_root unless set one by one.
    output_root: str = str(PROJECT_ROOT / "tfx_output")
    pipeline_root: str = ""
    metadata_path: str = ""
    serving_model_dir: str = ""
    # Where `pipeline report RUN` writes without -o (report_file): never the current directory, which may
    # be the repository's root.
    reports_dir: str = ""
    # Train/eval split of the input by hash buckets.
    train_hash_buckets: int = 3
    eval_hash_buckets: int = 1
    # On a large local input the eval split stops growing near this many rows (0: no limit; see
    # split_hash_buckets). The Evaluator's cost grows with its rows (per slice, per model, in TFMA's
    # Python), while metrics on 100k rows already agree closely with those on millions (bench/README.md).
    max_eval_rows: int = 100_000
    # How much of the training split the Trainer learns from (SCALES). sample: train_steps batches of
    # batch_size rows whatever the input (300 of 128, 3 epochs: a few passes over the shipped sample),
    # quick for trying things; full: `epochs` whole passes over every training row (1 of 4096-row
    # batches), as production does. Empty settings below take the scale's values.
    scale: str = "sample"
    train_steps: int | None = None
    eval_steps: int = 20
    batch_size: int | None = None
    learning_rate: float = 0.003
    hidden_units: tuple[int, ...] = (64, 32)
    epochs: int | None = None
    # Blessing: the task's blessing metric must reach this on the eval split, and may not fall behind the
    # blessed baseline's by more than the allowed decrease (None: the task's numbers). For a task whose
    # blessing metric is lower-is-better (it names BLESSING_UPPER_BOUND), the upper bound and the allowed
    # increase instead; the other pair does not apply to it and is refused.
    blessing_lower_bound: float | None = None
    blessing_max_decrease: float | None = None
    blessing_upper_bound: float | None = None
    blessing_max_increase: float | None = None
    # Blessing on slices that matter, beside the whole eval split: the blessing metric's lower bound and
    # allowed decrease against the baseline on the rows where a feature has one value, as JSON
    # ({"color=red": {"lower_bound": 0.6, "max_decrease": 0.03}}; "{}": none; empty: the task's).
    blessing_slice_thresholds: str = ""
    # The data gate: a split with fewer rows halts the run (a model trained or judged on so few rows
    # says nothing, and empty statistics must never become the next run's drift baseline).
    min_train_rows: int = 200
    min_eval_rows: int = 50
    # Numeric drift against the last data that passed the gate (pipeline/guards/numeric_drift.py): the
    # smallest Kolmogorov-Smirnov distance that halts a run whatever its size, and per-feature
    # `name=distance` or `name=off` (None: the task's).
    numeric_drift_min_distance: float = 0.1
    numeric_drift_overrides: tuple[str, ...] | None = None
    # Raw features whose values each get their own eval metrics, beside the overall ones (None: the task's).
    slice_feature_keys: tuple[str, ...] | None = None
    # Extra Beam args of the data components, added after those of beam_profile (a later flag wins).
    beam_pipeline_args: tuple[str, ...] = ()
    enable_cache: bool = True
    # Package modules/ into wheels under pipeline_root (TFX's default), as remote workers need; the
    # in-process runners import the files directly.
    package_user_modules: bool = False
    # What the console shows (pipeline/logs.py): WARNING shows progress lines, the summary, errors and
    # warnings a user can act on; INFO or DEBUG everything TFX, Beam and TensorFlow log. Every run also
    # writes its full log to <output_root>/logs/<pipeline_name>/, keeping this many files (0: all).
    log_level: str = "WARNING"
    log_files_to_keep: int = 50
    # A component running this long says so, and again each time as long (0: never).
    progress_interval_s: float = 30.0
    # One run at a time per store: a second run waits this many seconds for the first, then fails
    # naming it (0 fails at once).
    run_lock_timeout_s: float = 300.0
    # A run whose nodes are separate tasks (Airflow, Luigi) holds the store by a lease its tasks renew;
    # left this long without renewal (its orchestrator died), the lease lapses and others may run.
    run_lock_lease_s: float = 600.0
    # A failed run is started again this many times; completed components come from the cache, so only
    # the failed component and those after it run again. Waits retry_backoff_s, doubling each time.
    # Airflow maps both onto its task retries.
    retries: int = 0
    retry_backoff_s: float = 30.0
    # Serving versions kept after each push, newest first (0 keeps all); the serving one always stays.
    serving_versions_to_keep: int = 0
    # Where `pipeline promote` publishes a blessed model for production: a serving directory like
    # serving_model_dir, watched by the production model server (the Pusher's serving_model_dir is then
    # the candidates'). `pipeline rollback --production` returns it to an earlier model.
    production_model_dir: str = ""
    # ML Metadata on MySQL/MariaDB instead of SQLite, by URL (mysql://user@host:port/database) or by the
    # fields. The password is never a setting: it is read from PIPELINE_METADATA_MYSQL_PASSWORD or from
    # the file named by metadata_mysql_password_file.
    metadata_mysql_url: str = ""
    metadata_mysql_host: str = ""
    metadata_mysql_port: int = 3306
    metadata_mysql_database: str = ""
    metadata_mysql_user: str = ""
    metadata_mysql_password_file: str = ""
    # Where the data components' Beam pipelines run: a key of BEAM_PROFILES. The default, auto, picks
    # in_memory or multi_processing by input size; the remote ones need the settings below filled in.
    beam_profile: str = "auto"
    # Worker processes of the multi_processing profile; 0 means one per CPU core.
    beam_direct_num_workers: int = 0
    beam_gcp_project: str = ""
    beam_gcp_region: str = ""
    # Dataflow's temp and staging folder (gs://bucket/path); also where remote engines write temp files.
    beam_temp_location: str = ""
    # Flink: the JobManager's REST host:port, where the job server submits each job and which a run checks
    # first; Spark (optional): the master URL (spark://host:7077), checked first when set.
    beam_cluster_master: str = ""
    # The flink, spark and portable profiles: the Beam job service's host:port (Beam's Flink or Spark job
    # server, or Beam's own); `python -m cluster up flink|spark` starts one with its cluster.
    beam_job_endpoint: str = ""
    # How the portable runners (flink, spark, portable) start Python workers: DOCKER (the image below),
    # EXTERNAL (a worker pool you run, at beam_environment_config), PROCESS (a command each TaskManager or
    # Spark executor starts) or LOOPBACK.
    beam_environment_type: str = "DOCKER"
    # That environment's --environment_config: EXTERNAL the worker pool's host:port, PROCESS the boot
    # command as JSON ({"command": "/path/to/.venv/bin/pipeline-beam-worker"}); DOCKER takes
    # beam_sdk_container_image when this is empty.
    beam_environment_config: str = ""
    # How long the portable runners (flink, spark, portable) wait on their job service. Beam 2.60 also
    # holds each job's state and message streams to this deadline, so it must outlast the longest
    # component's Beam job: Beam's default, 60 s, fails every longer job with DEADLINE_EXCEEDED.
    beam_job_server_timeout_s: int = 86400
    # How long the portable runners keep a job's idle Python workers for its next stage. Beam's default, 0,
    # stops them after every stage: Spark then starts a worker (TensorFlow's import and all) per stage per
    # executor, several times slower even for the test sample's run (docs/distributed-engines.md).
    beam_environment_cache_ms: int = 30000
    # A worker image with requirements.lock and this project installed; without one, remote workers
    # install the lock and the project (setup.py) at start-up.
    beam_sdk_container_image: str = ""
    # The scheduler (pipeline/runners/scheduler.py): a crontab line, else an interval in seconds.
    schedule_cron: str = ""
    schedule_interval_s: int = 3600
    # Transform's own statistics of its input and output (pre/post-transform stats, schema, anomalies).
    # Off: StatisticsGen already describes the input, nothing here reads them, and they are a large part
    # of Transform's time (bench/README.md). Turn on to inspect the transformed features' distributions.
    transform_statistics: bool = False
    # Orchestrators beside the local runner: pipeline/runners/airflow_dag.py, luigi_runner.py and
    # kubeflow_v2_runner.py read these.
    # Airflow: the DAG's schedule (a cron expression or a preset such as "@daily"; empty: only runs when
    # triggered) from its start date. Its task retries are `retries` and `retry_backoff_s` above.
    airflow_schedule: str = ""
    airflow_start_date: str = "2024-01-01"
    # Kubeflow Pipelines v2 / Vertex AI: the image every component runs in (see Dockerfile), where the
    # project sits inside it, the bucket folder holding data/ and every output, and machines per
    # component as JSON: {"Trainer": {"cpu": 8, "memory_gb": 32, "accelerator": "NVIDIA_TESLA_T4",
    # "accelerator_count": 1}}.
    container_image: str = ""
    image_project_root: str = "/pipeline"
    bucket_root: str = ""
    component_resources: str = (
        '{"Transform": {"cpu": 4, "memory_gb": 16}, "Trainer": {"cpu": 8, "memory_gb": 32}, '
        '"Evaluator": {"cpu": 4, "memory_gb": 16}}'
    )

    def __post_init__(self) -> None:
        task = self.task_spec
        from_task = {
            "pipeline_name": task.name,
            "data_root": task.data_root,
            "schema_path": task.schema_file,
            "transform_module_file": task.transform_module_file,
            "trainer_module_file": task.trainer_module_file,
            **dict(zip(self._blessing_settings, (task.blessing_bound, task.blessing_max_change))),
            "blessing_slice_thresholds": json.dumps(task.blessing_slice_thresholds),
            "numeric_drift_overrides": task.numeric_drift_overrides,
            "slice_feature_keys": task.slice_feature_keys,
        }
        for name, value in from_task.items():
            if getattr(self, name) in ("", None):
                object.__setattr__(self, name, value)
        self._check("scale", self.scale in SCALES)
        if self.scale == "full" and self.train_steps is not None:
            label, given = setting_source("train_steps", self.train_steps)
            raise ConfigError(
                f"{label} does not apply at {ENV_PREFIX}SCALE=full (got {given}): the Trainer makes "
                f"{ENV_PREFIX}EPOCHS whole passes over the training split; unset it, or use the sample scale"
            )
        for name, value in SCALES[self.scale].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        out = Path(self.output_root)
        defaults = {
            "pipeline_root": out / "pipelines" / self.pipeline_name,
            "metadata_path": out / "metadata" / self.pipeline_name / "metadata.db",
            "serving_model_dir": out / "serving_model" / self.pipeline_name,
            "production_model_dir": out / "production_model" / self.pipeline_name,
            "reports_dir": out / "reports" / self.pipeline_name,
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, str(default))
        for name in ("data_root", "schema_path", "transform_module_file", "trainer_module_file",
                     "output_root", *defaults):
            # A bucket URI (gs://, s3://) is already absolute; abspath would turn it into a local path.
            if "://" not in getattr(self, name):
                object.__setattr__(self, name, os.path.abspath(getattr(self, name)))
        for name in AT_LEAST_ONE:
            self._check(name, getattr(self, name) is None or getattr(self, name) >= 1)
        for name in NOT_NEGATIVE:
            self._check(name, getattr(self, name) >= 0)
        self._check("hidden_units", bool(self.hidden_units) and min(self.hidden_units) >= 1)
        self._check("beam_profile", self.beam_profile in BEAM_PROFILES)
        object.__setattr__(self, "log_level", self.log_level.strip().upper())
        self._check("log_level", self.log_level in LOG_LEVELS)
        self._check("numeric_drift_min_distance", 0.0 < self.numeric_drift_min_distance <= 1.0)
        metric = self.task_spec.blessing_metric
        for name in self._blessing_settings:
            self._check(name, blessing_in_range(name, getattr(self, name), metric), blessing_form(name, metric))
        self._check_blessing_direction()
        self._check_slice_thresholds(metric)
        if self.metadata_mysql_url:
            label, _ = setting_source("metadata_mysql_url", self.metadata_mysql_url)
            for name, value in parse_metadata_mysql_url(self.metadata_mysql_url, label).items():
                object.__setattr__(self, name, value)

    def _check(self, name: str, ok: bool, form: str | None = None) -> None:
        """Refuse a value out of its range, naming its variable (or field), the value and the range."""
        if not ok:
            label, given = setting_source(name, getattr(self, name))
            raise ConfigError(f"{label} must be {form or value_form(name)}, got {given}")

    @property
    def _blessing_settings(self) -> tuple[str, str]:
        """The blessing's bound and allowed change as settings, for the direction of the task's metric."""
        return tuple(f"blessing_{name}" for name in BLESSING_BOUNDS[self.task_spec.blessing_higher_is_better])

    def _check_blessing_direction(self) -> None:
        """Refuse the bounds of the other direction: an upper bound on AUC, or a lower bound on an error,
        would judge nothing the user meant."""
        task = self.task_spec
        for name in (f"blessing_{n}" for n in BLESSING_BOUNDS[not task.blessing_higher_is_better]):
            if getattr(self, name) is not None:
                label, given = setting_source(name, getattr(self, name))
                direction = "higher" if task.blessing_higher_is_better else "lower"
                instead = " and ".join(f"{ENV_PREFIX}{s.upper()}" for s in self._blessing_settings)
                raise ConfigError(
                    f"{label} does not apply to task {task.package}: its blessing metric, {task.blessing_metric}, "
                    f"is one where {direction} is better (got {given}); set {instead} instead"
                )

    def _check_slice_thresholds(self, metric: str) -> None:
        """Refuse blessing_slice_thresholds unless it parses and each slice's bounds lie in the ranges of the
        overall ones, naming its variable (or field), the slice and the range."""
        label, given = setting_source("blessing_slice_thresholds", self.blessing_slice_thresholds)
        higher = self.task_spec.blessing_higher_is_better
        try:
            found = parse_slice_thresholds(self.blessing_slice_thresholds, higher)
        except ValueError as error:
            form = slice_thresholds_form(higher)
            raise ConfigError(f"{label} must be {form}, got {given} ({error})") from None
        for bound in found:
            for name, value in zip(self._blessing_settings, (bound.bound, bound.max_change)):
                if not blessing_in_range(name, value, metric):
                    raise ConfigError(
                        f"{label}: the {name.removeprefix('blessing_')} of {bound.feature}={bound.value} must be "
                        f"{blessing_form(name, metric)}, got {value:g}"
                    )

    def report_file(self, run_name: str) -> str:
        """Where the HTML report of a run goes unless told otherwise: report-<run>.html in reports_dir."""
        return os.path.join(self.reports_dir, f"report-{run_name.replace(':', '-')}.html")

    @property
    def task_spec(self) -> Task:
        """The task this configuration runs."""
        return load_task(self.task)

    @property
    def slice_thresholds(self) -> tuple[SliceThreshold, ...]:
        """The blessing's bounds per slice (blessing_slice_thresholds)."""
        return parse_slice_thresholds(self.blessing_slice_thresholds, self.task_spec.blessing_higher_is_better)

    @property
    def blessing_bound(self) -> float:
        """The blessing metric's bound on the whole eval split: its lower bound, or its upper bound for a
        metric where lower is better (Task.blessing_higher_is_better)."""
        return getattr(self, self._blessing_settings[0])

    @property
    def blessing_max_change(self) -> float:
        """How much worse than the baseline's the blessing metric may be: the allowed decrease, or increase."""
        return getattr(self, self._blessing_settings[1])

    @property
    def hyperparameters(self) -> dict:
        """What the Trainer's `run_fn` receives as `custom_config`."""
        return {
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "hidden_units": list(self.hidden_units),
            "epochs": self.epochs,
        }


# The Beam args of each engine the data components can run on. `{field}` stands for that
# PipelineConfig setting (PIPELINE_<FIELD>); a profile refuses to build while a setting it names is empty.
# The remote profiles also get how the project's code reaches their workers: the package built from
# setup.py (--setup_file) and, where Beam starts the workers' container (Dataflow, DOCKER), either a
# worker image holding requirements.lock and the project (beam_sdk_container_image) or the lock itself,
# installed by each worker at start-up; an EXTERNAL worker pool or a PROCESS worker runs in an
# environment you installed. Worker processes cannot import the module files TFX loads by path:
# cloudpickle ships their functions by value (see modules/transform_module.py).
BEAM_PROFILES: dict[str, tuple[str, ...]] = {
    # in_memory or multi_processing, by input size (profiles.resolved_beam_profile).
    "auto": (),
    # Beam's own default (DirectRunner, in memory, one worker), so no args at all: given any Beam arg
    # without a dependency flag (--extra_packages, --setup_file, ...), TFX builds a source package of
    # itself for every Beam component (seconds each, and its temporary files) that only remote workers
    # install.
    "in_memory": (),
    "multi_processing": (
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers={beam_direct_num_workers}",
        "--pickle_library=cloudpickle",
        # Each worker process imports it first: its warnings reach the run's log, not the console, and the
        # Evaluator's workers compute metric inputs as pipeline/upstream/metric_inputs.py does.
        "--beam_plugins=pipeline.beam.worker_start",
    ),
    "dataflow": (
        "--runner=DataflowRunner",
        "--project={beam_gcp_project}",
        "--region={beam_gcp_region}",
        "--temp_location={beam_temp_location}",
        "--staging_location={beam_temp_location}/staging",
    ),
    # A Flink session cluster through Beam's Flink job server (docs/distributed-engines.md): the job server
    # translates each component's pipeline and submits it to the JobManager named here.
    "flink": (
        "--runner=FlinkRunner",
        "--flink_master={beam_cluster_master}",
        "--job_endpoint={beam_job_endpoint}",
        "--environment_type={beam_environment_type}",
        "--job_server_timeout={beam_job_server_timeout_s}",
        "--environment_cache_millis={beam_environment_cache_ms}",
    ),
    # A Spark standalone cluster through Beam's Spark job server, which is started against its master.
    "spark": (
        "--runner=SparkRunner",
        "--job_endpoint={beam_job_endpoint}",
        "--environment_type={beam_environment_type}",
        "--job_server_timeout={beam_job_server_timeout_s}",
        "--environment_cache_millis={beam_environment_cache_ms}",
    ),
    # Any Beam job service: what Flink's and Spark's job servers, and Beam's own Python one, answer.
    "portable": (
        "--runner=PortableRunner",
        "--job_endpoint={beam_job_endpoint}",
        "--environment_type={beam_environment_type}",
        "--job_server_timeout={beam_job_server_timeout_s}",
        "--environment_cache_millis={beam_environment_cache_ms}",
    ),
}
LOCAL_BEAM_PROFILES = ("auto", "in_memory", "multi_processing")
# The training each `scale` stands for: the values of the settings left empty. Batches of 4096 rows at
# the full scale: the Trainer reads and transforms a batch at a fixed cost per call in Python, which
# batches of 128 pay 32 times as often (bench/README.md).
SCALES: dict[str, dict] = {
    "sample": {"train_steps": 300, "batch_size": 128, "epochs": 3},
    "full": {"train_steps": None, "batch_size": 4096, "epochs": 1},
}
# The profiles whose Beam jobs go through a job service (beam_job_endpoint), checked before a run starts.
JOB_SERVICE_PROFILES = ("flink", "spark", "portable")


def parse_metadata_mysql_url(url: str, label: str = "metadata_mysql_url") -> dict:
    """The connection fields of `mysql://user@host:port/database`; a password in it is refused. Errors name
    the setting as `label` (its variable, when it came from the environment) and never repeat the URL,
    which may hold a password."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("mysql", "mariadb"):
        raise ConfigError(f"{label} must start with mysql://, got {parsed.scheme or 'no'} scheme")
    if parsed.password is not None:
        raise ConfigError(
            f"{label} may not contain a password (it would be recorded with the run); set "
            f"{METADATA_MYSQL_PASSWORD_ENV} or metadata_mysql_password_file instead"
        )
    database = parsed.path.lstrip("/")
    if not parsed.hostname or not database:
        raise ConfigError(f"{label} needs a host and a database: mysql://user@host:port/database")
    try:
        port = parsed.port or 3306
    except ValueError as error:
        raise ConfigError(f"{label} has a bad port: {error}") from None
    return {
        "metadata_mysql_host": parsed.hostname,
        "metadata_mysql_port": port,
        "metadata_mysql_database": database,
        "metadata_mysql_user": urllib.parse.unquote(parsed.username or ""),
    }


# The ranges the settings are checked against (PipelineConfig.__post_init__); errors name them.
AT_LEAST_ONE = (
    "train_steps", "eval_steps", "batch_size", "epochs", "train_hash_buckets", "eval_hash_buckets",
    "min_train_rows", "min_eval_rows", "beam_job_server_timeout_s", "run_lock_lease_s",
)
NOT_NEGATIVE = (
    "retries", "serving_versions_to_keep", "run_lock_timeout_s", "retry_backoff_s", "max_eval_rows",
    "log_files_to_keep", "progress_interval_s", "beam_environment_cache_ms",
)
# Blessing metrics (as TFMA names them) whose values lie in [0, 1]: with one of them, a lower bound or an
# allowed decrease outside [0, 1] could never be met or would allow anything, so it is refused. A task's
# metric not listed here is taken as unbounded (any lower bound; a decrease of 0 or more).
BOUNDED_METRICS = frozenset({
    "auc", "auc_precision_recall", "binary_accuracy", "accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "precision", "recall", "specificity", "fall_out", "miss_rate",
})
# What a value of each type must look like, for errors.
_TYPE_FORMS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "one of 1/0, true/false, yes/no, on/off",
    "tuple[int, ...]": "a comma-separated list of whole numbers, e.g. 64,32",
    "tuple[str, ...]": "a comma-separated list",
}


def _annotation(name: str) -> str:
    return {f.name: str(f.type) for f in dataclasses.fields(PipelineConfig)}[name].removesuffix(" | None")


def value_form(name: str) -> str:
    """The values a setting accepts, as an error says them: "a whole number of at least 1"."""
    if name in AT_LEAST_ONE:
        return "a whole number of at least 1"
    if name in NOT_NEGATIVE:
        return f"{_TYPE_FORMS[_annotation(name)]} of 0 or more"
    special = {
        "hidden_units": "a comma-separated list of whole numbers of at least 1, e.g. 64,32",
        "beam_profile": f"one of {', '.join(BEAM_PROFILES)}",
        "scale": f"one of {', '.join(SCALES)}",
        "log_level": f"one of {', '.join(LOG_LEVELS)}",
        "numeric_drift_min_distance": "a number above 0 and at most 1",
        "beam_pipeline_args": "Beam flags as a shell splits them, e.g. --direct_num_workers=2",
        "blessing_slice_thresholds": slice_thresholds_form(True),
    }
    return special.get(name) or _TYPE_FORMS.get(_annotation(name), "text")


# Blessing metrics never below 0 (errors): a bound below 0 could never be met, so it is refused.
NON_NEGATIVE_METRICS = frozenset({
    "mean_squared_error", "mean_absolute_error", "root_mean_squared_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
})


def slice_thresholds_form(higher_is_better: bool) -> str:
    """What blessing_slice_thresholds must look like for a blessing metric of this direction."""
    bound, change = BLESSING_BOUNDS[higher_is_better]
    return f'a JSON object of "feature=value": {{"{bound}": <number>, "{change}": <number>}}'


def blessing_in_range(name: str, value: float, metric: str) -> bool:
    """Whether a blessing bound (blessing_lower_bound, blessing_upper_bound, or the allowed decrease or
    increase, overall or a slice's) lies in the range blessing_form names."""
    bounded = metric in BOUNDED_METRICS
    change = name in ("blessing_max_decrease", "blessing_max_increase")
    low = 0.0 if bounded or change or metric in NON_NEGATIVE_METRICS else float("-inf")
    return low <= value <= (1.0 if bounded else float("inf"))


def blessing_form(name: str, metric: str) -> str:
    """The range of a blessing setting: within [0, 1] for a metric in BOUNDED_METRICS, 0 or more for an
    allowed change and for a metric in NON_NEGATIVE_METRICS."""
    if metric in BOUNDED_METRICS:
        return f"a number from 0 to 1 (the task's blessing metric, {metric}, lies in [0, 1])"
    if metric in NON_NEGATIVE_METRICS:
        return f"a number of 0 or more (the task's blessing metric, {metric}, is never below 0)"
    return "a number" if name in ("blessing_lower_bound", "blessing_upper_bound") else "a number of 0 or more"


def _variables(name: str) -> list[str]:
    """The environment variables that set a field, the one that wins last."""
    aliases = [old for old, new in RENAMED_SETTINGS.items() if new == name] + [name]
    return [prefix + alias.upper() for alias in aliases for prefix in (LEGACY_ENV_PREFIX, ENV_PREFIX)]


def setting_source(name: str, value, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """How an error names a setting and its value: the environment variable it came from and its text
    (PIPELINE_TRAIN_STEPS, '-5'), else the field and the value (train_steps, given to load_config or
    taken from the task)."""
    environ = os.environ if environ is None else environ
    given = [variable for variable in _variables(name) if environ.get(variable)]
    if given:
        try:
            if _parse(given[-1], name, environ[given[-1]], _annotation(name)) == value:
                return given[-1], repr(environ[given[-1]])
        except ConfigError:
            pass
    return name, repr(value)


def _parse(variable: str, name: str, raw: str, annotation: str):
    """Convert an environment variable's text to the field's type, or say clearly why not."""
    annotation = annotation.removesuffix(" | None")
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
        if annotation == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation == "tuple[int, ...]":
            return tuple(int(part) for part in raw.replace(",", " ").split())
        if annotation == "tuple[str, ...]":
            if name == "beam_pipeline_args":
                return tuple(shlex.split(raw))
            return tuple(part for part in raw.replace(",", " ").split())
        return raw
    except ValueError:
        raise ConfigError(f"{variable} must be {value_form(name)}, got {raw!r}") from None


def env_overrides(environ: dict[str, str] | None = None) -> dict:
    """Settings given as `PIPELINE_<FIELD>` environment variables (or the older `TAXI_<FIELD>`, and the
    old names of renamed settings)."""
    environ = os.environ if environ is None else environ
    names = {field.name: (field.name, str(field.type)) for field in dataclasses.fields(PipelineConfig)}
    types = dict(names.values())
    names.update({old: (new, types[new]) for old, new in RENAMED_SETTINGS.items()})
    overrides = {}
    # Old names first, so that a setting given under its new name wins.
    for alias in sorted(names, key=lambda n: n not in RENAMED_SETTINGS):
        field, annotation = names[alias]
        for prefix in (LEGACY_ENV_PREFIX, ENV_PREFIX):
            variable = prefix + alias.upper()
            raw = environ.get(variable)
            if raw is not None and raw != "":
                overrides[field] = _parse(variable, field, raw, annotation)
    return overrides


def load_config(**overrides) -> PipelineConfig:
    """Defaults, then environment variables, then explicit overrides (for tests and notebooks)."""
    for old, new in RENAMED_SETTINGS.items():
        if old in overrides:
            overrides.setdefault(new, overrides.pop(old))
    unknown = set(overrides) - {field.name for field in dataclasses.fields(PipelineConfig)}
    if unknown:
        raise ConfigError(f"unknown pipeline settings: {', '.join(sorted(unknown))}")
    return PipelineConfig(**{**env_overrides(), **overrides})
