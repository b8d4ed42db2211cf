"""Checks shared by the end-to-end tests of every runner: what a run left in ML Metadata, read as users read it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.components import data_gate
from pipeline.governance import cli
from pipeline.metadata import run_summary
from pipeline.metadata.store import connection_config, open_store

ALL_NODES = {
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "CuratedSchemaImporter",
    "ExampleValidator",
    data_gate.BASELINE_RESOLVER_ID,
    data_gate.DATA_GATE_ID,
    "Transform",
    "Trainer",
    pipeline_definition.RESOLVER_ID,
    "Evaluator",
    "Pusher",
}
# What an unchanged re-run takes from the cache: every component; the resolvers and the data gate run on
# every run (the gate checks drift against the statistics it passed last time).
CACHED_WHEN_UNCHANGED = ALL_NODES - {
    pipeline_definition.RESOLVER_ID,
    data_gate.BASELINE_RESOLVER_ID,
    data_gate.DATA_GATE_ID,
}


# Another run holding the store, as far as the run lock tells: a process that holds it and waits.
_HOLD_THE_STORE = """
import time
from pipeline import configs
from pipeline.guards import store_lock
with store_lock.hold(configs.load_config(), "local"):
    print("held", flush=True)
    time.sleep(600)
"""


@contextlib.contextmanager
def store_held_by_another_run(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """For the block, a process holds the run lock of the store `env`'s PIPELINE_* settings name, as a
    local run would; it is killed after (the system drops its lock)."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_STORE], cwd=configs.PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def states_of_run(config: configs.PipelineConfig, run_id: str) -> dict[str, list[str]]:
    """Every node's execution states in pipeline run `run_id`, oldest first."""
    store = open_store(connection_config(config))
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    assert context is not None, f"no pipeline run {run_id!r} in {config.metadata_path}"
    found: dict[str, list[str]] = {}
    for run in run_summary.component_runs(store, context, config.pipeline_name):
        found.setdefault(run.node_id, []).append(run.state)
    return found


def cli_json(capsys, config: configs.PipelineConfig, *args: str):
    """`pipeline <args> --format json` against the run's store and serving directory."""
    capsys.readouterr()
    # A MySQL store comes from the environment (PIPELINE_METADATA_MYSQL_*); --metadata-path names SQLite.
    store = [] if config.metadata_mysql_host else ["--metadata-path", config.metadata_path]
    code = cli.main([
        *args, "--format", "json", *store,
        "--serving-model-dir", config.serving_model_dir, "--pipeline-name", config.pipeline_name,
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


# TFMA metrics computed from sums of float predictions: their last bits depend on the order a slice's
# examples are added in (the task's other metrics count examples). Seen to differ by 1.7e-10 of the value
# between two evaluations of the same model and examples; one example more or less moves it by about 1e-4.
# A candidate-minus-baseline change is the difference of two such means, often a thousand times smaller
# than either: its error is theirs, so it is bounded in absolute terms too (1e-8 of a mean near 0.2).
FLOAT_SUM_METRICS = {"mean_prediction"}
FLOAT_SUM_TOLERANCE = 1e-8


def float_sum_approx(value: float):
    """A float-sum metric's value as the order of its sums may change it (FLOAT_SUM_TOLERANCE)."""
    return pytest.approx(value, rel=FLOAT_SUM_TOLERANCE, abs=FLOAT_SUM_TOLERANCE)


def node_execution(store, pipeline_name: str, run_id: str, node: str):
    """One node's execution in a pipeline run."""
    in_run = {e.id for e in store.get_executions_by_context(
        store.get_context_by_type_and_name("pipeline_run", run_id).id
    )}
    node_context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node}")
    [execution] = [e for e in store.get_executions_by_context(node_context.id) if e.id in in_run]
    return execution


def execution_artifacts(store, execution) -> tuple[dict, dict]:
    """An execution's input and output artifacts by key, as TFX's executors receive them."""
    from tfx.types import artifact_utils  # TFX's types load TensorFlow: only for the tests that need them.

    inputs, outputs = {}, {}
    for event in store.get_events_by_execution_ids([execution.id]):
        [artifact] = store.get_artifacts_by_id([event.artifact_id])
        [artifact_type] = store.get_artifact_types_by_id([artifact.type_id])
        side = inputs if event.type == metadata_store_pb2.Event.INPUT else outputs
        side.setdefault(event.path.steps[0].key, []).append(artifact_utils.deserialize_artifact(artifact_type, artifact))
    return inputs, outputs


def evaluation_metrics(evaluation_uri: str) -> dict:
    """{(slice, metric, model): value} of a TFMA evaluation."""
    import tensorflow_model_analysis as tfma  # Only for the tests that read an evaluation.

    return {
        (str(metrics.slice_key), item.key.name, item.key.model_name): item.value
        for metrics in tfma.load_metrics(evaluation_uri)
        for item in metrics.metric_keys_and_values
    }
