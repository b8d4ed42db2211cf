"""What a pipeline run did, read back from ML Metadata: the closing summary of every runner.

MLMD, not the runner's memory, is the record: the summary is the same whichever orchestrator ran the
pipeline, and it covers components served from cache.
"""

from __future__ import annotations

import dataclasses
import os
import time

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "executed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
    metadata_store_pb2.Execution.NEW: "new",
}
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_TRANSIENT = ("database is locked", "Concurrent", "subset of tables")


@dataclasses.dataclass
class ComponentRun:
    node_id: str
    state: str
    seconds: float
    execution: metadata_store_pb2.Execution
    outputs: dict[str, list[metadata_store_pb2.Artifact]]

    def output(self, key: str) -> metadata_store_pb2.Artifact | None:
        artifacts = self.outputs.get(key)
        return artifacts[0] if artifacts else None


@dataclasses.dataclass
class RunSummary:
    pipeline_name: str
    run_id: str
    components: list[ComponentRun]
    rows_per_split: dict[str, int]
    anomalies: dict[str, list[str]]
    eval_metrics: dict[str, float]
    blessed: bool | None
    pushed_to: str | None
    # Set when the blessed model was byte for byte the serving one, so no new version was written.
    already_serving: str | None = None
    # Why the Evaluator did not bless the candidate: each failed threshold with its values.
    blessing_reason: str | None = None

    def component(self, node_id: str) -> ComponentRun:
        for run in self.components:
            if run.node_id == node_id:
                return run
        raise KeyError(f"no component {node_id!r} in run {self.run_id}")


def int_property(artifact: metadata_store_pb2.Artifact, name: str) -> int | None:
    """An integer property of an artifact, declared or custom (TFX 1.16 writes an Examples artifact's
    span and version as custom properties; reading `Artifact.span` then answers 0 whatever the span)."""
    for properties in (artifact.properties, artifact.custom_properties):
        if name in properties:
            return properties[name].int_value
    return None


def open_store(connection: metadata_store_pb2.ConnectionConfig) -> metadata_store.MetadataStore:
    """A store that must already exist: reading never creates an empty SQLite file by accident."""
    if connection.HasField("sqlite") and not os.path.exists(connection.sqlite.filename_uri):
        raise FileNotFoundError(f"no ML Metadata store at {connection.sqlite.filename_uri}")
    # A SQLite store being created or written by a run can refuse a connection for a moment.
    for attempt in range(5):
        try:
            return metadata_store.MetadataStore(connection)
        except RuntimeError as error:
            if attempt == 4 or not any(t in str(error) for t in _TRANSIENT):
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def latest_run_context(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> metadata_store_pb2.Context:
    """The newest `pipeline_run` context that holds executions of `pipeline_name`."""
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        raise LookupError(f"pipeline {pipeline_name!r} has never run against this store")
    run_type = store.get_context_type("pipeline_run")
    executions = store.get_executions_by_context(pipeline_context.id)
    if not executions:
        raise LookupError(f"pipeline {pipeline_name!r} has no recorded run")
    newest = max(executions, key=lambda e: (e.create_time_since_epoch, e.id))
    for context in store.get_contexts_by_execution(newest.id):
        if context.type_id == run_type.id:
            return context
    raise LookupError(f"the newest execution of {pipeline_name!r} belongs to no pipeline run")


def _node_ids(store: metadata_store.MetadataStore, execution_ids: list[int], pipeline_name: str):
    node_type = store.get_context_type("node")
    node_ids = {}
    for execution_id in execution_ids:
        for context in store.get_contexts_by_execution(execution_id):
            if context.type_id == node_type.id:
                node_ids[execution_id] = context.name.removeprefix(pipeline_name + ".")
    return node_ids


def component_runs(
    store: metadata_store.MetadataStore, run_context: metadata_store_pb2.Context, pipeline_name: str
) -> list[ComponentRun]:
    """One entry per execution in the run, in the order they started."""
    executions = sorted(
        store.get_executions_by_context(run_context.id),
        key=lambda e: (e.create_time_since_epoch, e.id),
    )
    node_ids = _node_ids(store, [e.id for e in executions], pipeline_name)
    events = [
        e
        for e in store.get_events_by_execution_ids([e.id for e in executions])
        if e.type in _OUTPUT_EVENTS
    ]
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in events})}
    outputs: dict[int, dict[str, list]] = {e.id: {} for e in executions}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        outputs[event.execution_id].setdefault(key, []).append(artifacts[event.artifact_id])
    return [
        ComponentRun(
            node_id=node_ids.get(execution.id, "?"),
            state=_STATE_NAMES.get(execution.last_known_state, "unknown"),
            seconds=(execution.last_update_time_since_epoch - execution.create_time_since_epoch)
            / 1000.0,
            execution=execution,
            outputs=outputs[execution.id],
        )
        for execution in executions
    ]


def _per_split(uri: str, file_name: str, message_type):
    """The binary proto `file_name` of each `Split-<name>` folder of an artifact, by split name."""
    if not os.path.isdir(uri):
        return {}
    protos = {}
    for name in sorted(os.listdir(uri)):
        if name.startswith("Split-"):
            proto = message_type()
            with open(os.path.join(uri, name, file_name), "rb") as f:
                proto.ParseFromString(f.read())
            protos[name.removeprefix("Split-")] = proto
    return protos


def load_statistics(statistics_uri: str) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    """StatisticsGen's statistics of each split."""
    return _per_split(statistics_uri, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList)


def load_anomalies(anomalies_uri: str) -> dict[str, anomalies_pb2.Anomalies]:
    """ExampleValidator's anomalies of each split."""
    return _per_split(anomalies_uri, "SchemaDiff.pb", anomalies_pb2.Anomalies)


def rows_per_split(statistics_uri: str) -> dict[str, int]:
    """Rows counted by StatisticsGen in each split."""
    return {
        split: sum(dataset.num_examples for dataset in stats.datasets)
        for split, stats in load_statistics(statistics_uri).items()
    }


def anomalies_per_split(anomalies_uri: str) -> dict[str, list[str]]:
    """ExampleValidator's findings per split, one line per feature."""
    found = {}
    for split, anomalies in load_anomalies(anomalies_uri).items():
        lines = [
            f"{feature}: {info.short_description or info.description}"
            for feature, info in sorted(anomalies.anomaly_info.items())
        ]
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"(dataset): {anomalies.dataset_anomaly_info.description}")
        found[split] = lines
    return found


def overall_metrics(evaluation_uri: str, baseline: bool = False) -> dict[str, float]:
    """The candidate model's (or the blessed baseline's) metrics on the whole eval split."""
    import tensorflow_model_analysis as tfma  # Slow to import; loaded only when a run evaluated.

    metrics = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for key_and_value in slice_metrics.metric_keys_and_values:
            key = key_and_value.key
            # With a baseline, TFMA also records the baseline's metrics and the differences.
            if key.is_diff or (key.model_name == tfma.BASELINE_KEY) != baseline:
                continue
            if not key_and_value.value.HasField("double_value"):
                continue
            metrics[key.name] = key_and_value.value.double_value.value
    return metrics


def blessing_failures(evaluation_uri: str) -> list[str]:
    """Each threshold the candidate missed, from TFMA's validation result: metric, value, threshold, baseline."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    if result.validation_ok:
        return []
    candidate = overall_metrics(evaluation_uri)
    baseline = overall_metrics(evaluation_uri, baseline=True)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        where = ", ".join(
            f"{key.column}={key.bytes_value.decode() if key.HasField('bytes_value') else key.int64_value}"
            for key in per_slice.slice_key.single_slice_keys
        ) or "overall"
        for failure in per_slice.failures:
            name = failure.metric_key.name
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if threshold.HasField("change_threshold"):
                change = threshold.change_threshold
                bound = "no less" if change.direction == tfma.MetricDirection.HIGHER_IS_BETTER else "no more"
                lines.append(
                    f"{name} ({where}) {candidate.get(name, float('nan')):.4f} against the blessed "
                    f"baseline's {baseline.get(name, float('nan')):.4f}: a change of {value:+.4f}, the "
                    f"threshold allows {bound} than {change.absolute.value:+.4f}"
                )
            elif threshold.HasField("value_threshold"):
                bounds = threshold.value_threshold
                limit = (
                    f"below the lower bound {bounds.lower_bound.value:g}"
                    if bounds.HasField("lower_bound") and value < bounds.lower_bound.value
                    else f"above the upper bound {bounds.upper_bound.value:g}"
                )
                lines.append(f"{name} ({where}) {value:.4f} is {limit}")
            else:
                lines.append(f"{name} ({where}): {failure.message or 'failed its threshold'}")
    return lines or ["TFMA's validation failed without a metric failure (see the evaluation artifact)"]


def summarize_latest_run(
    connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str
) -> RunSummary:
    """The summary of the newest run of `pipeline_name` in the store."""
    store = open_store(connection)
    run_context = latest_run_context(store, pipeline_name)
    components = component_runs(store, run_context, pipeline_name)
    by_output = {key: run.output(key) for run in components for key in run.outputs}

    def custom_property(artifact, name):
        if artifact is None or name not in artifact.custom_properties:
            return None
        value = artifact.custom_properties[name]
        return value.int_value if value.HasField("int_value") else value.string_value

    statistics = by_output.get("statistics")
    anomalies = by_output.get("anomalies")
    evaluation = by_output.get("evaluation")
    blessing = by_output.get("blessing")
    pushed = by_output.get("pushed_model")
    blessed = custom_property(blessing, "blessed")
    blessing_reason = None
    if evaluation and blessed == 0:
        blessing_reason = "; ".join(blessing_failures(evaluation.uri))
    return RunSummary(
        pipeline_name=pipeline_name,
        run_id=run_context.name,
        components=components,
        rows_per_split=rows_per_split(statistics.uri) if statistics else {},
        anomalies=anomalies_per_split(anomalies.uri) if anomalies else {},
        eval_metrics=overall_metrics(evaluation.uri) if evaluation else {},
        blessed=None if blessed is None else bool(blessed),
        pushed_to=custom_property(pushed, "pushed_destination") if custom_property(pushed, "pushed") else None,
        already_serving=custom_property(pushed, "already_serving_destination"),
        blessing_reason=blessing_reason,
    )


def format_summary(summary: RunSummary) -> str:
    """The closing block a person reads after a run."""
    lines = [f"Run {summary.run_id} of pipeline {summary.pipeline_name}:"]
    for run in summary.components:
        lines.append(f"  {run.node_id:<32} {run.state:<9} {run.seconds:7.1f}s")
    rows = ", ".join(f"{split} {count:,}" for split, count in summary.rows_per_split.items())
    lines.append(f"Rows read: {rows or 'unknown'}")
    total = sum(len(found) for found in summary.anomalies.values())
    lines.append(f"Anomalies against the curated schema: {total}")
    for split, found in summary.anomalies.items():
        lines.extend(f"  [{split}] {line}" for line in found)
    if summary.eval_metrics:
        shown = ", ".join(
            f"{name} {value:.4f}" if isinstance(value, float) and not value.is_integer() else f"{name} {value:g}"
            for name, value in sorted(summary.eval_metrics.items())
        )
        lines.append(f"Eval metrics (overall): {shown}")
    lines.append(
        "Blessed: " + {True: "yes", False: "no", None: "not evaluated"}[summary.blessed]
    )
    if summary.blessing_reason:
        lines.append(f"Not blessed because: {summary.blessing_reason}")
    if summary.already_serving:
        lines.append(f"Pushed: no, the blessed model is already serving: {summary.already_serving}")
    else:
        lines.append(f"Pushed to: {summary.pushed_to}" if summary.pushed_to else "Pushed: no")
    return "\n".join(lines)
