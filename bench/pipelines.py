"""The two pipelines the benchmark runs, each as a user would start it, on data and dirs it is given.

Ours: `pipeline/runners/local_runner.py` with `TAXI_*` variables. TFX's: the Chicago taxi example shipped in the
tfx wheel (`taxi_pipeline_native_keras.py` with its module `taxi_utils_native_keras.py`), run unmodified:
it reads its data, module, pipeline root, metadata and serving dirs from under `$HOME`, so the benchmark
gives it a fresh `$HOME` laid out as the example expects.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import tfx

from bench import measure

PROJECT_ROOT = measure.PROJECT_ROOT
TFX_EXAMPLE_DIR = Path(tfx.__file__).resolve().parent / "examples" / "chicago_taxi_pipeline"
OUR_PIPELINE_NAME = "chicago-taxi"
THEIR_PIPELINE_NAME = "chicago_taxi_native_keras"


@dataclasses.dataclass
class PipelineRun:
    """How to start one pipeline on one data folder, and where its ML Metadata store ends up."""

    name: str
    args: list[str]
    env: dict[str, str]
    metadata_path: str
    pipeline_name: str
    # The run's working directory. Beam's multi-processing workers start with `python -m`, which puts
    # their working directory first on sys.path: run from another checkout, they would import its code.
    cwd: Path = PROJECT_ROOT


# What tests/conftest.py's small_run_env sets: the test suite's many short runs. Under the settings' older
# names (TAXI_*, which the pipeline still reads): `compare --before` may run a checkout that knows only them.
SMALL_RUN_ENV = {
    "TAXI_TRAIN_STEPS": "60",
    "TAXI_EVAL_STEPS": "4",
    "TAXI_EPOCHS": "1",
    "TAXI_EVAL_AUC_LOWER_BOUND": "0.6",
    # Newer than the TAXI_* names: a checkout that does not know it judges the slice by the task's bound.
    "PIPELINE_BLESSING_SLICE_THRESHOLDS": '{"payment_type=Credit Card": {"lower_bound": 0, "max_decrease": 1.0}}',
}


def _local_runner(project_root: Path) -> Path:
    """The local runner of a checkout: in pipeline/runners/ since the layout by concern, in pipeline/ before."""
    moved = project_root / "pipeline" / "runners" / "local_runner.py"
    return moved if moved.is_file() else project_root / "pipeline" / "local_runner.py"


def ours(
    data_dir: Path,
    work_dir: Path,
    extra_env: dict[str, str] | None = None,
    project_root: Path = PROJECT_ROOT,
    name: str = "ours",
) -> PipelineRun:
    """Our local runner; project_root may be another checkout (say, before a change) to compare with.

    PYTHONPATH puts that checkout first and the run starts in it: the environment holds this checkout
    installed in editable mode, and Beam's workers put their working directory first on sys.path, so
    otherwise `import pipeline` in the other checkout's runner or workers would load this one's code.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project_root), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "TAXI_DATA_ROOT": str(data_dir),
        "TAXI_OUTPUT_ROOT": str(work_dir),
        **(extra_env or {}),
    }
    return PipelineRun(
        name=name,
        args=[sys.executable, str(_local_runner(Path(project_root)))],
        env=env,
        metadata_path=str(work_dir / "metadata" / OUR_PIPELINE_NAME / "metadata.db"),
        pipeline_name=OUR_PIPELINE_NAME,
        cwd=Path(project_root),
    )


def theirs(data_dir: Path, work_dir: Path) -> PipelineRun:
    """TFX's example with `$HOME` at work_dir/home: data linked into ~/taxi/data/simple, module in ~/taxi."""
    home = work_dir / "home"
    simple = home / "taxi" / "data" / "simple"
    if not simple.is_dir():
        simple.mkdir(parents=True)
        for csv in sorted(Path(data_dir).glob("*.csv")):
            os.symlink(csv.resolve(), simple / csv.name)
        shutil.copy(TFX_EXAMPLE_DIR / "taxi_utils_native_keras.py", home / "taxi")
    env = {
        **os.environ,
        "HOME": str(home),
        # TFX 1.16's Keras trainer needs Keras 2 (tf-keras) under TensorFlow 2.16.
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    return PipelineRun(
        name="theirs",
        args=[sys.executable, str(TFX_EXAMPLE_DIR / "taxi_pipeline_native_keras.py")],
        env=env,
        metadata_path=str(home / "tfx" / "metadata" / THEIR_PIPELINE_NAME / "metadata.db"),
        pipeline_name=THEIR_PIPELINE_NAME,
    )
