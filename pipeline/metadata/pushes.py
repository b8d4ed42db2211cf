"""Which model each push put into serving, read from the store: the Pusher's and a rollback's pushes both
record the model as their execution's `model` input."""

from __future__ import annotations

from ml_metadata import metadata_store

from pipeline.metadata import events


def model_ids_of_pushes(store: metadata_store.MetadataStore, push_ids: list[int]) -> dict[int, int]:
    """{push artifact id: id of the model it pushed}, for the pushes whose producing execution is recorded.

    The producing execution is the first that output the push (a cached execution reuses it later)."""
    producer = events.producers(store, push_ids)
    model_of_execution: dict[int, int] = {}
    for event in events.inputs(store, producer.values()):
        if events.key(event) == "model":
            model_of_execution.setdefault(event.execution_id, event.artifact_id)
    return {
        push_id: model_of_execution[execution_id]
        for push_id, execution_id in producer.items()
        if execution_id in model_of_execution
    }
