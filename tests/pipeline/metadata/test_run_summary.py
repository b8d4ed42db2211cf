"""Which run is the newest, on a real ML Metadata store (in memory) holding runs and a rollback."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.governance.rollback import record_publication
from pipeline.governance.runs import ROLLBACK_TYPE
from pipeline.metadata import run_summary


def store_with_runs(names=("run-1", "run-2")):
    """Runs of pipeline `p` named `names`, in that order, each a Trainer execution that output a Model."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.fake_database.SetInParent()
    store = metadata_store.MetadataStore(connection)
    pipeline_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    trainer_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    model_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
    store.put_artifact_type(metadata_store_pb2.ArtifactType(name="PushedModel"))
    pipeline, node = store.get_contexts_by_id(store.put_contexts([
        metadata_store_pb2.Context(type_id=pipeline_type, name="p"),
        metadata_store_pb2.Context(type_id=node_type, name="p.Trainer"),
    ]))
    models = []
    for run_name in names:
        [run_id] = store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name=run_name)])
        [run] = store.get_contexts_by_id([run_id])
        event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
        event.path.steps.add().key = "model"
        _, [model_id], _ = store.put_execution(
            metadata_store_pb2.Execution(type_id=trainer_type, last_known_state=metadata_store_pb2.Execution.COMPLETE),
            [(metadata_store_pb2.Artifact(type_id=model_type, uri=f"/models/{run_name}"), event)],
            [pipeline, node, run],
        )
        models.extend(store.get_artifacts_by_id([model_id]))
    return store, models


def test_the_newest_run_is_the_newest_execution_in_a_run():
    store, _ = store_with_runs()
    assert run_summary.latest_run_context(store, "p").name == "run-2"


def test_a_rollback_after_the_last_run_does_not_hide_it():
    """A rollback is an execution of the pipeline outside any run; the newest run is still the last one."""
    store, models = store_with_runs()
    record_publication(store, ROLLBACK_TYPE, models[0], "/serving/p/9", "8", "test", False)
    assert run_summary.latest_run_context(store, "p").name == "run-2"
