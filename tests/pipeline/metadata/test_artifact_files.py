"""The rule that decides whether a recorded output can still be used, on folders laid out as TFX writes
them (tests/pipeline/guards/test_recovery.py checks it on a real run's outputs)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

from pipeline.metadata import artifact_files


def artifact(uri: Path, splits: str | None = None, **custom: str | int) -> metadata_store_pb2.Artifact:
    recorded = metadata_store_pb2.Artifact(uri=str(uri))
    if splits is not None:
        recorded.properties["split_names"].string_value = splits
    for name, value in custom.items():
        if isinstance(value, int):
            recorded.custom_properties[name].int_value = value
        else:
            recorded.custom_properties[name].string_value = value
    return recorded


def write(path: Path, data: bytes = b"payload") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_examples_need_a_non_empty_file_in_every_recorded_split(tmp_path):
    examples = artifact(tmp_path, '["train", "eval"]')
    write(tmp_path / "Split-train" / "data_parquet-00000-of-00001.parquet")
    shard = write(tmp_path / "Split-eval" / "data_parquet-00000-of-00001.parquet")
    assert artifact_files.unusable(examples, "Examples") is None
    shard.write_bytes(b"")
    assert artifact_files.unusable(examples, "Examples") == (
        "Split-eval/data_parquet-00000-of-00001.parquet is empty"
    )
    shard.unlink()
    assert artifact_files.unusable(examples, "Examples") == "Split-eval/* is missing"
    assert artifact_files.unusable(artifact(tmp_path / "gone"), "Examples") == "its folder is gone"


def test_a_model_without_its_saved_model_is_unusable(tmp_path):
    model = artifact(tmp_path)
    write(tmp_path / "Format-Serving" / "variables" / "variables.index")
    assert artifact_files.unusable(model, "Model") == "Format-Serving/saved_model.pb is missing"
    write(tmp_path / "Format-Serving" / "saved_model.pb")
    assert artifact_files.unusable(model, "Model") is None


def test_empty_by_design_outputs_are_usable(tmp_path):
    # The Evaluator's verdict is an empty file; a model the Pusher did not push leaves an empty folder.
    write(tmp_path / "blessing" / "NOT_BLESSED", b"")
    assert artifact_files.unusable(artifact(tmp_path / "blessing"), "ModelBlessing") is None
    (tmp_path / "not_pushed").mkdir()
    assert artifact_files.unusable(artifact(tmp_path / "not_pushed", pushed=0), "PushedModel") is None
    assert artifact_files.unusable(artifact(tmp_path / "not_pushed", pushed=1), "PushedModel") == (
        "saved_model.pb is missing"
    )
    (tmp_path / "blessing" / "NOT_BLESSED").unlink()
    assert artifact_files.unusable(artifact(tmp_path / "blessing"), "ModelBlessing") == (
        "BLESSED or NOT_BLESSED is missing"
    )


def test_a_schema_that_no_longer_has_its_recorded_hash_is_unusable(tmp_path):
    text = b'feature { name: "fare" type: FLOAT }\n'
    schema_file = write(tmp_path / "schema.pbtxt", text)
    schema = artifact(tmp_path, schema_sha256=hashlib.sha256(text).hexdigest())
    assert artifact_files.unusable(schema, "Schema") is None
    schema_file.write_bytes(text.replace(b"FLOAT", b"INT"))
    assert artifact_files.unusable(schema, "Schema") == (
        f"schema.pbtxt changed since it was recorded (sha256 {hashlib.sha256(text).hexdigest()[:12]} then, "
        f"{hashlib.sha256(schema_file.read_bytes()).hexdigest()[:12]} now)"
    )


def test_a_type_without_a_known_payload_needs_only_its_folder(tmp_path):
    (tmp_path / "model_run").mkdir()
    assert artifact_files.unusable(artifact(tmp_path / "model_run"), "ModelRun") is None
