"""What keeps runs safe when processes die or files disappear: cleanup of killed runs, of recorded
outputs whose files are gone, and retries (one run per store at a time is pipeline/guards/store_lock.py's).

TFX records an execution as RUNNING when a component starts and COMPLETE when it publishes its outputs.
A process killed in between leaves a RUNNING execution behind forever. Nothing later uses its outputs
(TFX's cache and input resolution take only published artifacts), but the store would claim the run is
still going. A new run, once it holds the store's lock, knows no one else is running: it marks such
executions FAILED, with the reason, and deletes the half-written output folders.

Outputs recorded as complete can lose their files later (a clean-up job, a lost disk). TFX's cache checks
only that a cached output's folder exists, and its input resolution none of that, so an emptied folder
was handed downstream and a later component failed on a missing file. The next run, before anything
starts, checks every live output of the pipeline's nodes (pipeline/metadata/artifact_files.py's `unusable`)
and marks those it cannot use DELETED: TFX then takes neither as a cache hit nor as a resolver's input,
so the component that made one runs again, and so does every component that reads its new output.

LocalDagRunner has no per-component retries (TFX honours NodeExecutionOptions.max_execution_retries only
in its asynchronous orchestrator), so a failed run is run again: the cache serves every component that
completed, so only the failed component and those after it execute again. A run that lost its MySQL store
is not: the store's run lock went with the server's connection, so a retry could run beside another run.
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
from pipeline.metadata import artifact_files, events, run_summary
from pipeline.metadata.store import StoreMissing, open_store, unreachable

T = TypeVar("T")
ABANDONED_PROPERTY = "abandoned"
# Set on an artifact marked DELETED because its files were gone: what was wrong, who noticed, when.
VANISHED_PROPERTY = "vanished"
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
    reason = f"its process ended without finishing it (killed or crashed); {_noticed()}"
    found = []
    outputs = events.outputs(store, [e.id for e in stale], events.OUTPUTS_AND_PENDING)
    unpublished = [
        a for a in store.get_artifacts_by_id({e.artifact_id for e in outputs})
        if a.state != metadata_store_pb2.Artifact.LIVE
    ]
    for artifact in unpublished:
        artifact.state = metadata_store_pb2.Artifact.ABANDONED
    nodes = run_summary.node_ids(store, [e.id for e in stale], pipeline_name)
    for execution in stale:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = reason
        node_id = nodes.get(execution.id, "?")
        for path in _output_dirs(pipeline_root, node_id, execution.id):
            shutil.rmtree(path, ignore_errors=True)
        found.append(f"{node_id} (execution {execution.id})")
    if unpublished:
        store.put_artifacts(unpublished)
    store.put_executions(stale)
    return found


def _noticed() -> str:
    return f"marked by a later run on {socket.gethostname()} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"


def retire_vanished_outputs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[str]:
    """Mark DELETED the pipeline's live outputs whose files are gone, empty or changed, so that no run
    takes them from the cache or resolves them as inputs again.

    Only the outputs of the pipeline's nodes, the ones TFX caches and resolves: a rollback's or promotion's
    record points into a serving directory, whose versions come and go by retention. Call only while
    holding the run lock (no run is writing outputs). Returns one line per artifact:
    "<node>: <type> <uri> (<what is wrong>)", the node being the one that first wrote it.
    """
    prefix = pipeline_name + "."
    node_of = {
        execution.id: context.name.removeprefix(prefix)
        for context in store.get_contexts_by_type("node") if context.name.startswith(prefix)
        for execution in store.get_executions_by_context(context.id)
        if execution.last_known_state in (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    }
    live = [
        a for a in store.get_artifacts_by_id({e.artifact_id for e in events.outputs(store, node_of)})
        if a.state == metadata_store_pb2.Artifact.LIVE
    ]
    type_names = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in live}))}
    gone = [(a, why) for a in live if (why := artifact_files.unusable(a, type_names[a.type_id]))]
    if not gone:
        return []
    producers = events.producers(store, [a.id for a, _ in gone])
    noticed = _noticed()
    found = []
    for artifact, why in sorted(gone, key=lambda item: item[0].id):
        artifact.state = metadata_store_pb2.Artifact.DELETED
        artifact.custom_properties[VANISHED_PROPERTY].string_value = f"{why}; {noticed}"
        node_id = node_of.get(producers.get(artifact.id), "?")
        found.append(f"{node_id}: {type_names[artifact.type_id]} {artifact.uri} ({why})")
    store.put_artifacts([artifact for artifact, _ in gone])
    return found


def clean_up_before_run(config: configs.PipelineConfig, say: Callable[[str], None] = print) -> list[str]:
    """What a run does first, once it holds the store: abandon_interrupted_executions, then
    retire_vanished_outputs, on the config's store if it exists yet, saying what each found."""
    try:
        store = open_store(config)
    except StoreMissing:
        return []
    interrupted = abandon_interrupted_executions(store, config.pipeline_name, config.pipeline_root)
    if interrupted:
        say(
            "An earlier run was interrupted; marked its unfinished executions failed (their outputs are "
            f"never used): {', '.join(interrupted)}"
        )
    vanished = retire_vanished_outputs(store, config.pipeline_name)
    if vanished:
        say(
            "Recorded outputs whose files are gone, empty or changed; marked deleted in ML Metadata, so the "
            "components that wrote them run again, and so does every component that reads their new outputs:\n"
            + "\n".join(f"  {line}" for line in vanished)
        )
    return interrupted + vanished


def call_with_retries(
    attempt: Callable[[], T],
    retries: int,
    backoff_s: float,
    say: Callable[[str], None] = print,
    never_retry: tuple[type[BaseException], ...] = (configs.ConfigError,),
) -> T:
    """attempt(), and again up to `retries` times after a failure, waiting backoff_s, doubling each time.

    Errors in `never_retry` (the user's to fix) are raised at once, and so is the loss of a MySQL store
    (the run lock went with its connection).
    """
    for number in range(retries + 1):
        try:
            return attempt()
        except never_retry:
            raise
        except Exception as error:
            if number >= retries or unreachable(error):
                raise
            wait = backoff_s * 2**number
            say(
                f"Run failed ({type(error).__name__}: {error}); retry {number + 1} of {retries} in "
                f"{wait:g}s (completed components come from the cache)."
            )
            time.sleep(wait)
    raise AssertionError("unreachable")
