"""The portable profile end to end: Beam's job service and a worker pool in their own processes, as remote
engines run the components' Beam work, through the local and the Beam runner; and the worker boot's
contract with Beam's SDK worker."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from apache_beam.portability.api import (
    beam_job_api_pb2,
    beam_job_api_pb2_grpc,
    beam_provision_api_pb2,
)
from google.protobuf import json_format, struct_pb2

from bench import measure
from pipeline import configs
from pipeline.beam import worker_boot
from pipeline.metadata import run_record, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import PROJECT_ROOT, run_command, small_run_env
from tests.orchestrator_checks import ALL_NODES

VENV_BIN = Path(sys.executable).parent
# The components that take beam_pipeline_args, by the executor label TFX gives their Beam jobs (TFX
# labels an executor of its own by its module, any other, such as the batched CsvExampleGen, as
# third-party).
BEAM_COMPONENT_LABELS = {
    "CsvExampleGen": "third_party_executor",
    "StatisticsGen": "tfx-components-statistics_gen-executor-executor",
    "Transform": "third_party_executor",  # TFX's executor, subclassed (pipeline/components/parquet_components.py)
    "Evaluator": "tfx-components-evaluator-executor-executor",
}
RUNNERS = {"local": "pipeline/runners/local_runner.py", "beam": "pipeline/runners/beam_runner.py"}


def test_worker_environment_gives_beam_the_jobs_options():
    """What `sdk_worker_main` reads, checked by Beam's own start-up: the job's pickle library and
    endpoints reach the worker (the worker pool's in-line workers get none of them)."""
    options = struct_pb2.Struct()
    options.update({"beam:option:pickle_library:v1": "cloudpickle", "beam:option:labels:v1": ["a=b"]})
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=options, runner_capabilities=["beam:c:1"])
    info.logging_endpoint.url = "localhost:2"
    args = argparse.Namespace(id="worker_7", control_endpoint="localhost:1", logging_endpoint="",
                              semi_persistent_directory="/tmp")
    env = worker_boot.worker_environment(info, args, {"PATH": os.environ["PATH"]})
    assert env["WORKER_ID"] == "worker_7" and env["RUNNER_CAPABILITIES"] == "beam:c:1"
    assert "STATUS_API_SERVICE_DESCRIPTOR" not in env
    # Beam's harness set up from this environment (dry run: nothing connects), in a process of its own
    # since it sets the process's pickler.
    env.pop("LOGGING_API_SERVICE_DESCRIPTOR")  # Its handler would try to connect.
    probe = (
        "from apache_beam.runners.worker import sdk_worker_main as m; import os\n"
        "from apache_beam.internal import pickler\n"
        "m.create_harness(os.environ, dry_run=True)\n"
        "print(pickler.desired_pickle_lib.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "apache_beam.internal.cloudpickle_pickler"
    assert json.loads(env["PIPELINE_OPTIONS"])["beam:option:labels:v1"] == ["a=b"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop a server and the workers it started (its own process group, by its id)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # Workers the pool left behind.
    except ProcessLookupError:
        pass


@dataclasses.dataclass
class BeamServices:
    job_port: int
    pool_port: int
    env: dict[str, str]
    job_service_log: Path
    pool_log: Path


@pytest.fixture(scope="module")
def beam_services(tmp_path_factory):
    """Beam's Python job service and an external worker pool, each its own process on a free loopback
    port, shared by both runners' runs; stopped by process id, also when a test fails."""
    folder = tmp_path_factory.mktemp("beam_services")
    # The venv's bin first: the pool starts workers as `python` or, here, the worker boot.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    services = BeamServices(_free_port(), _free_port(), env, folder / "job_service.log", folder / "pool.log")
    servers = [
        (services.job_port, services.job_service_log, [
            "python", "-m", "apache_beam.runners.portability.local_job_service_main",
            "--port", str(services.job_port), "--staging_dir", str(folder / "staging"),
        ]),
        (services.pool_port, services.pool_log, [
            "python", "-m", "apache_beam.runners.worker.worker_pool_main",
            "--service_port", str(services.pool_port),
            "--container_executable", str(VENV_BIN / "pipeline-beam-worker"),
        ]),
    ]
    processes = []
    try:
        for _, log, command in servers:
            with open(log, "wb") as out:
                processes.append(subprocess.Popen(command, env=env, cwd=folder, stdout=out,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 180
        for process, (port, log, command) in zip(processes, servers):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"{' '.join(command)} did not listen on {port}:\n{log.read_text()[-3000:]}")
                    time.sleep(0.5)
        yield services
    finally:
        for process in processes:
            _stop(process)


@dataclasses.dataclass
class PortableRun:
    config: configs.PipelineConfig
    output: str
    summary: run_summary.RunSummary
    rows: dict
    seconds: float


@pytest.fixture(scope="module")
def portable_runs(beam_services, tmp_path_factory, sample_data_dir) -> dict[str, PortableRun]:
    """The pipeline with the portable profile through each runner, as a user runs it, into its own store
    (a shared one would serve the second run from the cache, with no Beam work at all).

    One after the other: two runs from one checkout at the same time build the project's package
    (`setup.py sdist`, Beam's --setup_file) in the same folder, and one can remove it under the other.
    """
    runs = {}
    for runner, script in RUNNERS.items():
        env = {
            **small_run_env(sample_data_dir, tmp_path_factory.mktemp(f"portable_{runner}")),
            "PATH": beam_services.env["PATH"],
            "PIPELINE_BEAM_PROFILE": "portable",
            "PIPELINE_BEAM_JOB_ENDPOINT": f"localhost:{beam_services.job_port}",
            "PIPELINE_BEAM_ENVIRONMENT_TYPE": "EXTERNAL",
            "PIPELINE_BEAM_ENVIRONMENT_CONFIG": f"localhost:{beam_services.pool_port}",
        }
        config = configs.load_config(**configs.env_overrides(env))
        started = time.monotonic()
        output = run_command([sys.executable, str(PROJECT_ROOT / script)], env)
        seconds = time.monotonic() - started
        summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
        rows = measure.count_rows(config.data_root, config.metadata_path, config.pipeline_name)
        runs[runner] = PortableRun(config, output, summary, rows, seconds)
    return runs


def _jobs(port: int) -> list[tuple[str, str, str]]:
    """(runner, executor, state) of every job the job service ran, from its own job list."""
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        jobs = beam_job_api_pb2_grpc.JobServiceStub(channel).GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=30)
    found = []
    for job in jobs.job_info:
        labels = dict(label.split("=", 1) for label in
                      json_format.MessageToDict(job.pipeline_options)["beam:option:labels:v1"])
        found.append((labels["tfx_runner"], labels["tfx_executor"], beam_job_api_pb2.JobState.Enum.Name(job.state)))
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("runner", RUNNERS)
def test_every_row_arrives_and_the_model_is_blessed(portable_runs, runner, sample_rows):
    run = portable_runs[runner]
    assert {c.node_id: c.state for c in run.summary.components} == {node: "executed" for node in ALL_NODES}
    # Rows in the CSV = examples ExampleGen wrote = examples StatisticsGen counted.
    assert run.rows["csv_rows"] == run.rows["examples_rows"] == run.rows["statistics_rows"] == len(sample_rows)
    assert run.rows["rows_intact"] is True
    assert run.summary.blessed is True
    assert Path(run.summary.pushed_to, "saved_model.pb").is_file()
    record = run_record.read_record(
        run_summary.latest_run_context(open_store(connection_config(run.config)), run.config.pipeline_name)
    )
    assert record["runner"] == runner
    assert json.loads(record["config"])["beam_profile"] == "portable"


@pytest.mark.e2e
def test_the_beam_work_ran_in_the_job_service_and_the_pools_workers(portable_runs, beam_services):
    # Every component that takes Beam args sent its job to the job service, once per run, and each job
    # succeeded: a component that fell back to an in-process runner would be missing here.
    jobs = _jobs(beam_services.job_port)
    assert sorted(jobs) == sorted(
        (runner, label, "DONE") for runner in RUNNERS for label in BEAM_COMPONENT_LABELS.values()
    )
    # Each job ran in a worker the pool started through the worker boot...
    pool_log = beam_services.pool_log.read_text()
    assert pool_log.count(f"Starting worker with command ['{VENV_BIN / 'pipeline-beam-worker'}'") == len(jobs)
    # ...which ran ExampleGen's bundles: its row counts reached the job service through the workers'
    # logging channel, which only an SDK worker the job service started uses.
    split_rows = collections.Counter()
    for line in beam_services.job_service_log.read_text().splitlines():
        if line.startswith('message: "split ') and line.endswith(' rows"'):
            split, rows = line.removeprefix('message: "split ').removesuffix(' rows"').split(": ")
            split_rows[split] += int(rows)
    assert sum(split_rows.values()) == len(RUNNERS) * portable_runs["local"].rows["csv_rows"]
    assert set(split_rows) == {"train", "eval"}
