"""What the Airflow scheduler preloads for the tasks it forks (the preload itself is checked end to end in
test_airflow_local_executor.py): only for `airflow scheduler`, only libraries that exist."""

from __future__ import annotations

import importlib.util

import pytest

from pipeline.runners import airflow_local_settings


@pytest.mark.parametrize(
    ("argv", "preloads"),
    [
        (["/srv/venv/bin/airflow", "scheduler"], True),
        (["airflow", "scheduler", "--num-runs", "3"], True),
        (["/srv/venv/lib/python3.10/site-packages/airflow/__main__.py", "scheduler"], True),
        (["airflow", "dags", "trigger", "chicago-taxi"], False),
        (["airflow", "tasks", "run", "chicago-taxi", "Trainer", "manual__1"], False),
        (["airflow"], False),
        (["/usr/bin/python", "-m", "pipeline.runners.scheduler"], False),
        (["/tmp/scheduler", "scheduler"], False),
    ],
)
def test_only_the_scheduler_preloads(argv, preloads):
    assert airflow_local_settings.is_scheduler(argv) is preloads


def test_every_preloaded_library_is_installed():
    assert [name for name in airflow_local_settings.PRELOADED if importlib.util.find_spec(name) is None] == []
