"""Every tunable of the pipeline in one place.

Each setting has a default that does not depend on the current directory and can be overridden by an
environment variable (`TAXI_<NAME>`), so the same code serves a laptop, CI and a scheduler. Tests and
notebooks override settings with `load_config(name=value)` instead.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "TAXI_"


class ConfigError(ValueError):
    """A setting or input the user must fix; the message names it."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Settings for one pipeline; paths are absolute."""

    pipeline_name: str = "chicago-taxi"
    # Folder holding the input CSV files, and which files in it are data.
    data_root: str = str(PROJECT_ROOT / "data")
    input_pattern: str = "*.csv"
    # The curated schema that data is validated against and that Transform and Trainer use.
    schema_path: str = str(PROJECT_ROOT / "schema" / "schema.pbtxt")
    transform_module_file: str = str(PROJECT_ROOT / "modules" / "transform_module.py")
    trainer_module_file: str = str(PROJECT_ROOT / "modules" / "trainer_module.py")
    # Everything the pipeline writes goes under output_root unless set one by one.
    output_root: str = str(PROJECT_ROOT / "tfx_output")
    pipeline_root: str = ""
    metadata_path: str = ""
    serving_model_dir: str = ""
    # Train/eval split of the input by hash buckets.
    train_hash_buckets: int = 3
    eval_hash_buckets: int = 1
    # Training.
    # About 3.4 passes over the 11k training rows: eval AUC peaks near here (1000 steps overfit).
    train_steps: int = 300
    eval_steps: int = 20
    batch_size: int = 128
    learning_rate: float = 0.003
    hidden_units: tuple[int, ...] = (64, 32)
    epochs: int = 3
    # Blessing: the candidate's eval AUC must reach this, and may not fall below the blessed baseline's
    # by more than the allowed decrease.
    eval_auc_lower_bound: float = 0.7
    eval_auc_max_decrease: float = 0.0
    # Raw features whose values each get their own eval metrics, beside the overall ones.
    slice_feature_keys: tuple[str, ...] = ("payment_type", "trip_start_day")
    # Beam args of the data components. In-memory DirectRunner: no worker start-up on small data.
    beam_pipeline_args: tuple[str, ...] = (
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    )
    enable_cache: bool = True
    # Package modules/ into wheels under pipeline_root (TFX's default), as remote workers need; the
    # in-process runners import the files directly.
    package_user_modules: bool = False
    # Python log level of the runners; component progress lines and the summary always show.
    log_level: str = "WARNING"
    # Orchestrators beside the local runner: pipeline/airflow_dag.py, luigi_runner.py and
    # kubeflow_v2_runner.py read these.
    # Airflow: retries of a failed component task and the delay between them; the DAG's schedule (a
    # cron expression or a preset such as "@daily"; empty: only runs when triggered) from its start date.
    airflow_retries: int = 1
    airflow_retry_delay_seconds: int = 300
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
        out = Path(self.output_root)
        defaults = {
            "pipeline_root": out / "pipelines" / self.pipeline_name,
            "metadata_path": out / "metadata" / self.pipeline_name / "metadata.db",
            "serving_model_dir": out / "serving_model" / self.pipeline_name,
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, str(default))
        for name in ("data_root", "schema_path", "transform_module_file", "trainer_module_file",
                     "output_root", *defaults):
            # A bucket URI (gs://, s3://) is already absolute; abspath would turn it into a local path.
            if "://" not in getattr(self, name):
                object.__setattr__(self, name, os.path.abspath(getattr(self, name)))
        for name in ("train_steps", "eval_steps", "batch_size", "epochs",
                     "train_hash_buckets", "eval_hash_buckets"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.airflow_retries < 0:
            raise ConfigError(f"airflow_retries must be at least 0, got {self.airflow_retries}")
        if not 0.0 <= self.eval_auc_lower_bound <= 1.0:
            raise ConfigError(f"eval_auc_lower_bound must be in [0, 1], got {self.eval_auc_lower_bound}")

    @property
    def hyperparameters(self) -> dict:
        """What the Trainer's `run_fn` receives as `custom_config`."""
        return {
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "hidden_units": list(self.hidden_units),
            "epochs": self.epochs,
        }


def check_local_inputs(config: PipelineConfig) -> None:
    """Fail before any component starts when an input the run needs is missing on this machine."""
    if not Path(config.data_root).is_dir():
        raise ConfigError(f"data folder {config.data_root} does not exist (set TAXI_DATA_ROOT)")
    if not any(Path(config.data_root).glob(config.input_pattern)):
        raise ConfigError(
            f"no input files match {config.input_pattern!r} in {config.data_root} (set TAXI_DATA_ROOT "
            "or TAXI_INPUT_PATTERN)"
        )
    for name in ("schema_path", "transform_module_file", "trainer_module_file"):
        if not Path(getattr(config, name)).is_file():
            raise ConfigError(
                f"{name} {getattr(config, name)} does not exist (set {ENV_PREFIX}{name.upper()})"
            )


def _parse(name: str, raw: str, annotation: str):
    """Convert an environment variable's text to the field's type, or say clearly why not."""
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
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
        if annotation == "tuple[int, ...]":
            return tuple(int(part) for part in raw.replace(",", " ").split())
        if annotation == "tuple[str, ...]":
            if name == "beam_pipeline_args":
                return tuple(shlex.split(raw))
            return tuple(part for part in raw.replace(",", " ").split())
        return raw
    except ValueError as error:
        raise ConfigError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid {annotation}: {error}"
        ) from None


def env_overrides(environ: dict[str, str] | None = None) -> dict:
    """Settings given as `TAXI_<FIELD>` environment variables."""
    environ = os.environ if environ is None else environ
    overrides = {}
    for field in dataclasses.fields(PipelineConfig):
        raw = environ.get(ENV_PREFIX + field.name.upper())
        if raw is not None and raw != "":
            overrides[field.name] = _parse(field.name, raw, str(field.type))
    return overrides


def load_config(**overrides) -> PipelineConfig:
    """Defaults, then environment variables, then explicit overrides (for tests and notebooks)."""
    unknown = set(overrides) - {field.name for field in dataclasses.fields(PipelineConfig)}
    if unknown:
        raise ConfigError(f"unknown pipeline settings: {', '.join(sorted(unknown))}")
    return PipelineConfig(**{**env_overrides(), **overrides})
