"""Serve an earlier model again, as a new version written aside and renamed into place, recorded in ML
Metadata as a `Rollback` execution."""

from __future__ import annotations

import getpass
import os
import socket

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.governance.runs import ROLLBACK_TYPE, GovernanceError, property_value
from pipeline.governance.serving import blessings_of, model_of_push, pushed_artifacts, resolve_model
from pipeline.guards import serving_dir
from pipeline.guards.serving_dir import serving_versions


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
            a for a in sorted(pushed_artifacts(store), key=lambda a: int(property_value(a.custom_properties, "pushed_version")), reverse=True)
            if model_of_push(store, a).id != live_model_id
            and any(property_value(b.custom_properties, "blessed") for b in blessings_of(store, model_of_push(store, a).id))
        ]
        if not candidates:
            raise GovernanceError("no earlier blessed model to roll back to")
        version = property_value(candidates[0].custom_properties, "pushed_version")
    pushed, model = resolve_model(store, serving_model_dir, version)
    blessings = blessings_of(store, model.id)
    if not any(property_value(b.custom_properties, "blessed") for b in blessings):
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
        destination = property_value(pushed.custom_properties, "pushed_destination")
        if destination and os.path.isdir(destination):
            source = destination
    if source is None:
        source = os.path.join(model.uri, "Format-Serving")
        if not os.path.isdir(source):
            raise GovernanceError(f"model {model.id}'s files are gone: {source}")
    target = serving_dir.publish(source, serving_model_dir)
    new_version = os.path.basename(target)
    record_publication(store, ROLLBACK_TYPE, model, target, live, reason, force)
    return {"model_id": model.id, "version": new_version, "destination": target, "previous": live, "source": source}


def record_publication(store, type_name: str, model, target: str, previous, reason: str, forced: bool) -> int:
    """Record that `model` was published as the serving version `target` by a `type_name` execution (a
    rollback or a promotion): the Model in, a PushedModel out, so that `runs`, `lineage` and a later
    rollback find the version like one the Pusher wrote."""
    new_version = os.path.basename(target)
    execution_type = metadata_store_pb2.ExecutionType(name=type_name)
    for name in ("user", "host", "reason", "from_version", "to_version"):
        execution_type.properties[name] = metadata_store_pb2.STRING
    execution_type.properties["forced"] = metadata_store_pb2.INT
    type_id = store.put_execution_type(execution_type, can_add_fields=True)
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    # Unique per type in MLMD: a version directory is never written twice.
    execution.name = f"{type_name.lower()} to {target}"
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
    pushed.custom_properties[f"{type_name.lower()}_of_model_id"].int_value = model.id

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
