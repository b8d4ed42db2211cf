"""Walk ML Metadata's event graph: which artifacts a given artifact was derived from."""

from __future__ import annotations

import dataclasses

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass(frozen=True)
class Ancestor:
    artifact: metadata_store_pb2.Artifact
    type_name: str
    producer: str  # the pipeline node that first wrote it


def producer_node(store: metadata_store.MetadataStore, artifact_id: int) -> str:
    """The node whose execution first output the artifact (later cached executions reuse it)."""
    outputs = sorted(
        (e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUT_EVENTS),
        key=lambda e: e.execution_id,
    )
    if not outputs:
        return ""
    contexts = store.get_contexts_by_execution(outputs[0].execution_id)
    type_names = {t.id: t.name for t in store.get_context_types_by_id({c.type_id for c in contexts})}
    for context in contexts:
        # The pipeline runners record a `node` context per component; InteractiveContext (the
        # notebook) runs components through TFX's older launcher, which records `component_run`.
        if type_names[context.type_id] == "node":
            return context.name.split(".", 1)[-1]
        if type_names[context.type_id] == "component_run":
            return context.properties["component_id"].string_value
    return ""


def upstream(store: metadata_store.MetadataStore, artifact_id: int) -> list[Ancestor]:
    """Every artifact the given one was derived from, nearest first."""
    seen = {artifact_id}
    order: list[int] = []
    queue = [artifact_id]
    while queue:
        current = queue.pop(0)
        producing = [
            e.execution_id
            for e in store.get_events_by_artifact_ids([current])
            if e.type in _OUTPUT_EVENTS
        ]
        for event in store.get_events_by_execution_ids(producing):
            if event.type in _INPUT_EVENTS and event.artifact_id not in seen:
                seen.add(event.artifact_id)
                order.append(event.artifact_id)
                queue.append(event.artifact_id)
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    artifacts = {a.id: a for a in store.get_artifacts_by_id(order)}
    return [
        Ancestor(artifacts[i], type_names[artifacts[i].type_id], producer_node(store, i))
        for i in order
    ]
