"""What keeps runs safe when processes die: cleanup of killed runs, and retries (one run per store at a
time is pipeline/guards/store_lock.py's).

TFX records an execution as RUNNING when a component starts and COMPLETE when it publishes its outputs.
A process killed in between leaves a RUNNING execution behind forever. Nothing later uses its outputs
(TFX's cache and input resolution take only published artifacts), but the store would claim the run is
still going. A new run, once it holds the store's lock, knows no one else is running: it marks such
executions FAILED, with the reason, and deletes the half-written output folders.

LocalDagRunner has no per-component retries (TFX honours NodeExecutionOptions.max_execution_retries only
in its asynchronous orchestrator), so a failed run is run again: the cache serves every component that
completed, so only the failed component and those after it execute again.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.metadata import events
from pipeline.metadata.store import StoreMissing, open_store

T = TypeVar("T")
ABANDONED_PROPERTY = "abandoned"
_ACTIVE = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


def _output_dirs(pipeline_root: str, node_id: str, execution_id: int) -> list[str]:
    """Where TFX writes an execution's outputs: <pipeline_root>/<node>/<output key>/<execution id>."""
    node_dir = os.path.join(pipeline_root, node_id)
    if not os.path.isdir(node_dir):
        return []
    candidates = (os.path.join(node_dir, key, str(execution_id)) for key in os.listdir(node_dir))
    return [path for path in candidates if os.path.isdir(path)]


def abandon_interrupted_executions(
    store: metadata_store.MetadataStore, pipeline_name: str, pipeline_root: str
) -> list[str]:
    """Mark the pipeline's unfinished executions FAILED and delete their output folders.

    Call only while holding the run lock: then no live process owns them. Returns "<node> (execution
    <id>)" for each.
    """
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        return []
    stale = [
        e for e in store.get_executions_by_context(pipeline_context.id) if e.last_known_state in _ACTIVE
    ]
    if not stale:
        return []
    node_type = store.get_context_type("node")
    reason = (
        "its process ended without finishing it (killed or crashed); marked by a later run on "
        f"{socket.gethostname()} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"
    )
    found = []
    outputs = events.outputs(store, [e.id for e in stale], events.OUTPUTS_AND_PENDING)
    unpublished = [
        a for a in store.get_artifacts_by_id({e.artifact_id for e in outputs})
        if a.state != metadata_store_pb2.Artifact.LIVE
    ]
    for artifact in unpublished:
        artifact.state = metadata_store_pb2.Artifact.ABANDONED
    for execution in stale:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = reason
        node_id = next(
            (
                c.name.removeprefix(pipeline_name + ".")
                for c in store.get_contexts_by_execution(execution.id)
                if c.type_id == node_type.id
            ),
            "?",
        )
        for path in _output_dirs(pipeline_root, node_id, execution.id):
            shutil.rmtree(path, ignore_errors=True)
        found.append(f"{node_id} (execution {execution.id})")
    if unpublished:
        store.put_artifacts(unpublished)
    store.put_executions(stale)
    return found


def clean_up_interrupted_runs(config: configs.PipelineConfig, say: Callable[[str], None] = print) -> list[str]:
    """abandon_interrupted_executions on the config's store, if it exists yet, saying what it found."""
    try:
        store = open_store(config)
    except StoreMissing:
        return []
    found = abandon_interrupted_executions(store, config.pipeline_name, config.pipeline_root)
    if found:
        say(
            "An earlier run was interrupted; marked its unfinished executions failed (their outputs are "
            f"never used): {', '.join(found)}"
        )
    return found


def call_with_retries(
    attempt: Callable[[], T],
    retries: int,
    backoff_s: float,
    say: Callable[[str], None] = print,
    never_retry: tuple[type[BaseException], ...] = (configs.ConfigError,),
) -> T:
    """attempt(), and again up to `retries` times after a failure, waiting backoff_s, doubling each time.

    Errors in `never_retry` (the user's to fix) are raised at once.
    """
    for number in range(retries + 1):
        try:
            return attempt()
        except never_retry:
            raise
        except Exception as error:
            if number >= retries:
                raise
            wait = backoff_s * 2**number
            say(
                f"Run failed ({type(error).__name__}: {error}); retry {number + 1} of {retries} in "
                f"{wait:g}s (completed components come from the cache)."
            )
            time.sleep(wait)
    raise AssertionError("unreachable")
