"""Which run `pipeline runs` and `report latest` call newest, on a real ML Metadata store (in memory) that
holds runs started within one millisecond, named as a clock stepped back would name them."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.governance import runs
from pipeline.metadata import run_summary

# Names that sort backwards: each run started after the clock stepped back an hour.
NAMES = [f"2026-12-06T{hour:02d}:00:00.000000" for hour in (23, 22, 21, 20, 19, 18)]


def store_with_runs_in_one_instant() -> metadata_store.MetadataStore:
    """Six runs of pipeline `p`, one Trainer execution each, written as fast as MLMD takes them: most
    share their creation millisecond with another, so only MLMD's ids say which came first."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.fake_database.SetInParent()
    store = metadata_store.MetadataStore(connection)
    pipeline_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    trainer_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    pipeline_id, node_id = store.put_contexts([
        metadata_store_pb2.Context(type_id=pipeline_type, name="p"),
        metadata_store_pb2.Context(type_id=node_type, name="p.Trainer"),
    ])
    pipeline, node = store.get_contexts_by_id([pipeline_id, node_id])
    for name in NAMES:
        [run_id] = store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name=name)])
        [run] = store.get_contexts_by_id([run_id])
        store.put_execution(
            metadata_store_pb2.Execution(type_id=trainer_type, last_known_state=metadata_store_pb2.Execution.COMPLETE),
            [], [pipeline, node, run],
        )
    return store


def test_the_run_started_last_is_newest_whatever_its_name_and_time():
    store = store_with_runs_in_one_instant()
    listed = runs.list_runs(store, "p")
    assert [run.name for run in listed] == NAMES[::-1]
    assert runs.find_run(store, "p", "latest").name == NAMES[-1]
    assert run_summary.latest_run_context(store, "p").name == NAMES[-1]
