"""The Evaluator's baseline: the model the candidate would replace.

TFX's LatestBlessedModelStrategy hands the Evaluator the newest blessed model, which after the first
run is the candidate itself whenever the Trainer was served from the cache: an unchanged re-run then
spends a whole evaluation comparing a model with itself, and blesses it again, so the Pusher runs too;
and after a rollback it judges the next candidate against the model a person withdrew. This strategy
answers two cases:

- a candidate judged before (the Trainer was served from the cache: an unchanged re-run, or a run after
  a rollback to that very model) gets the baseline of its first judgment, so the Evaluator and Pusher
  are served from the cache: the model is not judged again;
- a new candidate gets the model serving now, the model of the newest push (a rollback's included), so
  a model a rollback withdrew is never its baseline.
"""

from __future__ import annotations

from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.components.common import resolver

from pipeline.metadata import events
from pipeline.metadata.pushes import model_ids_of_pushes

RESOLVER_ID = "baseline_model_resolver"
CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
PUSHED_MODEL_KEY = "pushed_model"
# The Evaluator's input and output keys, as its executions record them.
EVALUATED_KEY, BASELINE_KEY, EVALUATION_KEY = "model", "baseline_model", "evaluation"


class BaselineModelStrategy(resolver.ResolverStrategy):
    """Inputs: `candidate` (the Trainer's model of this run), `model` and `pushed_model` (every Model and
    PushedModel of the pipeline). Output `model`: the baseline of the candidate's first evaluation if it
    had one, else the model of the newest push unless that is the candidate, else none."""

    def resolve_artifacts(self, store, input_dict):
        candidate_ids = {a.id for a in input_dict.get(CANDIDATE_KEY, [])}
        models = {a.id: a for a in input_dict.get(MODEL_KEY, [])}
        judged = first_judgment_baseline(store, candidate_ids)
        if judged is not None:
            baseline = [models[i] for i in judged if i in models]
        else:
            serving = serving_model_id(store, input_dict.get(PUSHED_MODEL_KEY, []))
            baseline = [models[serving]] if serving in models and serving not in candidate_ids else []
        return {key: [] for key in input_dict} | {
            MODEL_KEY: baseline,
            CANDIDATE_KEY: list(input_dict.get(CANDIDATE_KEY, [])),
        }


def serving_model_id(store, pushed_models) -> int | None:
    """The model of the newest push that put a model into serving (artifact ids grow with each write)."""
    pushes = [a for a in pushed_models if _int(a, "pushed") == 1]
    if not pushes:
        return None
    newest = max(pushes, key=lambda a: a.id)
    return model_ids_of_pushes(store, [newest.id]).get(newest.id)


def first_judgment_baseline(store, candidate_ids: set[int]) -> list[int] | None:
    """The baseline model ids of the first completed evaluation of the candidate ([] if it had none), or
    None when it was never evaluated."""
    reads = {e.execution_id for e in events.readers(store, candidate_ids) if events.key(e) == EVALUATED_KEY}
    completed = [x.id for x in store.get_executions_by_id(sorted(reads))
                 if x.last_known_state == metadata_store_pb2.Execution.COMPLETE] if reads else []
    evaluations = sorted({e.execution_id for e in events.outputs(store, completed)
                          if events.key(e) == EVALUATION_KEY})
    if not evaluations:
        return None
    return [e.artifact_id for e in events.inputs(store, evaluations[:1]) if events.key(e) == BASELINE_KEY]


def _int(artifact, name: str) -> int | None:
    """A custom integer property; TFX's Artifact raises no error for a missing one, answering 0."""
    return artifact.mlmd_artifact.custom_properties[name].int_value if name in artifact.mlmd_artifact.custom_properties else None
