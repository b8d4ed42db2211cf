"""Which model a serving version, a push or an artifact id stands for, and whether it was blessed."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.governance.runs import GovernanceError, property_value
from pipeline.guards.serving_dir import serving_versions
from pipeline.metadata.pushes import model_ids_of_pushes


def pushed_artifacts(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Artifact]:
    return [
        a for a in store.get_artifacts_by_type("PushedModel") if property_value(a.custom_properties, "pushed")
    ]


def model_of_push(store, pushed: metadata_store_pb2.Artifact) -> metadata_store_pb2.Artifact:
    model_id = model_ids_of_pushes(store, [pushed.id]).get(pushed.id)
    if model_id is None:
        raise GovernanceError(f"no execution recorded as producing pushed model {pushed.id} with a model input")
    return store.get_artifacts_by_id([model_id])[0]


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
        by_version = [a for a in pushes if property_value(a.custom_properties, "pushed_version") == ref]
        if not by_version:
            raise GovernanceError(
                f"version {ref} under {serving_model_dir} was not pushed by this store's pipeline"
            )
    by_version = [a for a in pushes if property_value(a.custom_properties, "pushed_version") == ref]
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
        if property_value(a.custom_properties, "current_model_id") == model_id
    ]
