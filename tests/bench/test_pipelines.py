"""bench/pipelines.py: `compare --small` runs what the suite's small runs run."""

import os

from bench import pipelines
from pipeline import configs
from tests.conftest import small_run_env


def test_the_small_bench_runs_take_the_suites_small_run_settings(tmp_path):
    suite = {name: value for name, value in small_run_env(tmp_path, tmp_path).items()
             if os.environ.get(name) != value and name not in ("PIPELINE_DATA_ROOT", "PIPELINE_OUTPUT_ROOT")}
    assert configs.env_overrides(pipelines.SMALL_RUN_ENV) == configs.env_overrides(suite)
