"""ML Metadata's event graph, read one way by every reader (the run summary and record, pushes, recovery,
runs, lineage, the report): which events are inputs and outputs, and the steps between artifacts and the
executions that wrote or read them.

An artifact's producer is the first execution that output it: a cached execution outputs the same
artifact again later, and is not where it came from.
"""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_Event = metadata_store_pb2.Event
INPUTS = (_Event.INPUT, _Event.DECLARED_INPUT)
OUTPUTS = (_Event.OUTPUT, _Event.DECLARED_OUTPUT)
# Outputs as an execution declares them before it publishes (what a crash leaves behind).
OUTPUTS_AND_PENDING = OUTPUTS + (_Event.PENDING_OUTPUT,)


def key(event: metadata_store_pb2.Event) -> str:
    """The input or output name the event's artifact was under (`model`, `examples`...), or ""."""
    return event.path.steps[0].key if event.path.steps else ""


def of_executions(
    store: metadata_store.MetadataStore, execution_ids, types=INPUTS + OUTPUTS
) -> list[metadata_store_pb2.Event]:
    """The events of the executions, of the given types."""
    ids = sorted(set(execution_ids))
    return [e for e in store.get_events_by_execution_ids(ids) if e.type in types] if ids else []


def of_artifacts(
    store: metadata_store.MetadataStore, artifact_ids, types=INPUTS + OUTPUTS
) -> list[metadata_store_pb2.Event]:
    """The events of the artifacts, of the given types."""
    ids = sorted(set(artifact_ids))
    return [e for e in store.get_events_by_artifact_ids(ids) if e.type in types] if ids else []


def producers(store: metadata_store.MetadataStore, artifact_ids) -> dict[int, int]:
    """{artifact id: id of the first execution that output it}, for the artifacts some execution output."""
    found: dict[int, int] = {}
    for event in sorted(of_artifacts(store, artifact_ids, OUTPUTS), key=lambda e: e.execution_id):
        found.setdefault(event.artifact_id, event.execution_id)
    return found


def producer(store: metadata_store.MetadataStore, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that first output the artifact, or None."""
    execution_id = producers(store, [artifact_id]).get(artifact_id)
    return store.get_executions_by_id([execution_id])[0] if execution_id is not None else None


def inputs(store: metadata_store.MetadataStore, execution_ids) -> list[metadata_store_pb2.Event]:
    return of_executions(store, execution_ids, INPUTS)


def outputs(store: metadata_store.MetadataStore, execution_ids, types=OUTPUTS) -> list[metadata_store_pb2.Event]:
    return of_executions(store, execution_ids, types)


def readers(store: metadata_store.MetadataStore, artifact_ids) -> list[metadata_store_pb2.Event]:
    """The input events of the artifacts: where each was read."""
    return of_artifacts(store, artifact_ids, INPUTS)
