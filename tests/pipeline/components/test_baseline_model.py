"""The Evaluator's baseline on a real ML Metadata store (in memory), with pushes recorded as the Pusher and
`pipeline rollback` record them: the model pushed most recently other than the candidate."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.types import artifact_utils, standard_artifacts

from pipeline.components.baseline_model import BaselineModelStrategy
from pipeline.governance.rollback import record_publication
from pipeline.governance.runs import ROLLBACK_TYPE


class Store:
    """A pipeline's models and pushes, written with the event paths TFX writes."""

    def __init__(self):
        connection = metadata_store_pb2.ConnectionConfig()
        connection.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(connection)
        context_type = self.store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
        [context_id] = self.store.put_contexts([metadata_store_pb2.Context(type_id=context_type, name="p")])
        self.context = self.store.get_contexts_by_id([context_id])[0]
        self.types = {
            cls.TYPE_NAME: self.store.put_artifact_type(cls._get_artifact_type())  # noqa: SLF001
            for cls in (standard_artifacts.Model, standard_artifacts.PushedModel, standard_artifacts.ModelEvaluation)
        }
        self.models: dict[str, metadata_store_pb2.Artifact] = {}
        self.pushes: list[metadata_store_pb2.Artifact] = []

    def _execute(self, type_name, inputs, outputs):
        """`inputs` and `outputs` map an event key to one artifact or a list of them."""
        type_id = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=type_name))
        execution = metadata_store_pb2.Execution(
            type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE
        )
        pairs = []
        for kind, items in ((metadata_store_pb2.Event.INPUT, inputs), (metadata_store_pb2.Event.OUTPUT, outputs)):
            for key, artifacts in items.items():
                for index, artifact in enumerate(artifacts if isinstance(artifacts, list) else [artifacts]):
                    event = metadata_store_pb2.Event(type=kind)
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
                    pairs.append((artifact, event))
        _, artifact_ids, _ = self.store.put_execution(execution, pairs, [self.context])
        return self.store.get_artifacts_by_id(artifact_ids)

    def train(self, name: str) -> None:
        model = metadata_store_pb2.Artifact(type_id=self.types["Model"], uri=f"/models/{name}")
        [self.models[name]] = self._execute("Trainer", {}, {"model": model})

    def push(self, name: str, pushed: bool = True) -> None:
        push = metadata_store_pb2.Artifact(type_id=self.types["PushedModel"], uri=f"/pushes/{name}")
        push.custom_properties["pushed"].int_value = int(pushed)
        [_, stored] = self._execute("Pusher", {"model": self.models[name]}, {"pushed_model": push})
        self.pushes.append(stored)

    def rollback(self, name: str) -> None:
        record_publication(self.store, ROLLBACK_TYPE, self.models[name], f"/serving/{name}/9", "8", "test", False)
        self.pushes = list(self.store.get_artifacts_by_type("PushedModel"))

    def evaluate(self, candidate: str) -> list[str]:
        """Resolve the candidate's baseline and record the Evaluator's execution as TFX would on a cache
        miss; answer the baseline's names."""
        names = self.baseline(candidate)
        evaluation = metadata_store_pb2.Artifact(type_id=self.types["ModelEvaluation"], uri=f"/evaluations/{candidate}")
        self._execute("Evaluator", {"model": self.models[candidate],
                                    "baseline_model": [self.models[n] for n in names]}, {"evaluation": evaluation})
        return names

    def baseline(self, candidate: str) -> list[str]:
        def tfx(artifacts, cls):
            return [artifact_utils.deserialize_artifact(cls._get_artifact_type(), a) for a in artifacts]  # noqa: SLF001

        resolved = BaselineModelStrategy().resolve_artifacts(self.store, {
            "candidate": tfx([self.models[candidate]], standard_artifacts.Model),
            "model": tfx(self.models.values(), standard_artifacts.Model),
            "pushed_model": tfx(self.pushes, standard_artifacts.PushedModel),
        })
        assert [a.id for a in resolved["candidate"]] == [self.models[candidate].id]
        names = {a.id: name for name, a in self.models.items()}
        return [names[a.id] for a in resolved["model"]]


def test_nothing_pushed_yet_means_no_baseline():
    s = Store()
    s.train("m1")
    assert s.baseline("m1") == []


def test_an_unchanged_rerun_resolves_what_the_first_evaluation_did():
    s = Store()
    s.train("m1")
    assert s.evaluate("m1") == []
    s.push("m1")
    # Before: TFX's LatestBlessedModelStrategy answered m1 here, the candidate itself.
    assert s.baseline("m1") == []
    s.train("m2")
    assert s.evaluate("m2") == ["m1"]
    s.push("m2")
    # m2 now serves, yet its unchanged re-run is judged as it was first: against m1, so TFX's cache
    # serves the Evaluator and the Pusher.
    assert s.baseline("m2") == ["m1"]


def test_an_evaluation_that_did_not_complete_is_no_judgment():
    s = Store()
    s.train("m1")
    s.push("m1")
    s.train("m2")
    s.evaluate("m2")
    failed = s.store.get_executions_by_type("Evaluator")[0]
    failed.last_known_state = metadata_store_pb2.Execution.FAILED
    s.store.put_executions([failed])
    s.push("m2", pushed=False)
    s.train("m3")
    s.push("m3")
    # m2's only evaluation failed: it is judged afresh, against the model serving now.
    assert s.baseline("m2") == ["m3"]


def test_a_retrained_model_is_compared_with_the_model_serving():
    s = Store()
    for name in ("m1", "m2"):
        s.train(name)
        s.evaluate(name)
        s.push(name)
    s.train("m3")
    assert s.evaluate("m3") == ["m2"]
    # A push that did not happen (not blessed, or already serving) puts nothing into serving.
    s.push("m3", pushed=False)
    s.train("m4")
    assert s.baseline("m4") == ["m2"]


def test_after_a_rollback_the_baseline_is_the_model_rolled_back_to():
    s = Store()
    for name in ("m1", "m2"):
        s.train(name)
        s.evaluate(name)
        s.push(name)
    s.rollback("m1")
    # An unchanged re-run (candidate m2, evaluated against m1 when it was trained) hits the cache, so
    # the Pusher does not put m2 back; a new model is judged against m1, which it would replace.
    assert s.baseline("m2") == ["m1"]
    s.train("m3")
    assert s.baseline("m3") == ["m1"]
    # A run after a rollback to a model never judged (pushed by hand) finds no baseline but itself: none.
    s.train("m4")
    s.push("m4")
    s.rollback("m4")
    assert s.baseline("m4") == []
