"""The Evaluator's baseline: the model the candidate would replace.

TFX's LatestBlessedModelStrategy hands the Evaluator the newest blessed model, which after the first
run is the candidate itself whenever the Trainer was served from the cache: an unchanged re-run then
spends a whole evaluation comparing a model with itself, and blesses it again, so the Pusher runs too
(and after a rollback would put the model a person withdrew back into serving). This strategy takes the
model pushed most recently other than the candidate: an unchanged re-run resolves exactly the inputs of
the run that first evaluated the candidate and is served from the cache, a retrained model is compared
with the one serving, and after a rollback that is the model rolled back to.
"""

from __future__ import annotations

from tfx.dsl.components.common import resolver

from pipeline.metadata.pushes import model_ids_of_pushes

RESOLVER_ID = "baseline_model_resolver"
CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
PUSHED_MODEL_KEY = "pushed_model"


class BaselineModelStrategy(resolver.ResolverStrategy):
    """Inputs: `candidate` (the Trainer's model of this run), `model` and `pushed_model` (every Model and
    PushedModel of the pipeline). Output `model`: the newest push's model other than the candidate, or
    none (the first run, or only the candidate was ever pushed)."""

    def resolve_artifacts(self, store, input_dict):
        candidate_ids = {a.id for a in input_dict.get(CANDIDATE_KEY, [])}
        pushes = [a for a in input_dict.get(PUSHED_MODEL_KEY, []) if _int(a, "pushed") == 1]
        models = {a.id: a for a in input_dict.get(MODEL_KEY, [])}
        pushed_models = model_ids_of_pushes(store, [a.id for a in pushes]) if pushes else {}
        baseline = []
        # Artifact ids grow with each write, so the highest id is the newest push.
        for push in sorted(pushes, key=lambda a: a.id, reverse=True):
            model_id = pushed_models.get(push.id)
            if model_id is not None and model_id not in candidate_ids and model_id in models:
                baseline = [models[model_id]]
                break
        return {key: [] for key in input_dict} | {
            MODEL_KEY: baseline,
            CANDIDATE_KEY: list(input_dict.get(CANDIDATE_KEY, [])),
        }


def _int(artifact, name: str) -> int | None:
    """A custom integer property; TFX's Artifact raises no error for a missing one, answering 0."""
    return artifact.mlmd_artifact.custom_properties[name].int_value if name in artifact.mlmd_artifact.custom_properties else None
