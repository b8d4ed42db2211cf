"""Shared fixtures: small samples of the real data and a helper that runs the pipeline as a user does."""

from __future__ import annotations

import csv
import dataclasses
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any test imports TensorFlow)
from pipeline import configs
from pipeline.metadata.store import connection_config
from tests.docs.commands import documented

PROJECT_ROOT = configs.PROJECT_ROOT
DATA_CSV = PROJECT_ROOT / "data" / "data.csv"


# Test modules that read one session fixture's runs: xdist keeps them on one worker, so the runs happen
# once (its `loadfile` scope is a single module).
SHARED_RUNS = {
    "tests/pipeline/runners/test_local_runner.py": "local_runs",
    "tests/pipeline/governance/test_cli.py": "local_runs",
    "tests/scripts/test_update_schema.py": "local_runs",
    "tests/cluster/test_flink.py": "flink_cluster",
    "tests/pipeline/runners/test_airflow_dag.py": "flink_cluster",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling  # Only under xdist, which calls this hook.

    class SharedRunsScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_RUNS.get(module, module)

    return SharedRunsScheduling(config, log)


# The modules with the longest set-ups (the suite's durations report), longest first. Only an order:
# a module not named here runs after them, in file order.
SLOWEST_FIRST = (
    "tests/cluster/test_flink.py",  # with test_airflow_dag.py, on the Flink cluster (SHARED_RUNS)
    "tests/pipeline/runners/test_airflow_local_executor.py",
    "tests/cluster/test_spark.py",
    "tests/ci/test_make_targets.py",
    "tests/pipeline/governance/test_plan.py",  # six runs, each planned first
    "tests/pipeline/governance/test_cli.py",  # these two share their runs (SHARED_RUNS)
    "tests/pipeline/runners/test_local_runner.py",
    "tests/pipeline/components/test_data_gate.py",
    "tests/pipeline/runners/test_scheduler.py",
    "tests/pipeline/runners/test_luigi_runner.py",
    "tests/pipeline/runners/test_airflow_dag.py",
    "tests/notebooks/test_pipeline_walkthrough.py",
    "tests/pipeline/runners/test_beam_runner.py",
    "tests/pipeline/guards/test_recovery.py",
    "tests/pipeline/guards/test_disk_space.py",
)


def pytest_collection_modifyitems(session, config, items):
    """The longest modules first, then the other modules with real runs, then unit tests: the workers take
    modules in this order (pytest.ini turns off xdist's own reordering by test count), so the short ones
    fill in at the end instead of one worker finishing a long run alone."""
    heavy = {item.location[0] for item in items if item.get_closest_marker("e2e")}
    rank = {module: position for position, module in enumerate(SLOWEST_FIRST)}

    items.sort(key=lambda item: (item.location[0] not in heavy, rank.get(item.location[0], len(rank))))


def read_rows(path: Path = DATA_CSV) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def sample_rows() -> list[dict[str, str]]:
    """A fixed random sample of the real data: same distributions, a fraction of the rows."""
    rows = read_rows()
    return random.Random(42).sample(rows, 1500)


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory, sample_rows) -> Path:
    directory = tmp_path_factory.mktemp("sample_data")
    write_rows(directory / "data.csv", sample_rows)
    return directory


def tiny_input(tmp_path: Path, size: int) -> str:
    """A data folder holding one file of `size` bytes: enough for sizing and building the pipeline."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_bytes(b"x" * size)
    return str(tmp_path / "data")


# The task's Credit Card slice, judged in every small run but never refusing it: 60 steps reach an AUC near
# chance on that slice (0.38-0.59 seen on spans of 600 and 1,500 rows and on the sample), so any bound above 0
# made a push a coin flip. A model failing the slice alone: test_local_runner's stricter bound.
SMALL_RUN_SLICE_THRESHOLDS = '{"payment_type=Credit Card": {"lower_bound": 0, "max_decrease": 1.0}}'


def small_run_env(data_dir: Path, output_root: Path, modules_dir: Path | None = None) -> dict[str, str]:
    """Environment for a fast pipeline run on a sample: few steps, everything under output_root."""
    env = {
        **os.environ,
        "PIPELINE_DATA_ROOT": str(data_dir),
        "PIPELINE_OUTPUT_ROOT": str(output_root),
        "PIPELINE_TRAIN_STEPS": "60",
        "PIPELINE_EVAL_STEPS": "4",
        "PIPELINE_EPOCHS": "1",
        "PIPELINE_BLESSING_LOWER_BOUND": "0.6",
        # The task's Credit Card slice is judged too, by a bound 60 steps on a sample reach (any change
        # allowed: a test that retrains judges the overall change alone, as before slices were judged).
        "PIPELINE_BLESSING_SLICE_THRESHOLDS": SMALL_RUN_SLICE_THRESHOLDS,
    }
    if modules_dir is not None:
        env["PIPELINE_TRANSFORM_MODULE_FILE"] = str(modules_dir / "transform_module.py")
        env["PIPELINE_TRAINER_MODULE_FILE"] = str(modules_dir / "trainer_module.py")
    return env


def copy_modules(destination: Path) -> Path:
    """A private copy of modules/ that a test may edit without touching the repository."""
    shutil.copytree(PROJECT_ROOT / "modules", destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


FAIL_ONCE_ENV = "PIPELINE_TEST_FAIL_ONCE_MARKER"
# Appended to a test's copy of the trainer module: a transient failure, the first time only (the Trainer's
# process raises; nothing is mocked). Until the test creates "<marker>.release", the failing Trainer holds
# on, so a test can act while the run is sure to be in the Trainer.
FAIL_ONCE = f'''

_run_fn_that_works = run_fn


def run_fn(fn_args):
    import os
    import time

    marker = os.environ.get("{FAIL_ONCE_ENV}")
    if marker and not os.path.exists(marker):
        deadline = time.monotonic() + 1200
        while not os.path.exists(marker + ".release") and time.monotonic() < deadline:
            time.sleep(0.2)
        open(marker, "w").close()
        raise RuntimeError("simulated transient failure")
    return _run_fn_that_works(fn_args)
'''


def run_command_result(
    args: list[str], env: dict[str, str], cwd: Path = PROJECT_ROOT, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run a command like a user would; fail the test with its output if it fails."""
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout ---\n{result.stdout[-8000:]}"
            f"\n--- stderr ---\n{result.stderr[-8000:]}"
        )
    return result


def run_command(args: list[str], env: dict[str, str], cwd: Path = PROJECT_ROOT, timeout: int = 900) -> str:
    """What a command printed to stdout; see run_command_result."""
    return run_command_result(args, env, cwd, timeout).stdout


LOCAL_RUNNER = [sys.executable, str(PROJECT_ROOT / "pipeline" / "runners" / "local_runner.py")]


def run_local_pipeline(env: dict[str, str]) -> str:
    return run_command(LOCAL_RUNNER, env)


@dataclasses.dataclass
class LocalRuns:
    config: configs.PipelineConfig
    env: dict[str, str]
    modules_dir: Path
    outputs: list[str]
    errors: list[str]  # What each run printed to stderr.
    summaries: list  # run_summary.RunSummary, oldest first


@pytest.fixture(scope="session")
def local_runs(tmp_path_factory, sample_data_dir) -> LocalRuns:
    """Three real local runs into one store, shared by the end-to-end and `pipeline` command tests.

    A first run (`make run`, as the README shows it, with the test's settings), an unchanged re-run, and a
    re-run after editing the trainer module, whose new model is blessed (any AUC change allowed) and pushed:
    two models, one store. Under xdist each worker that runs a module using it builds its own (pytest.ini
    keeps a module on one worker).
    """
    from pipeline.metadata import run_summary

    modules_dir = copy_modules(tmp_path_factory.mktemp("user") / "modules")
    output_root = tmp_path_factory.mktemp("output")
    env = {**small_run_env(sample_data_dir, output_root, modules_dir), "PIPELINE_BLESSING_MAX_DECREASE": "1.0"}
    config = configs.load_config(**configs.env_overrides(env))
    connection = connection_config(config)
    outputs, errors, summaries = [], [], []

    def run(command=None):
        result = command.run(env) if command else run_command_result(LOCAL_RUNNER, env)
        outputs.append(result.stdout)
        errors.append(result.stderr)
        summaries.append(run_summary.summarize_latest_run(connection, config.pipeline_name))

    run(documented("README.md", "make run"))
    run()
    trainer_file = modules_dir / "trainer_module.py"
    trainer_file.write_text(
        trainer_file.read_text().replace('"learning_rate": 0.003', '"learning_rate": 0.004')
        + "\n# edited by the test\n"
    )
    run()
    return LocalRuns(config, env, modules_dir, outputs, errors, summaries)


@pytest.fixture(scope="session")
def flink_cluster(tmp_path_factory):
    """A Flink session cluster started and stopped as users do, with the make targets of the recipe in
    docs/distributed-engines.md: a JobManager, two TaskManagers and Beam's Flink job server from the pinned
    artifacts, on free loopback ports (CLUSTER_ARGS), its state in a folder of the test's (CLUSTER_STATE_ROOT,
    the parent of the cluster's state_dir, which the recipe's other commands are given too). The modules using
    it share one xdist worker (SHARED_RUNS). Stopping it is checked every time: `down` must leave none of its
    processes, nor any worker they started, running."""
    from cluster.engine import STATE_ROOT_ENV  # Only the cluster tests start Java processes.
    from cluster.flink import FlinkCluster
    from cluster.processes import group_members, running_members
    from tests.servers import free_port

    ports = {"rest_port": free_port(), "rpc_port": free_port(), "job_port": free_port()}
    state_root = tmp_path_factory.mktemp("clusters")
    cluster = FlinkCluster(state_root / "flink", **ports)
    flags = [arg for name, port in ports.items() for arg in (f"--{name.replace('_', '-')}", str(port))]
    env = {**os.environ, STATE_ROOT_ENV: str(state_root)}
    try:
        up = documented("docs/distributed-engines.md", "make cluster-up").run(
            {**env, "CLUSTER_ARGS": " ".join(flags)})
        assert "export PIPELINE_BEAM_PROFILE=flink" in up.stdout
        yield cluster
    finally:
        recorded = cluster.processes()
        started = [member for p in recorded if p.alive() for member in group_members(p)]
        status = documented("docs/distributed-engines.md", "make cluster-status").run(env, check=False, timeout=120)
        down = documented("docs/distributed-engines.md", "make cluster-down").run(env, check=False, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    # Every process was running (the kill and outage tests restart what they stop), in any order; after
    # make's echo of the command.
    stopped = (down.stdout.splitlines() or [""])[-1]
    assert stopped.startswith("stopped "), down.stdout + down.stderr
    assert set(stopped.removeprefix("stopped ").strip().split(", ")) == {
        "jobmanager", "taskmanager-1", "taskmanager-2", "job-server"}, down.stdout
    command = [sys.executable, "-m", "cluster"]
    where = ["flink", "--state-dir", str(cluster.state_dir)]
    left = running_members(started)
    assert not left, f"processes left after `cluster down`: {[' '.join(m.cmdline()) for m in left]}"
    assert subprocess.run([*command, "status", *where], cwd=PROJECT_ROOT, capture_output=True).returncode == 3


def running(cluster):
    """A fixture's body for a local cluster (cluster/): started, then stopped by process id, also when a
    test fails."""
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def curated_schema():
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    return io_utils.parse_pbtxt_file(configs.load_config().schema_path, schema_pb2.Schema())


def _typed(value: str, feature_type: int):
    from tensorflow_metadata.proto.v0 import schema_pb2

    if feature_type == schema_pb2.INT:
        return int(float(value))
    if feature_type == schema_pb2.FLOAT:
        return float(value)
    return value.encode()


def csv_row_to_raw(row: dict[str, str], schema) -> dict[str, list]:
    """A CSV row as CsvExampleGen decodes it: one typed value per cell, an empty list when empty."""
    return {
        feature.name: [] if row[feature.name] == "" else [_typed(row[feature.name], feature.type)]
        for feature in schema.feature
    }


def csv_row_to_example(row: dict[str, str], schema, exclude=()) -> bytes:
    """A serialized tf.Example of the row's raw features, as a gRPC/REST client would send it."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import schema_pb2

    example = tf.train.Example()
    for name, values in csv_row_to_raw(row, schema).items():
        if name in exclude:
            continue
        feature_type = next(f.type for f in schema.feature if f.name == name)
        feature = example.features.feature[name]
        if feature_type == schema_pb2.INT:
            feature.int64_list.value.extend(values)
        elif feature_type == schema_pb2.FLOAT:
            feature.float_list.value.extend(values)
        else:
            feature.bytes_list.value.extend(values)
    return example.SerializeToString()


def csv_rows_to_raw_columns(rows: list[dict[str, str]], schema, exclude=()) -> dict:
    """Raw feature values column by column, as the JSON-friendly signature takes them.

    Numbers travel as float64 with NaN for an empty cell; strings with "" for an empty cell.
    """
    import numpy as np
    from tensorflow_metadata.proto.v0 import schema_pb2

    columns = {}
    for feature in schema.feature:
        if feature.name in exclude:
            continue
        cells = [row[feature.name] for row in rows]
        if feature.type == schema_pb2.BYTES:
            columns[feature.name] = np.array([c.encode() for c in cells], dtype=object)
        else:
            columns[feature.name] = np.array(
                [float(c) if c != "" else np.nan for c in cells], dtype=np.float64
            )
    return columns


def predict_through_both_signatures(loaded_model, rows: list[dict[str, str]]):
    """Probabilities for raw CSV rows from `serving_default` (tf.Examples) and `serving_raw` (columns)."""
    import tensorflow as tf

    from modules import trainer_module

    schema = curated_schema()
    examples = tf.constant([csv_row_to_example(row, schema, exclude={"tips"}) for row in rows])
    from_examples = loaded_model.signatures[trainer_module.SERVING_SIGNATURE](examples=examples)
    columns = csv_rows_to_raw_columns(rows, schema, exclude={"tips"})
    from_raw = loaded_model.signatures[trainer_module.RAW_FEATURES_SIGNATURE](
        **{key: tf.constant(value) for key, value in columns.items()}
    )
    return from_examples["outputs"].numpy(), from_raw["outputs"].numpy()


def tensorboard_scalars(log_dir: str) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """{(run, tag): [(step, value), ...]} of the scalars in each run folder under log_dir, read with
    TensorBoard's own reader; fails the test on anything else (a graph, histograms, images, non-scalars).
    """
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    found = {}
    for run in sorted(p for p in Path(log_dir).iterdir() if p.is_dir()):
        accumulator = event_accumulator.EventAccumulator(str(run), size_guidance={event_accumulator.TENSORS: 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        assert not (tags["graph"] or tags["histograms"] or tags["images"] or tags["run_metadata"]), (run, tags)
        for tag in tags["tensors"]:
            assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "scalars", (run, tag)
            found[(run.name, tag)] = [
                (event.step, float(tf.make_ndarray(event.tensor_proto))) for event in accumulator.Tensors(tag)
            ]
    return found
