"""Questions a team asks of ML Metadata: which runs happened, where the serving model came from, and
how to put an earlier one back. The `taxi-pipeline` command (pipeline/cli.py) prints these answers.

Everything is read from the store and the serving directory, never from a runner's memory, so the
answers are the same whichever orchestrator wrote the store.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import os
import socket

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import run_record, run_summary, serving_dir
from pipeline.serving_dir import serving_versions

ROLLBACK_TYPE = "Rollback"
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


class GovernanceError(Exception):
    """A question the store cannot answer as asked; the message says why."""


def open_existing_store(metadata_path: str) -> metadata_store.MetadataStore:
    """A SQLite store that must exist already: a read never creates an empty one by accident."""
    if not os.path.isfile(metadata_path):
        raise GovernanceError(f"no ML Metadata store at {metadata_path} (has the pipeline run?)")
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return run_summary.open_store(connection)


def open_config_store(config) -> metadata_store.MetadataStore:
    """The store a PipelineConfig names: MySQL when configured, else its SQLite file, which must exist."""
    if config.metadata_mysql_host:
        from pipeline import mysql_metadata

        return run_summary.open_store(mysql_metadata.connection_config(config))
    return open_existing_store(config.metadata_path)


def _time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _value(properties, name):
    if name not in properties:
        return None
    field = properties[name].WhichOneof("value")
    return getattr(properties[name], field) if field else None


# ----------------------------------------------------------------------------------------------- runs


@dataclasses.dataclass
class RunInfo:
    name: str
    context_id: int
    started_ms: int
    seconds: float
    status: str
    components: list[run_summary.ComponentRun]
    record: dict
    blessed: bool | None
    pushed_version: str | None

    def as_dict(self) -> dict:
        return {
            "run": self.name,
            "context_id": self.context_id,
            "started": _time(self.started_ms),
            "seconds": round(self.seconds, 1),
            "status": self.status,
            "blessed": self.blessed,
            "pushed_version": self.pushed_version,
            "record": self.record,
            "components": [
                {"node": c.node_id, "state": c.state, "seconds": round(c.seconds, 1)} for c in self.components
            ],
        }


@dataclasses.dataclass
class RollbackInfo:
    execution: metadata_store_pb2.Execution
    model_id: int | None
    pushed: metadata_store_pb2.Artifact | None

    def prop(self, name):
        found = _value(self.execution.properties, name)
        return found if found is not None else _value(self.execution.custom_properties, name)


def pipeline_context(store: metadata_store.MetadataStore, pipeline_name: str) -> metadata_store_pb2.Context:
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        names = [c.name for c in store.get_contexts_by_type("pipeline")]
        hint = f"; pipelines in this store: {', '.join(names)}" if names else "; the store holds no runs"
        raise GovernanceError(f"pipeline {pipeline_name!r} has never run against this store{hint}")
    return context


def list_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[RunInfo]:
    """Every run of the pipeline, newest first."""
    pipeline_context(store, pipeline_name)
    runs = []
    for context in store.get_contexts_by_type("pipeline_run"):
        components = run_summary.component_runs(store, context, pipeline_name)
        components = [c for c in components if c.node_id != "?"]
        if not components:
            continue
        start = min(c.execution.create_time_since_epoch for c in components)
        end = max(c.execution.last_update_time_since_epoch for c in components)
        # A run resumed after a failure (Luigi, Airflow task retries) holds the failed execution too:
        # each node's newest execution says how the run stands.
        newest = {c.node_id: c for c in components}
        states = {c.state for c in newest.values()}
        status = next((s for s in ("failed", "running", "canceled") if s in states), "complete")
        blessing = next((c.output("blessing") for c in components if c.output("blessing")), None)
        blessed = _value(blessing.custom_properties, "blessed") if blessing else None
        pushed = next((c.output("pushed_model") for c in components if c.output("pushed_model")), None)
        pushed_version = (
            _value(pushed.custom_properties, "pushed_version")
            if pushed is not None and _value(pushed.custom_properties, "pushed")
            else None
        )
        runs.append(
            RunInfo(
                name=context.name,
                context_id=context.id,
                started_ms=start,
                seconds=(end - start) / 1000.0,
                status=status,
                components=components,
                record=run_record.read_record(context),
                blessed=None if blessed is None else bool(blessed),
                pushed_version=pushed_version,
            )
        )
    return sorted(runs, key=lambda r: r.started_ms, reverse=True)


def list_rollbacks(store: metadata_store.MetadataStore) -> list[RollbackInfo]:
    """Every rollback recorded in the store, newest first."""
    if not _has_execution_type(store, ROLLBACK_TYPE):
        return []
    executions = store.get_executions_by_type(ROLLBACK_TYPE)
    found = []
    for execution in executions:
        events = store.get_events_by_execution_ids([execution.id])
        model_id = next((e.artifact_id for e in events if e.type in _INPUT_EVENTS), None)
        pushed_id = next((e.artifact_id for e in events if e.type in _OUTPUT_EVENTS), None)
        pushed = store.get_artifacts_by_id([pushed_id])[0] if pushed_id else None
        found.append(RollbackInfo(execution, model_id, pushed))
    return sorted(found, key=lambda r: r.execution.create_time_since_epoch, reverse=True)


def _has_execution_type(store, name: str) -> bool:
    return any(t.name == name for t in store.get_execution_types())


def find_run(store: metadata_store.MetadataStore, pipeline_name: str, run: str) -> RunInfo:
    """A run by its name, its context id, or `latest`."""
    runs = list_runs(store, pipeline_name)
    if not runs:
        raise GovernanceError(f"pipeline {pipeline_name!r} has no recorded run")
    if run == "latest":
        return runs[0]
    for info in runs:
        if run in (info.name, str(info.context_id)):
            return info
    known = ", ".join(r.name for r in runs[:5])
    raise GovernanceError(f"no run {run!r} of {pipeline_name!r}; recent runs: {known}")


# -------------------------------------------------------------------------------------------- serving


def pushed_artifacts(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Artifact]:
    return [
        a for a in store.get_artifacts_by_type("PushedModel") if _value(a.custom_properties, "pushed")
    ]


def producing_execution(store, artifact_id: int) -> metadata_store_pb2.Execution | None:
    events = sorted(
        (e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUT_EVENTS),
        key=lambda e: e.execution_id,
    )
    return store.get_executions_by_id([events[0].execution_id])[0] if events else None


def input_artifacts(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in _INPUT_EVENTS]
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in events})}
    found: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        found.setdefault(key, []).append(artifacts[event.artifact_id])
    return found


def model_of_push(store, pushed: metadata_store_pb2.Artifact) -> metadata_store_pb2.Artifact:
    execution = producing_execution(store, pushed.id)
    if execution is None:
        raise GovernanceError(f"no execution recorded as producing pushed model {pushed.id}")
    models = input_artifacts(store, execution.id).get("model")
    if not models:
        raise GovernanceError(f"the push {pushed.id} names no model among its inputs")
    return models[0]


def resolve_model(
    store: metadata_store.MetadataStore, serving_model_dir: str, ref: str
) -> tuple[metadata_store_pb2.Artifact | None, metadata_store_pb2.Artifact]:
    """(push, model) for `serving`, a serving version, or an artifact id (a Model or PushedModel)."""
    pushes = pushed_artifacts(store)
    if ref == "serving":
        versions = serving_versions(serving_model_dir)
        if not versions:
            raise GovernanceError(f"nothing is serving: no version directory under {serving_model_dir}")
        ref = versions[-1]
        by_version = [a for a in pushes if _value(a.custom_properties, "pushed_version") == ref]
        if not by_version:
            raise GovernanceError(
                f"version {ref} under {serving_model_dir} was not pushed by this store's pipeline"
            )
    by_version = [a for a in pushes if _value(a.custom_properties, "pushed_version") == ref]
    if by_version:
        pushed = max(by_version, key=lambda a: a.id)
        return pushed, model_of_push(store, pushed)
    if not ref.isdigit():
        raise GovernanceError(f"{ref!r} is neither `serving`, a serving version, nor an artifact id")
    found = store.get_artifacts_by_id([int(ref)])
    if not found:
        raise GovernanceError(f"no artifact or serving version {ref} in this store")
    artifact = found[0]
    type_name = store.get_artifact_types_by_id([artifact.type_id])[0].name
    if type_name == "PushedModel":
        return artifact, model_of_push(store, artifact)
    if type_name == "Model":
        return None, artifact
    raise GovernanceError(f"artifact {ref} is a {type_name}, not a Model or PushedModel")


def blessings_of(store, model_id: int) -> list[metadata_store_pb2.Artifact]:
    """ModelBlessing artifacts that judged the model as the candidate."""
    return [
        a for a in store.get_artifacts_by_type("ModelBlessing")
        if _value(a.custom_properties, "current_model_id") == model_id
    ]


# -------------------------------------------------------------------------------------------- lineage


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
    execution_ids: set[int] = set()
    seen = set(artifact_ids)
    queue = list(artifact_ids)
    while queue:
        current = queue.pop(0)
        execution = producing_execution(store, current)
        if execution is None or execution.id in execution_ids:
            continue
        execution_ids.add(execution.id)
        for event in store.get_events_by_execution_ids([execution.id]):
            key = event.path.steps[0].key if event.path.steps else ""
            # The baseline an Evaluator compared against is another model with its own lineage.
            if event.type in _INPUT_EVENTS and key != "baseline_model" and event.artifact_id not in seen:
                seen.add(event.artifact_id)
                queue.append(event.artifact_id)
    if downstream_of_model is not None:
        for event in store.get_events_by_artifact_ids([downstream_of_model]):
            key = event.path.steps[0].key if event.path.steps else ""
            if event.type in _INPUT_EVENTS and key == "model":
                execution = store.get_executions_by_id([event.execution_id])[0]
                if exec_type_names[execution.type_id].endswith("Evaluator"):
                    execution_ids.add(execution.id)
    # Statistics and validation of the raw examples are not ancestors of the model, but they are
    # part of its story: the first execution of each of those nodes that read them.
    raw_examples = [
        i for i in seen
        if type_names[store.get_artifacts_by_id([i])[0].type_id] == "Examples"
        and _producer_name(store, i) not in ("Transform", "")
    ]
    frontier = raw_examples
    for _ in range(2):  # examples -> StatisticsGen -> statistics -> ExampleValidator
        next_frontier = []
        for artifact_id in frontier:
            consumers: dict[str, int] = {}
            for event in store.get_events_by_artifact_ids([artifact_id]):
                if event.type not in _INPUT_EVENTS:
                    continue
                execution = store.get_executions_by_id([event.execution_id])[0]
                node = _execution_node(store, execution, exec_type_names)
                if node in ("StatisticsGen", "SchemaGen", "ExampleValidator"):
                    consumers[node] = min(consumers.get(node, execution.id), execution.id)
            for execution_id in consumers.values():
                execution_ids.add(execution_id)
                next_frontier.extend(
                    e.artifact_id for e in store.get_events_by_execution_ids([execution_id])
                    if e.type in _OUTPUT_EVENTS
                )
        frontier = next_frontier
    events = store.get_events_by_execution_ids(sorted(execution_ids))
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in events} | seen)}
    executions = {e.id: e for e in store.get_executions_by_id(sorted(execution_ids))}
    edges = []
    for event in events:
        if event.type in _INPUT_EVENTS:
            edges.append((f"a{event.artifact_id}", f"e{event.execution_id}"))
        elif event.type in _OUTPUT_EVENTS:
            edges.append((f"e{event.execution_id}", f"a{event.artifact_id}"))
    return Graph(
        artifacts={
            i: {
                "id": i,
                "type": type_names[a.type_id],
                "uri": a.uri,
                "created": _time(a.create_time_since_epoch),
                "properties": {
                    k: _value(a.custom_properties, k)
                    for k in ("span", "input_fingerprint", "blessed", "pushed_version", "pushed_destination")
                    if k in a.custom_properties
                } | {k: _value(a.properties, k) for k in ("span",) if k in a.properties},
                "producer": _producer_name(store, a.id),
            }
            for i, a in sorted(artifacts.items())
        },
        executions={
            i: {
                "id": i,
                "type": exec_type_names[e.type_id],
                "node": _execution_node(store, e, exec_type_names),
                "state": metadata_store_pb2.Execution.State.Name(e.last_known_state),
                "started": _time(e.create_time_since_epoch),
            }
            for i, e in sorted(executions.items())
        },
        edges=sorted(set(edges)),
    )


def _execution_node(store, execution, exec_type_names) -> str:
    if exec_type_names[execution.type_id] == ROLLBACK_TYPE:
        return ROLLBACK_TYPE
    for context in store.get_contexts_by_execution(execution.id):
        type_name = store.get_context_types_by_id([context.type_id])[0].name
        if type_name == "node":
            return context.name.split(".", 1)[-1]
        if type_name == "component_run":
            return context.properties["component_id"].string_value
    return exec_type_names[execution.type_id].rsplit(".", 1)[-1]


def _producer_name(store, artifact_id: int) -> str:
    execution = producing_execution(store, artifact_id)
    if execution is None:
        return ""
    return _execution_node(store, execution, {t.id: t.name for t in store.get_execution_types()})


def run_of_execution(store, execution_id: int) -> metadata_store_pb2.Context | None:
    run_type = store.get_context_type("pipeline_run")
    for context in store.get_contexts_by_execution(execution_id):
        if context.type_id == run_type.id:
            return context
    return None


def lineage(store, serving_model_dir: str, ref: str) -> dict:
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
        for event in store.get_events_by_execution_ids([execution.id]):
            if event.type in _OUTPUT_EVENTS and event.path.steps and event.path.steps[0].key == "evaluation":
                evaluation = store.get_artifacts_by_id([event.artifact_id])[0]
    metrics = run_summary.overall_metrics(evaluation.uri) if evaluation else {}
    pushes = [
        {
            "artifact_id": a.id,
            "version": _value(a.custom_properties, "pushed_version"),
            "destination": _value(a.custom_properties, "pushed_destination"),
            "by": _producer_name(store, a.id),
            "at": _time(a.create_time_since_epoch),
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
            "at": _time(r.execution.create_time_since_epoch),
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
        "serving_version": _value(pushed.custom_properties, "pushed_version") if pushed is not None else None,
        "live": bool(pushed is not None and live and _value(pushed.custom_properties, "pushed_version") == live[-1]),
        "model": {"id": model.id, "uri": model.uri, "created": _time(model.create_time_since_epoch)},
        "run": run_context.name if run_context else None,
        "record": record,
        "examples": examples,
        "blessed": any(_value(b.custom_properties, "blessed") for b in blessings),
        "blessings": [{"id": b.id, "blessed": bool(_value(b.custom_properties, "blessed"))} for b in blessings],
        "metrics": metrics,
        "pushes": pushes,
        "rollbacks": rollbacks,
        "graph": dataclasses.asdict(graph),
    }


# ------------------------------------------------------------------------------------------- rollback


def rollback(
    store: metadata_store.MetadataStore,
    serving_model_dir: str,
    version: str | None,
    force: bool = False,
    reason: str = "",
) -> dict:
    """Serve an earlier model again: copy it into a new, higher version directory and record it.

    The copy appears atomically (serving_dir.publish), so a model server never sees a half-written version.
    """
    versions = serving_versions(serving_model_dir)
    live = versions[-1] if versions else None
    live_model_id = resolve_model(store, serving_model_dir, "serving")[1].id if live else None
    if version is None:
        candidates = [
            a for a in sorted(pushed_artifacts(store), key=lambda a: int(_value(a.custom_properties, "pushed_version")), reverse=True)
            if model_of_push(store, a).id != live_model_id
            and any(_value(b.custom_properties, "blessed") for b in blessings_of(store, model_of_push(store, a).id))
        ]
        if not candidates:
            raise GovernanceError("no earlier blessed model to roll back to")
        version = _value(candidates[0].custom_properties, "pushed_version")
    pushed, model = resolve_model(store, serving_model_dir, version)
    blessings = blessings_of(store, model.id)
    if not any(_value(b.custom_properties, "blessed") for b in blessings):
        why = (
            f"model {model.id} was evaluated {len(blessings)} time(s) and never blessed"
            if blessings
            else f"model {model.id} was never evaluated, so never blessed"
        )
        if not force:
            raise GovernanceError(f"refusing to serve it: {why}; pass --force to serve it anyway")
    if model.id == live_model_id and not force:
        raise GovernanceError(f"model {model.id} is already serving (version {live})")
    source = None
    if pushed is not None:
        destination = _value(pushed.custom_properties, "pushed_destination")
        if destination and os.path.isdir(destination):
            source = destination
    if source is None:
        source = os.path.join(model.uri, "Format-Serving")
        if not os.path.isdir(source):
            raise GovernanceError(f"model {model.id}'s files are gone: {source}")
    target = serving_dir.publish(source, serving_model_dir)
    new_version = os.path.basename(target)
    _record_rollback(store, model, target, new_version, live, reason, force)
    return {"model_id": model.id, "version": new_version, "destination": target, "previous": live, "source": source}


def _record_rollback(store, model, target, new_version, previous, reason, forced) -> int:
    execution_type = metadata_store_pb2.ExecutionType(name=ROLLBACK_TYPE)
    for name in ("user", "host", "reason", "from_version", "to_version"):
        execution_type.properties[name] = metadata_store_pb2.STRING
    execution_type.properties["forced"] = metadata_store_pb2.INT
    type_id = store.put_execution_type(execution_type, can_add_fields=True)
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution.name = f"rollback-{new_version}"
    for name, value in (
        ("user", getpass.getuser()), ("host", socket.gethostname()), ("reason", reason),
        ("from_version", previous or ""), ("to_version", new_version),
    ):
        execution.properties[name].string_value = value
    execution.properties["forced"].int_value = int(forced)
    pushed = metadata_store_pb2.Artifact(
        type_id=store.get_artifact_type("PushedModel").id,
        uri=target,
        state=metadata_store_pb2.Artifact.LIVE,
    )
    pushed.custom_properties["pushed"].int_value = 1
    pushed.custom_properties["pushed_destination"].string_value = target
    pushed.custom_properties["pushed_version"].string_value = new_version
    pushed.custom_properties["rollback_of_model_id"].int_value = model.id

    def event(kind):
        e = metadata_store_pb2.Event(type=kind)
        e.path.steps.add().key = "model" if kind == metadata_store_pb2.Event.INPUT else "pushed_model"
        e.path.steps.add().index = 0
        return e

    contexts = [
        c for c in store.get_contexts_by_artifact(model.id)
        if store.get_context_types_by_id([c.type_id])[0].name == "pipeline"
    ]
    execution_id, _, _ = store.put_execution(
        execution,
        [(model, event(metadata_store_pb2.Event.INPUT)), (pushed, event(metadata_store_pb2.Event.OUTPUT))],
        contexts,
        reuse_context_if_already_exist=True,
    )
    return execution_id
