"""Who ran a pipeline run, from which code, data and settings: written into ML Metadata itself.

TFX records artifacts and executions but not the provenance a governance question needs (user, git
commit, module hashes, lock file, input files, configuration). Each runner calls `record_run` once
its run finishes. What the run read (its input files, span and version, and the curated schema's hash)
comes from the run's own artifacts, not from the working tree, which may have changed since. The record
becomes custom properties of that run's `pipeline_run` context, so every tool that reads the store (the
`pipeline` CLI, the report) finds it beside the run, whichever orchestrator wrote it.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs, inputs
from pipeline.metadata import events, run_summary
from pipeline.metadata import artifact_files
from pipeline.metadata.store import open_store

# Every recorded property starts with this prefix, apart from TFX's own.
PREFIX = "record_"
# Record fields that hold structured values, kept in ML Metadata as JSON text (its properties are strings
# and numbers) and given back by read_record as the values themselves.
JSON_FIELDS = ("config", "task_files", "input_files", "spans")
SCHEMA_SHA256_PROPERTY = artifact_files.SCHEMA_SHA256_PROPERTY
_HASH_BLOCK_BYTES = 16 * 2**20


def file_sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256, read a block at a time: an input file can be larger than the machine's memory
    (100M rows are 12 GB of CSV)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


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


def input_files(run_input: inputs.RunInput) -> dict[str, dict]:
    """Each file of a run's input: its content hash and size, by its path under the data root."""
    return {
        run_input.relative(path): {"sha256": file_sha256(path), "bytes": os.path.getsize(path)}
        for path in run_input.files
    }


def task_files(package: str) -> dict[str, str]:
    """The SHA-256 of each Python file of the task's package (its task definition, features, modules)."""
    spec = importlib.util.find_spec(package)
    folder = Path(next(iter(spec.submodule_search_locations)))
    return {path.name: file_sha256(path) for path in sorted(folder.glob("*.py"))}


def collect(config: configs.PipelineConfig, runner: str) -> dict[str, str | int]:
    """The provenance of a run of `config` started now, as flat MLMD property values."""
    commit, dirty = git_state()
    lock_file = configs.PROJECT_ROOT / "requirements.lock"
    modules = {
        "transform_module": config.transform_module_file,
        "trainer_module": config.trainer_module_file,
    }
    record: dict[str, str | int] = {
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "runner": runner,
        "git_commit": commit,
        "git_dirty": -1 if dirty is None else int(dirty),
        "lock_sha256": file_sha256(lock_file) if lock_file.is_file() else "",
        "config": json.dumps(dataclasses.asdict(config), sort_keys=True),
        "task": config.task,
        "task_files": json.dumps(task_files(config.task), sort_keys=True),
    }
    for name, path in modules.items():
        record[f"{name}_sha256"] = file_sha256(path)
        record[f"{name}_file"] = str(path)
    return {PREFIX + key: value for key, value in record.items()}


def _run_outputs(
    store: metadata_store.MetadataStore, run_context: metadata_store_pb2.Context, type_name: str
) -> list[metadata_store_pb2.Artifact]:
    """The artifacts of a type that the run's executions wrote or reused from the cache, oldest first."""
    artifact_type = store.get_artifact_type(type_name)
    execution_ids = [e.id for e in store.get_executions_by_context(run_context.id)]
    artifact_ids = {e.artifact_id for e in events.outputs(store, execution_ids)}
    found = [a for a in store.get_artifacts_by_id(artifact_ids) if a.type_id == artifact_type.id]
    return sorted(found, key=lambda a: a.id)


def spans(store: metadata_store.MetadataStore, run_context: metadata_store_pb2.Context) -> list[int]:
    """The data spans of the Examples that the run's executions wrote or reused from the cache."""
    # Only Examples carry a meaningful span; statistics and anomalies declare one and leave it 0.
    found = {artifact_files.int_property(a, "span") for a in _run_outputs(store, run_context, "Examples")}
    return sorted(span for span in found if span is not None)


def run_inputs(
    store: metadata_store.MetadataStore, run_context: metadata_store_pb2.Context, config: configs.PipelineConfig
) -> dict[str, str | int]:
    """What the run read, from its artifacts: the input files of its Examples' span and version (hashed
    now; empty if they changed since ExampleGen read them) and the hash of the curated schema it imported."""
    record: dict[str, str | int] = {}
    examples = _run_outputs(store, run_context, "Examples")
    if examples:
        span = artifact_files.int_property(examples[-1], "span") or 0
        version = artifact_files.int_property(examples[-1], "version")
        record["input_version"] = -1 if version is None else version
        read = examples[-1].custom_properties.get("input_fingerprint")
        try:
            run_input = inputs.resolve_for(config, span, version)
        except configs.ConfigError:
            run_input = None
        if run_input is not None and (read is None or read.string_value == run_input.fingerprint):
            record["input_files"] = json.dumps(input_files(run_input), sort_keys=True)
        else:
            record["input_files"] = "{}"
            record["input_note"] = "the input files changed or went away after ExampleGen read them"
    for schema in _run_outputs(store, run_context, "Schema"):
        digest = schema.custom_properties.get(SCHEMA_SHA256_PROPERTY)
        if digest is not None:
            record["schema_sha256"] = digest.string_value
    return record


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
    store = open_store(connection)
    if run_id is None:
        context = run_summary.latest_run_context(store, config.pipeline_name)
    else:
        context = store.get_context_by_type_and_name("pipeline_run", run_id)
        if context is None:
            raise LookupError(f"no pipeline run {run_id!r} in the store")
    values = dict(record or collect(config, runner))
    values[PREFIX + "spans"] = json.dumps(spans(store, context))
    values.update({PREFIX + key: value for key, value in run_inputs(store, context, config).items()})
    write_record(store, context, values)
    return context


def write_record(
    store: metadata_store.MetadataStore, context: metadata_store_pb2.Context, values: dict[str, str | int]
) -> None:
    """Put record values (prefixed names, JSON_FIELDS as JSON text) onto a run's context."""
    for key, value in values.items():
        if isinstance(value, int):
            context.custom_properties[key].int_value = value
        else:
            context.custom_properties[key].string_value = str(value)
    store.put_contexts([context])


def read_record(context: metadata_store_pb2.Context) -> dict:
    """The record of a run context, without the prefix, its JSON_FIELDS decoded (so that every reader, and
    the `pipeline` command's JSON, get values, never JSON text); empty for runs made before recording
    existed."""
    record = {}
    for key, value in context.custom_properties.items():
        if key.startswith(PREFIX):
            field = value.WhichOneof("value")
            record[key.removeprefix(PREFIX)] = getattr(value, field) if field else None
    for name in JSON_FIELDS:
        if isinstance(record.get(name), str):
            try:
                record[name] = json.loads(record[name] or "null")
            except ValueError:  # Not written by record_run: left as it was found.
                pass
    return record


def record_failure(
    connection: metadata_store_pb2.ConnectionConfig, run_id: str, error: str, log_file: str | None
) -> bool:
    """Put a failed run's error (as the console gave it) and its log file onto the run's context, where the
    report finds them: TFX marks the failed execution FAILED but keeps no message of an executor's
    exception. False when the run has no context (it failed before its first component started)."""
    store = open_store(connection)
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    if context is None:
        return False
    write_record(store, context, {PREFIX + "error": error, PREFIX + "log_file": log_file or ""})
    return True
