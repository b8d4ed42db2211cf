"""What a pipeline run did, read back from ML Metadata: the closing summary of every runner.

MLMD, not the runner's memory, is the record: the summary is the same whichever orchestrator ran the
pipeline, and it covers components served from cache.
"""

from __future__ import annotations

import dataclasses

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.configs import PipelineConfig
from pipeline.metadata import artifact_files, events
from pipeline.metadata.store import open_store

# The data gate's node id (pipeline/components/data_gate.py), here so that readers of a run recognise a
# validation run without importing the component (TFX and TFDV).
DATA_GATE_ID = "DataGate"

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "executed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
    metadata_store_pb2.Execution.NEW: "new",
}


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
    # Every threshold the Evaluator judged the candidate by, per slice, with the values compared.
    blessing_checks: list[artifact_files.ThresholdCheck] = dataclasses.field(default_factory=list)

    def component(self, node_id: str) -> ComponentRun:
        for run in self.components:
            if run.node_id == node_id:
                return run
        raise KeyError(f"no component {node_id!r} in run {self.run_id}")


def latest_run_context(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> metadata_store_pb2.Context:
    """The newest `pipeline_run` context that holds executions of `pipeline_name`.

    Rollbacks and promotions are executions of the pipeline outside any run, so the newest execution
    need not be in a run: the newest one that is decides. Newest by id, which grows with each write:
    execution times follow the clock, which can step back.
    """
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        raise LookupError(f"pipeline {pipeline_name!r} has never run against this store")
    run_type = store.get_context_type("pipeline_run")
    executions = store.get_executions_by_context(pipeline_context.id)
    if not executions:
        raise LookupError(f"pipeline {pipeline_name!r} has no recorded run")
    for execution in sorted(executions, key=lambda e: e.id, reverse=True):
        for context in store.get_contexts_by_execution(execution.id):
            if context.type_id == run_type.id:
                return context
    raise LookupError(f"no execution of {pipeline_name!r} belongs to a pipeline run")


def node_ids(
    store: metadata_store.MetadataStore, execution_ids, pipeline_name: str
) -> dict[int, str]:
    """{execution id: the id of the pipeline node it ran} (`Trainer`...), for executions of a node."""
    node_type = store.get_context_type("node")
    found = {}
    for execution_id in execution_ids:
        for context in store.get_contexts_by_execution(execution_id):
            if context.type_id == node_type.id:
                found[execution_id] = context.name.removeprefix(pipeline_name + ".")
    return found


def component_runs(
    store: metadata_store.MetadataStore, run_context: metadata_store_pb2.Context, pipeline_name: str
) -> list[ComponentRun]:
    """One entry per execution in the run, in the order they started (by id, as the clock can step back)."""
    executions = sorted(store.get_executions_by_context(run_context.id), key=lambda e: e.id)
    nodes = node_ids(store, [e.id for e in executions], pipeline_name)
    output_events = events.outputs(store, [e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in output_events})}
    outputs: dict[int, dict[str, list]] = {e.id: {} for e in executions}
    for event in output_events:
        outputs[event.execution_id].setdefault(events.key(event), []).append(artifacts[event.artifact_id])
    return [
        ComponentRun(
            node_id=nodes.get(execution.id, "?"),
            state=_STATE_NAMES.get(execution.last_known_state, "unknown"),
            seconds=(execution.last_update_time_since_epoch - execution.create_time_since_epoch)
            / 1000.0,
            execution=execution,
            outputs=outputs[execution.id],
        )
        for execution in executions
    ]


def threshold_checks(evaluator: ComponentRun) -> list[artifact_files.ThresholdCheck]:
    """Every threshold the Evaluator judged its model by, per slice, with the values (none if it wrote no
    evaluation): its recorded eval config (the `eval_config` exec property) against its evaluation's files."""
    evaluation = evaluator.output("evaluation")
    if evaluation is None:
        return []
    recorded = evaluator.execution.custom_properties.get("eval_config")
    return artifact_files.threshold_checks(recorded.string_value if recorded else "", evaluation.uri)


def summarize_latest_run(
    source: PipelineConfig | metadata_store_pb2.ConnectionConfig, pipeline_name: str
) -> RunSummary:
    """The summary of the newest run of `pipeline_name` in the store."""
    store = open_store(source)
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
        blessing_reason = "; ".join(artifact_files.blessing_failures(evaluation.uri))
    evaluator = next((run for run in components if run.outputs.get("evaluation")), None)
    return RunSummary(
        pipeline_name=pipeline_name,
        run_id=run_context.name,
        components=components,
        rows_per_split=artifact_files.rows_per_split(statistics.uri) if statistics else {},
        anomalies=artifact_files.anomalies_per_split(anomalies.uri) if anomalies else {},
        eval_metrics=artifact_files.overall_metrics(evaluation.uri) if evaluation else {},
        blessed=None if blessed is None else bool(blessed),
        pushed_to=custom_property(pushed, "pushed_destination") if custom_property(pushed, "pushed") else None,
        already_serving=custom_property(pushed, "already_serving_destination"),
        blessing_reason=blessing_reason,
        blessing_checks=threshold_checks(evaluator) if evaluator else [],
    )
