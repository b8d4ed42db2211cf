"""pipeline/metadata/events.py: the event graph's one reading, on a real ML Metadata store (SQLite)."""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.metadata import events

Event = metadata_store_pb2.Event


def _store(tmp_path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.db")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _put(store, type_id, event_pairs):
    """An execution with events [(artifact id, event type, key)]."""
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution_id = store.put_executions([execution])[0]
    recorded = []
    for artifact_id, event_type, key in event_pairs:
        event = Event(artifact_id=artifact_id, execution_id=execution_id, type=event_type)
        event.path.steps.add().key = key
        event.path.steps.add().index = 0
        recorded.append(event)
    store.put_events(recorded)
    return execution_id


def test_producer_is_the_first_execution_and_keys_inputs_outputs_and_pending_are_told_apart(tmp_path):
    store = _store(tmp_path)
    artifact_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    examples, model, half_written = store.put_artifacts([
        metadata_store_pb2.Artifact(type_id=artifact_type, uri=f"/x/{i}") for i in range(3)
    ])
    trainer = _put(store, execution_type, [(examples, Event.INPUT, "examples"), (model, Event.OUTPUT, "model")])
    cached = _put(store, execution_type, [(examples, Event.INPUT, "examples"), (model, Event.OUTPUT, "model")])
    evaluator = _put(store, execution_type, [(model, Event.DECLARED_INPUT, "model")])
    crashed = _put(store, execution_type, [(half_written, Event.PENDING_OUTPUT, "model")])

    assert trainer < cached
    assert events.producers(store, [model, examples, half_written]) == {model: trainer}
    assert events.producer(store, model).id == trainer
    assert events.producer(store, examples) is None
    assert [(e.artifact_id, events.key(e)) for e in events.inputs(store, [trainer])] == [(examples, "examples")]
    assert sorted(e.execution_id for e in events.readers(store, [model])) == [evaluator]
    assert events.outputs(store, [crashed]) == []
    assert [e.artifact_id for e in events.outputs(store, [crashed], events.OUTPUTS_AND_PENDING)] == [half_written]
    assert events.of_executions(store, []) == [] and events.of_artifacts(store, []) == []
