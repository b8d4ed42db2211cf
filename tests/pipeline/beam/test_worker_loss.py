"""A Beam worker process killed mid-bundle, in a real run whose StatisticsGen worker the kernel kills for
memory (a memory cgroup the test puts it in; where the test may not create one, SIGKILL, as the kernel's
out-of-memory killer sends). On a bare Beam pipeline: tests/pipeline/upstream/test_lost_workers.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.beam import worker_loss
from pipeline.guards import input_checks
from pipeline.metadata import run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import small_run_env
from tests.pipeline.guards.test_recovery import PipelineProcess

MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")


def test_the_watch_passes_other_threads_errors_on():
    seen = []
    previous, threading.excepthook = threading.excepthook, seen.append
    try:
        with worker_loss.watching():
            thread = threading.Thread(target=lambda: 1 / 0)
            thread.start()
            thread.join()
    finally:
        threading.excepthook = previous
    assert [args.exc_type for args in seen] == [ZeroDivisionError]


def _in_bundle(worker: psutil.Process) -> bool:
    """A worker connects its control and state channels as it starts, its data channel at its first
    bundle's data."""
    return len([c for c in worker.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED]) >= 3


def _kill_for_memory(worker: psutil.Process, cgroup: Path | None) -> str:
    """Put the worker in a memory cgroup too small for what it allocates next, so the kernel kills it;
    SIGKILL where no cgroup could be made."""
    if cgroup is None:
        worker.send_signal(signal.SIGKILL)
        return "SIGKILL"
    (cgroup / "memory.limit_in_bytes").write_text(str(4 * 2**20))
    (cgroup / "cgroup.procs").write_text(str(worker.pid))
    return "memory cgroup"


@pytest.mark.e2e
def test_a_worker_killed_for_memory_stops_the_run_in_one_line_and_the_next_reads_every_row(
    tmp_path, sample_data_dir
):
    env = {
        **small_run_env(sample_data_dir, tmp_path / "output"),
        "PIPELINE_BEAM_PROFILE": "multi_processing",
        "PIPELINE_BEAM_DIRECT_NUM_WORKERS": "2",
    }
    config = configs.load_config(**configs.env_overrides(env))
    cgroup = MEMORY_CGROUPS / f"pipeline-test-{os.getpid()}"
    try:
        cgroup.mkdir()
    except OSError:
        cgroup = None
    try:
        run = PipelineProcess(env, args=("--validate-only",))
        run.wait_for(f"{'StatisticsGen':<32} started")
        how = None
        deadline = time.monotonic() + 300
        while how is None and time.monotonic() < deadline and run.process.poll() is None:
            for worker in psutil.Process(run.process.pid).children(recursive=True):
                try:
                    if "sdk_worker_main" in " ".join(worker.cmdline()) and _in_bundle(worker):
                        how = _kill_for_memory(worker, cgroup)
                        break
                except psutil.Error:  # Gone between the listing and the look.
                    continue
            time.sleep(0.05)
        assert how is not None, run.output[-4000:]
        assert run.finish() == 1
    finally:
        if cgroup is not None:
            for _ in range(50):  # The killed worker leaves the cgroup as the kernel reaps it.
                try:
                    cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)

    errors = [line for line in run.lines if line.startswith("error: ")]
    assert errors == [
        "error: StatisticsGen lost a Beam worker process mid-bundle (killed with SIGKILL, as the kernel's "
        "out-of-memory killer does; dmesg shows whether it did). Each of its 2 worker processes holds a "
        "share of the work in memory: run fewer, PIPELINE_BEAM_DIRECT_NUM_WORKERS=1 (now 2), or all in one "
        "process, PIPELINE_BEAM_PROFILE=in_memory; PIPELINE_RETRIES=1 runs the failed component again, the "
        "finished ones from the cache.\n"
    ], (how, run.output[-6000:])
    assert "Traceback" not in run.output, run.output[-6000:]
    assert f"{'StatisticsGen':<32} FAILED after" in run.output
    failed = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
    assert {c.node_id: c.state for c in failed.components}["StatisticsGen"] == "failed"
    store = open_store(config, readonly=True)
    # TFX published nothing of the failed execution.
    assert not [a for a in store.get_artifacts_by_type("ExampleStatistics") if a.state == metadata_store_pb2.Artifact.LIVE]

    # The next run, with nothing changed, counts every row of the input (rows in = rows out, which the run
    # checks itself) and takes ExampleGen's work from the cache.
    again = PipelineProcess(env, args=("--validate-only",))
    assert again.finish() == 0, again.output[-6000:]
    summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
    assert {c.node_id: c.state for c in summary.components}["CsvExampleGen"] == "cached"
    rows = input_checks.count_rows([str(Path(sample_data_dir) / "data.csv")])
    assert sum(summary.rows_per_split.values()) == rows > 0
