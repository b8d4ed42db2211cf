"""Who ran a pipeline run, from which code, data and settings: written into ML Metadata itself.

TFX records artifacts and executions but not the provenance a governance question needs (user, git
commit, module hashes, lock file, input files, configuration). Each runner calls `record_run` once
its run finishes; the record becomes custom properties of that run's `pipeline_run` context, so every
tool that reads the store (the `taxi-pipeline` CLI, the report) finds it beside the run, whichever
orchestrator wrote it.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from modules import features
from pipeline import configs, inputs, run_summary

# Every recorded property starts with this prefix, apart from TFX's own.
PREFIX = "record_"


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_state(root: Path = configs.PROJECT_ROOT) -> tuple[str, bool | None]:
    """The project's commit and whether the working tree differs from it; ("", None) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "", None
    return commit, bool(status.strip())


def input_files(config: configs.PipelineConfig) -> dict[str, dict]:
    """Each input file the run read: its content hash and size."""
    paths = inputs.input_files(config)
    return {
        os.path.relpath(path, config.data_root): {"sha256": file_sha256(path), "bytes": os.path.getsize(path)}
        for path in paths
        if os.path.isfile(path)
    }


def collect(config: configs.PipelineConfig, runner: str) -> dict[str, str | int]:
    """The provenance of a run of `config` started now, as flat MLMD property values."""
    commit, dirty = git_state()
    lock_file = configs.PROJECT_ROOT / "requirements.lock"
    modules = {
        "transform_module": config.transform_module_file,
        "trainer_module": config.trainer_module_file,
        "features": features.__file__,
    }
    record: dict[str, str | int] = {
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "runner": runner,
        "git_commit": commit,
        "git_dirty": -1 if dirty is None else int(dirty),
        "lock_sha256": file_sha256(lock_file) if lock_file.is_file() else "",
        "input_files": json.dumps(input_files(config), sort_keys=True),
        "config": json.dumps(dataclasses.asdict(config), sort_keys=True),
        "schema_sha256": file_sha256(config.schema_path),
    }
    for name, path in modules.items():
        record[f"{name}_sha256"] = file_sha256(path)
        record[f"{name}_file"] = str(path)
    return {PREFIX + key: value for key, value in record.items()}


def spans(store: metadata_store.MetadataStore, run_context: metadata_store_pb2.Context) -> list[int]:
    """The data spans of the Examples that the run's executions wrote or reused from the cache."""
    execution_ids = [e.id for e in store.get_executions_by_context(run_context.id)]
    artifact_ids = {
        e.artifact_id
        for e in store.get_events_by_execution_ids(execution_ids)
        if e.type == metadata_store_pb2.Event.OUTPUT
    }
    found = set()
    # Only Examples carry a meaningful span; statistics and anomalies declare one and leave it 0.
    examples_type = store.get_artifact_type("Examples")
    for artifact in store.get_artifacts_by_id(artifact_ids):
        if artifact.type_id != examples_type.id:
            continue
        for properties in (artifact.properties, artifact.custom_properties):
            if "span" in properties:
                found.add(properties["span"].int_value)
    return sorted(found)


def record_run(
    connection: metadata_store_pb2.ConnectionConfig,
    config: configs.PipelineConfig,
    runner: str,
    record: dict[str, str | int] | None = None,
    run_id: str | None = None,
) -> metadata_store_pb2.Context:
    """Write the record onto the run's `pipeline_run` context (the newest one unless `run_id` names
    it, as orchestrators that run tasks apart do); returns that context.

    `record` may be collected before the run starts (so edits made while it runs do not leak in).
    """
    store = run_summary.open_store(connection)
    if run_id is None:
        context = run_summary.latest_run_context(store, config.pipeline_name)
    else:
        context = store.get_context_by_type_and_name("pipeline_run", run_id)
        if context is None:
            raise LookupError(f"no pipeline run {run_id!r} in the store")
    values = dict(record or collect(config, runner))
    values[PREFIX + "spans"] = json.dumps(spans(store, context))
    for key, value in values.items():
        if isinstance(value, int):
            context.custom_properties[key].int_value = value
        else:
            context.custom_properties[key].string_value = str(value)
    store.put_contexts([context])
    return context


def read_record(context: metadata_store_pb2.Context) -> dict[str, str | int]:
    """The record of a run context, without the prefix; empty for runs made before recording existed."""
    record = {}
    for key, value in context.custom_properties.items():
        if key.startswith(PREFIX):
            field = value.WhichOneof("value")
            record[key.removeprefix(PREFIX)] = getattr(value, field) if field else None
    return record
