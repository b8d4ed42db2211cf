"""Airflow's local settings for this pipeline: the scheduler imports TensorFlow, TFX and Beam once, so the
task processes its LocalExecutor forks start with them loaded.

Airflow imports the module `airflow_local_settings` from $AIRFLOW_HOME/config in each of its processes;
link this file there (README, "Airflow"). Every task of the DAG parses the DAG file, which builds the
pipeline, before it runs its node: without this, each task process first spends many seconds of CPU
importing the libraries, and the DAG's tasks, several at once on a small machine, spend more time
importing than running. Only third-party libraries are loaded here; the project's code, the task's module
files and the settings are read afresh by each task, so an edit reaches the next task without restarting
the scheduler. Upgrading these libraries needs a scheduler restart, as it does anyway.

Only `airflow scheduler` preloads (its DAG-parsing processes and the LocalExecutor's task processes are
forked from it); other Airflow commands, such as `airflow dags trigger`, stay quick to start.
"""

from __future__ import annotations

import importlib
import os
import sys

PRELOADED = (
    "tensorflow",
    "tf_keras",
    "apache_beam",
    "tfx.v1",
    "tfx.orchestration.portable.launcher",
    "tensorflow_data_validation",
    "tensorflow_transform",
    "tensorflow_model_analysis",
)


def is_scheduler(argv: list[str]) -> bool:
    """Whether this process is `airflow scheduler` (or `python -m airflow scheduler`)."""
    return len(argv) > 1 and argv[1] == "scheduler" and os.path.basename(argv[0]) in ("airflow", "__main__.py")


if is_scheduler(sys.argv):
    import pipeline  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    for name in PRELOADED:
        importlib.import_module(name)
