"""lineage.py beyond what `pipeline lineage` shows on the stores of real runs (test_cli.py): a store without
pipeline runs, as a notebook's InteractiveContext writes."""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.governance import lineage


def test_an_execution_in_a_store_without_pipeline_runs_belongs_to_no_run():
    connection = metadata_store_pb2.ConnectionConfig()
    connection.fake_database.SetInParent()
    store = metadata_store.MetadataStore(connection)
    trainer_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    [execution_id] = store.put_executions([metadata_store_pb2.Execution(type_id=trainer_type)])
    assert lineage.run_of_execution(store, execution_id) is None
    # With the type, an execution outside every run is in none either; one inside its run is found.
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    assert lineage.run_of_execution(store, execution_id) is None
    [run_id] = store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name="2026-12-07T10:00:00")])
    store.put_attributions_and_associations([], [metadata_store_pb2.Association(context_id=run_id, execution_id=execution_id)])
    assert lineage.run_of_execution(store, execution_id).name == "2026-12-07T10:00:00"
