"""The whole pipeline on a real Spark standalone cluster (a master, two workers and Beam's Spark job server,
each its own process, started by cluster/ from the pinned artifacts), through the tfx CLI's Beam engine,
its Python work in an EXTERNAL worker pool (Beam's, starting the project's worker boot): each Beam
component an application that finished with executors on both workers, proven from the master's and the
workers' own JSON, and every job's Python work in a worker the pool started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.engine import port_open
from tests.cluster.test_flink import BEAM_COMPONENTS, job_name, run_on
from tests.conftest import run_command, running, small_run_env
from tests.orchestrator_checks import ALL_NODES
from tests.servers import free_port

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent
TFX = str(VENV_BIN / "tfx")


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    from cluster.spark import SparkCluster  # Only this module starts Spark.

    yield from running(SparkCluster(tmp_path_factory.mktemp("spark"), master_port=free_port(), ui_port=free_port(),
                                    job_port=free_port()))


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """Beam's Python worker pool on a free loopback port, starting each worker through the worker boot (the
    README's recipe); stopped, with the workers it started, by its process group's id."""
    port, log = free_port(), tmp_path_factory.mktemp("pool") / "pool.log"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    with open(log, "wb") as out:
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", "--service_port", str(port),
             "--container_executable", str(VENV_BIN / "pipeline-beam-worker")],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not port_open(port):
            assert pool.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield port, log
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        try:
            pool.wait(timeout=30)
        finally:
            try:
                os.killpg(pool.pid, signal.SIGKILL)  # workers the pool left behind
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def spark_run(spark_cluster, worker_pool, tmp_path_factory, sample_data_dir):
    """`tfx pipeline create` and `tfx run create --engine beam` (the Beam runner) with the settings
    `python -m cluster up spark` prints, its workers an EXTERNAL pool instead of PROCESS."""
    env = {
        **small_run_env(sample_data_dir, tmp_path_factory.mktemp("spark_cli")),
        **spark_cluster.settings(),
        "PIPELINE_BEAM_ENVIRONMENT_TYPE": "EXTERNAL",
        "PIPELINE_BEAM_ENVIRONMENT_CONFIG": f"127.0.0.1:{worker_pool[0]}",
        "BEAM_HOME": str(tmp_path_factory.mktemp("beam_home")),
    }
    run_command([TFX, "pipeline", "create", "--engine", "beam", "--pipeline_path", "pipeline/runners/beam_runner.py"],
                env)
    return run_on(spark_cluster, [TFX, "run", "create", "--engine", "beam", "--pipeline_name", "chicago-taxi"], env)


def test_tfx_run_create_with_the_beam_engine_runs_every_beam_component_on_spark(spark_run, spark_cluster,
                                                                               sample_rows):
    assert {c.node_id: c.state for c in spark_run.summary.components} == {node: "executed" for node in ALL_NODES}
    assert spark_run.rows["rows_intact"] and spark_run.rows["csv_rows"] == len(sample_rows), spark_run.rows
    assert spark_run.summary.blessed is True
    workers = {worker["id"] for worker in spark_cluster.master_state()["workers"] if worker["state"] == "ALIVE"}
    assert len(workers) == 2
    # Beam's Spark job server names each application <job name>_<invocation id>.
    assert [app["name"].split("_", 1)[0] for app in spark_run.jobs] == [
        job_name(spark_run.config, component) for component in BEAM_COMPONENTS
    ]
    for app in spark_run.jobs:
        assert app["state"] == "FINISHED" and set(app["workers"]) == workers, app


def test_the_python_work_ran_in_the_pools_workers(spark_run, worker_pool):
    """Each job's Python work ran in workers the pool started through the worker boot: at least one per
    job, at most one per executor (two) per job."""
    started = Path(worker_pool[1]).read_text().count(
        f"Starting worker with command ['{VENV_BIN / 'pipeline-beam-worker'}'"
    )
    assert len(spark_run.jobs) <= started <= 2 * len(spark_run.jobs)
