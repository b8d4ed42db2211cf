"""What the benchmark measures: a run's wall time and peak memory, per-component times from ML Metadata,
and the row counts at every stage.

Each pipeline runs as its own process, exactly as a user starts it, so imports and start-up count; memory
is the summed resident size of that process and all its children (Beam's worker processes included),
sampled a few times a second.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil

from ml_metadata.proto import metadata_store_pb2

from pipeline.metadata import run_summary
from pipeline.metadata import artifact_files
from pipeline.metadata.store import open_store

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SAMPLE_SECONDS = 0.25


@dataclasses.dataclass
class ProcessRun:
    seconds: float
    # CPU time (user + system) of the process and every descendant it waited for: unlike wall time,
    # barely affected by other work on the machine.
    cpu_seconds: float
    peak_rss_bytes: int
    returncode: int
    log_tail: str
    # When the peak was sampled (seconds since the epoch), to find the component running then.
    peak_at: float = 0.0


def _members(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in _members(process):
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _trees_cpu(pids: list[int]) -> float:
    """CPU seconds so far of these processes, the children they waited for, and those still running."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        for member in _members(root):
            try:
                times = member.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return total


def run_process(
    args: list[str], env: dict[str, str], log_path: Path, timeout: float, cwd: Path = PROJECT_ROOT,
    also: list[int] = (),
) -> ProcessRun:
    """Run `args` to completion, timing it and tracking the peak memory of its process tree; `also` names
    processes running beside it whose trees count too (a cluster's JobManager, TaskManagers and the
    workers they start, its job server): summed into the peak memory and the CPU time."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    others = [psutil.Process(pid) for pid in also]
    with open(log_path, "wb") as log:
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        others_cpu_before = _trees_cpu(list(also))
        started = time.monotonic()
        child = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        watched = psutil.Process(child.pid)
        peak, peak_at = 0, 0.0
        while child.poll() is None:
            rss = _tree_rss(watched) + sum(_tree_rss(other) for other in others)
            if rss > peak:
                peak, peak_at = rss, time.time()
            if time.monotonic() - started > timeout:
                for member in [watched, *watched.children(recursive=True)]:
                    try:
                        member.kill()
                    except psutil.NoSuchProcess:
                        pass
                child.wait()
                break
            time.sleep(_SAMPLE_SECONDS)
        seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    cpu += _trees_cpu(list(also)) - others_cpu_before
    tail = log_path.read_bytes()[-3000:].decode(errors="replace")
    return ProcessRun(seconds, cpu, peak, child.returncode, tail, peak_at)


def _newest_run(metadata_path: str, pipeline_name: str):
    """The SQLite store and the newest run's context."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    store = open_store(connection)
    return store, run_summary.latest_run_context(store, pipeline_name)


def component_seconds(metadata_path: str, pipeline_name: str) -> dict[str, dict]:
    """Wall time and state of each component in the newest run, from MLMD execution timestamps."""
    store, context = _newest_run(metadata_path, pipeline_name)
    return {
        run.node_id: {"seconds": run.seconds, "state": run.state}
        for run in run_summary.component_runs(store, context, pipeline_name)
    }


def component_at(metadata_path: str, pipeline_name: str, epoch_seconds: float) -> str | None:
    """The component of the newest run whose execution spanned that moment, if one did."""
    store, context = _newest_run(metadata_path, pipeline_name)
    moment_ms = epoch_seconds * 1000
    for run in run_summary.component_runs(store, context, pipeline_name):
        execution = run.execution
        if execution.create_time_since_epoch <= moment_ms <= execution.last_update_time_since_epoch:
            return run.node_id
    return None


def latest_outputs(metadata_path: str, pipeline_name: str) -> dict[str, str]:
    """URI of each output key (examples, statistics, transformed_examples, ...) of the newest run."""
    store, context = _newest_run(metadata_path, pipeline_name)
    uris = {}
    for run in run_summary.component_runs(store, context, pipeline_name):
        for key, artifacts in run.outputs.items():
            if artifacts:
                uris[key] = artifacts[0].uri
    return uris


_COUNT_SCRIPT = r"""
import glob, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import pyarrow.csv as pa_csv
uris = json.loads(sys.argv[2])
started = time.monotonic()
rows = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    if os.path.getsize(path) < 2**31:
        rows += pa_csv.read_csv(path).num_rows
    else:
        # Read whole, 100M rows (12 GB of CSV) took 24 GB and was killed for memory: read block by block.
        rows += sum(batch.num_rows for batch in pa_csv.open_csv(path))
result = {"csv_rows": rows, "pyarrow_read_seconds": time.monotonic() - started}
import pyarrow.parquet as pq
import tensorflow as tf
def count(uri):
    total = 0
    for split in sorted(glob.glob(os.path.join(uri, "Split-*"))):
        # Parquet examples (the pipeline's payload) count their rows in each file's footer.
        total += sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(glob.glob(os.path.join(split, "*.parquet"))))
        files = sorted(glob.glob(os.path.join(split, "*.gz")))
        if not files:
            continue
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=1)
        total += int(dataset.batch(65536).reduce(tf.constant(0, tf.int64),
                     lambda n, batch: n + tf.size(batch, out_type=tf.int64)))
    return total
for key in ("examples", "transformed_examples"):
    if key in uris:
        result[key + "_rows"] = count(uris[key])
print(json.dumps(result))
"""


def count_rows(data_dir: str, metadata_path: str, pipeline_name: str) -> dict:
    """Rows in the CSV (and the time of a bare pyarrow read, the floor), in ExampleGen's and
    Transform's outputs, and counted by StatisticsGen, in a subprocess so its memory is returned."""
    uris = latest_outputs(metadata_path, pipeline_name)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [sys.executable, "-c", _COUNT_SCRIPT, data_dir, json.dumps(uris)],
        env=env, capture_output=True, text=True, check=True,
    )
    counts = json.loads(completed.stdout.strip().splitlines()[-1])
    if "statistics" in uris:
        per_split = artifact_files.rows_per_split(uris["statistics"])
        counts["statistics_rows"] = sum(per_split.values())
        counts["statistics_rows_per_split"] = per_split
    stages = [counts.get(key) for key in ("csv_rows", "examples_rows", "statistics_rows")]
    # Transform's output is counted where it writes transformed examples (this pipeline no longer does).
    if "transformed_examples_rows" in counts:
        stages.append(counts["transformed_examples_rows"])
    counts["rows_intact"] = None not in stages and len(set(stages)) == 1
    return counts
