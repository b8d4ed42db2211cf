"""The lineage of a model: everything it came from, its evaluation, blessing, pushes and rollbacks.

One walk of ML Metadata's event graph (`walk_upstream`, over pipeline/metadata/events.py) serves the `pipeline lineage` command, the
report's lineage picture and the notebook's lineage query (`upstream`).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

from ml_metadata import errors, metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.governance.runs import (
    ROLLBACK_TYPE,
    list_rollbacks,
    producing_execution,
    property_value,
    timestamp,
)
from pipeline.governance.serving import blessings_of, model_of_push, pushed_artifacts, resolve_model
from pipeline.guards.serving_dir import serving_versions
from pipeline.metadata import artifact_files, events, run_record, run_summary


@dataclasses.dataclass(frozen=True)
class Ancestor:
    artifact: metadata_store_pb2.Artifact
    type_name: str
    producer: str  # the pipeline node that first wrote it


def node_of_execution(store, execution: metadata_store_pb2.Execution) -> str:
    """The pipeline node an execution ran: its `node` context (the runners), its `component_run` context
    (TFX's older launcher, which InteractiveContext uses in the notebook), or `Rollback`."""
    type_name = store.get_execution_types_by_id([execution.type_id])[0].name
    if type_name == ROLLBACK_TYPE:
        return ROLLBACK_TYPE
    for context in store.get_contexts_by_execution(execution.id):
        context_type = store.get_context_types_by_id([context.type_id])[0].name
        if context_type == "node":
            return context.name.split(".", 1)[-1]
        if context_type == "component_run":
            return context.properties["component_id"].string_value
    return type_name.rsplit(".", 1)[-1]


def producer_node(store, artifact_id: int) -> str:
    """The node that first wrote the artifact; empty for an artifact no execution wrote."""
    execution = producing_execution(store, artifact_id)
    return node_of_execution(store, execution) if execution is not None else ""


def walk_upstream(store, artifact_ids: list[int]) -> tuple[list[int], set[int]]:
    """Every artifact the given ones were derived from (nearest first) and the executions between them.

    Each artifact is followed to the execution that first wrote it, and on to that execution's inputs.
    The baseline an Evaluator compared against is not followed: it is another model with its own lineage.
    """
    seen = set(artifact_ids)
    order: list[int] = []
    execution_ids: set[int] = set()
    queue = list(artifact_ids)
    while queue:
        execution = producing_execution(store, queue.pop(0))
        if execution is None or execution.id in execution_ids:
            continue
        execution_ids.add(execution.id)
        for event in events.inputs(store, [execution.id]):
            if events.key(event) != "baseline_model" and event.artifact_id not in seen:
                seen.add(event.artifact_id)
                order.append(event.artifact_id)
                queue.append(event.artifact_id)
    return order, execution_ids


def upstream(store: metadata_store.MetadataStore, artifact_id: int) -> list[Ancestor]:
    """Every artifact the given one was derived from, nearest first, with the node that wrote it."""
    order, _ = walk_upstream(store, [artifact_id])
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    artifacts = {a.id: a for a in store.get_artifacts_by_id(order)}
    return [Ancestor(artifacts[i], type_names[artifacts[i].type_id], producer_node(store, i)) for i in order]


@dataclasses.dataclass
class Graph:
    """Artifacts and executions of a lineage, and the events between them."""

    artifacts: dict[int, dict]
    executions: dict[int, dict]
    edges: list[tuple[str, str]]  # ("a12", "e7") input; ("e7", "a13") output


def lineage_graph(store, artifact_ids: list[int], downstream_of_model: int | None) -> Graph:
    """Every execution upstream of the given artifacts, plus the evaluations of the model."""
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    exec_type_names = {t.id: t.name for t in store.get_execution_types()}
    ancestors, execution_ids = walk_upstream(store, artifact_ids)
    seen = set(artifact_ids) | set(ancestors)
    if downstream_of_model is not None:
        for event in events.readers(store, [downstream_of_model]):
            if events.key(event) == "model":
                execution = store.get_executions_by_id([event.execution_id])[0]
                if exec_type_names[execution.type_id].endswith("Evaluator"):
                    execution_ids.add(execution.id)
    # Statistics and validation of the raw examples are not ancestors of the model, but they are
    # part of its story: the first execution of each of those nodes that read them.
    raw_examples = [
        i for i in seen
        if type_names[store.get_artifacts_by_id([i])[0].type_id] == "Examples"
        and producer_node(store, i) not in ("Transform", "")
    ]
    frontier = raw_examples
    for _ in range(2):  # examples -> StatisticsGen -> statistics -> ExampleValidator, DataGate
        next_frontier = []
        for artifact_id in frontier:
            consumers: dict[str, int] = {}
            for event in events.readers(store, [artifact_id]):
                execution = store.get_executions_by_id([event.execution_id])[0]
                node = node_of_execution(store, execution)
                if node in ("StatisticsGen", "SchemaGen", "ExampleValidator", run_summary.DATA_GATE_ID):
                    consumers[node] = min(consumers.get(node, execution.id), execution.id)
            for execution_id in consumers.values():
                execution_ids.add(execution_id)
                next_frontier.extend(e.artifact_id for e in events.outputs(store, [execution_id]))
        frontier = next_frontier
    graph_events = events.of_executions(store, execution_ids)
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in graph_events} | seen)}
    executions = {e.id: e for e in store.get_executions_by_id(sorted(execution_ids))}
    # The model the Evaluator compared the candidate with (its `baseline_model` input), marked as such.
    baselines = {e.artifact_id for e in graph_events if e.type in events.INPUTS and events.key(e) == "baseline_model"}
    edges = []
    for event in graph_events:
        if event.type in events.INPUTS:
            edges.append((f"a{event.artifact_id}", f"e{event.execution_id}"))
        else:
            edges.append((f"e{event.execution_id}", f"a{event.artifact_id}"))
    return Graph(
        artifacts={
            i: {
                "id": i,
                "type": type_names[a.type_id],
                "uri": a.uri,
                "created": timestamp(a.create_time_since_epoch),
                "properties": {
                    k: property_value(a.custom_properties, k)
                    for k in ("span", "input_fingerprint", "blessed", "pushed_version", "pushed_destination")
                    if k in a.custom_properties
                } | {k: property_value(a.properties, k) for k in ("span",) if k in a.properties},
                "producer": producer_node(store, a.id),
                "baseline": i in baselines,
            }
            for i, a in sorted(artifacts.items())
        },
        executions={
            i: {
                "id": i,
                "type": exec_type_names[e.type_id],
                "node": node_of_execution(store, e),
                "state": metadata_store_pb2.Execution.State.Name(e.last_known_state),
                "started": timestamp(e.create_time_since_epoch),
            }
            for i, e in sorted(executions.items())
        },
        edges=sorted(set(edges)),
    )


def run_of_execution(store, execution_id: int) -> metadata_store_pb2.Context | None:
    """The pipeline run an execution belongs to; None when it belongs to none, as in a notebook's store
    (InteractiveContext records no `pipeline_run` contexts, so the type itself is missing)."""
    try:
        run_type = store.get_context_type("pipeline_run")
        contexts = store.get_contexts_by_execution(execution_id)
    except errors.NotFoundError:  # MLMD's answer for a missing type, and for an execution in no context.
        return None
    for context in contexts:
        if context.type_id == run_type.id:
            return context
    return None


def model_lineage(store, serving_model_dir: str, ref: str) -> dict:
    """The whole story of a model: inputs, code, who ran it, evaluation, blessing, pushes, rollbacks."""
    pushed, model = resolve_model(store, serving_model_dir, ref)
    targets = [pushed.id] if pushed is not None else [model.id]
    graph = lineage_graph(store, targets, model.id)
    trainer = producing_execution(store, model.id)
    run_context = run_of_execution(store, trainer.id) if trainer else None
    record = run_record.read_record(run_context) if run_context else {}
    blessings = blessings_of(store, model.id)
    evaluation = None
    for blessing in blessings:
        execution = producing_execution(store, blessing.id)
        for event in events.outputs(store, [execution.id]):
            if events.key(event) == "evaluation":
                evaluation = store.get_artifacts_by_id([event.artifact_id])[0]
    metrics = artifact_files.overall_metrics(evaluation.uri) if evaluation else {}
    pushes = [
        {
            "artifact_id": a.id,
            "version": property_value(a.custom_properties, "pushed_version"),
            "destination": property_value(a.custom_properties, "pushed_destination"),
            "by": producer_node(store, a.id),
            "at": timestamp(a.create_time_since_epoch),
        }
        for a in pushed_artifacts(store)
        if model_of_push(store, a).id == model.id
    ]
    rollbacks = [
        {
            "execution_id": r.execution.id,
            "user": r.prop("user"),
            "host": r.prop("host"),
            "reason": r.prop("reason"),
            "forced": bool(r.prop("forced")),
            "version": r.prop("to_version"),
            "at": timestamp(r.execution.create_time_since_epoch),
        }
        for r in list_rollbacks(store)
        if r.model_id == model.id
    ]
    examples = [
        a for a in graph.artifacts.values() if a["type"] == "Examples" and a["producer"] != "Transform"
    ]
    live = serving_versions(serving_model_dir)
    return {
        "query": ref,
        "serving_version": property_value(pushed.custom_properties, "pushed_version") if pushed is not None else None,
        "live": bool(pushed is not None and live and property_value(pushed.custom_properties, "pushed_version") == live[-1]),
        "model": {"id": model.id, "uri": model.uri, "created": timestamp(model.create_time_since_epoch)},
        "run": run_context.name if run_context else None,
        "record": record,
        "examples": examples,
        "blessed": any(property_value(b.custom_properties, "blessed") for b in blessings),
        "blessings": [{"id": b.id, "blessed": bool(property_value(b.custom_properties, "blessed"))} for b in blessings],
        "metrics": metrics,
        "pushes": pushes,
        "rollbacks": rollbacks,
        "graph": dataclasses.asdict(graph),
    }


def lineage_dot(story: dict) -> str:
    """The lineage graph in Graphviz's DOT language: artifacts as boxes, executions as ellipses."""
    graph = story["graph"]

    def quote(text: str) -> str:
        return '"' + text.replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for artifact in graph["artifacts"].values():
        label = f"{artifact['type']} #{artifact['id']}"
        span = artifact["properties"].get("span")
        if span is not None and artifact["type"] == "Examples":
            label += f"\nspan {span}"
        version = artifact["properties"].get("pushed_version")
        if version:
            label += f"\nversion {version}"
        fill = "#e8f0fe"
        if artifact.get("baseline"):
            label, fill = label + "\nthe baseline", "#fde9cf"
        lines.append(f"  a{artifact['id']} [shape=box, style=filled, fillcolor=\"{fill}\", label={quote(label)}];")
    for execution in graph["executions"].values():
        label = f"{execution['node']}\n#{execution['id']} {execution['state'].lower()}"
        color = "#fde8e8" if execution["node"] == ROLLBACK_TYPE else "#eef7e8"
        lines.append(f"  e{execution['id']} [shape=ellipse, style=filled, fillcolor=\"{color}\", label={quote(label)}];")
    for source, target in graph["edges"]:
        lines.append(f"  {source} -> {target};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_dot(dot_text: str, output: str, fmt: str) -> bool:
    """Render with Graphviz when it is installed; False when it is not."""
    dot = shutil.which("dot")
    if dot is None:
        return False
    subprocess.run([dot, f"-T{fmt}", "-o", output], input=dot_text, text=True, check=True)
    return True
