"""Which model each push put into serving, read from the store: the Pusher's and a rollback's pushes both
record the model as their execution's `model` input."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_INPUTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def model_ids_of_pushes(store: metadata_store.MetadataStore, push_ids: list[int]) -> dict[int, int]:
    """{push artifact id: id of the model it pushed}, for the pushes whose producing execution is recorded.

    The producing execution is the first that output the push (a cached execution reuses it later)."""
    producer: dict[int, int] = {}
    for event in sorted(store.get_events_by_artifact_ids(list(push_ids)), key=lambda e: e.execution_id):
        if event.type in _OUTPUTS:
            producer.setdefault(event.artifact_id, event.execution_id)
    if not producer:
        return {}
    model_of_execution: dict[int, int] = {}
    for event in store.get_events_by_execution_ids(sorted(set(producer.values()))):
        if event.type in _INPUTS and event.path.steps and event.path.steps[0].key == "model":
            model_of_execution.setdefault(event.execution_id, event.artifact_id)
    return {
        push_id: model_of_execution[execution_id]
        for push_id, execution_id in producer.items()
        if execution_id in model_of_execution
    }
