"""Promotion: a run's blessed model published into the production serving directory, recorded in ML
Metadata. The delivery step of continuous training (`make promote`, the CI's promotion job); the Pusher's
serving directory then holds the candidates, and `pipeline rollback --production` undoes a promotion.
"""

from __future__ import annotations

import os

from ml_metadata import metadata_store

from pipeline import configs
from pipeline.governance.rollback import record_publication
from pipeline.governance.runs import PROMOTION_TYPE, GovernanceError, find_run, property_value
from pipeline.governance.serving import pushed_artifacts
from pipeline.guards import serving_dir
from pipeline.metadata import artifact_files


def _newest_recorded_version(store: metadata_store.MetadataStore) -> int:
    versions = (property_value(a.custom_properties, "pushed_version") or "" for a in pushed_artifacts(store))
    return max((int(v) for v in versions if v.isdigit()), default=0)


def promote(
    store: metadata_store.MetadataStore,
    config: configs.PipelineConfig,
    run: str = "latest",
    destination: str | None = None,
    reason: str = "",
) -> dict:
    """Publish `run`'s model into `destination` (production_model_dir) when that run blessed it.

    The model is judged by the run's own Evaluator, not by any earlier blessing of the same model: a run
    that refused it is never promoted. The version appears atomically (serving_dir.publish); when the
    model already serves there, nothing is written and `promoted` is False.
    """
    destination = destination or config.production_model_dir
    info = find_run(store, config.pipeline_name, run)
    trainer = next((c for c in reversed(info.components) if c.node_id == "Trainer"), None)
    evaluator = next((c for c in reversed(info.components) if c.node_id == "Evaluator"), None)
    model = trainer.output("model") if trainer else None
    blessing = evaluator.output("blessing") if evaluator else None
    if model is None or blessing is None:
        last = info.components[-1].node_id if info.components else "no component"
        why = "the data gate stopped it" if info.record.get("data_gate") else f"{info.status}, last ran {last}"
        raise GovernanceError(f"run {info.name} has no evaluated model to promote ({why})")
    if not property_value(blessing.custom_properties, "blessed"):
        evaluation = evaluator.output("evaluation")
        failures = artifact_files.blessing_failures(evaluation.uri) if evaluation else ["no evaluation recorded"]
        raise GovernanceError(
            f"refusing to promote run {info.name}'s model {model.id}: it was not blessed ({'; '.join(failures)})"
        )
    pusher = next((c for c in reversed(info.components) if c.node_id == "Pusher"), None)
    pushed = pusher.output("pushed_model") if pusher else None
    source = pushed.uri if pushed is not None and property_value(pushed.custom_properties, "pushed") else None
    if not source or not os.path.isdir(source):
        source = os.path.join(model.uri, "Format-Serving")
    if not os.path.isdir(source):
        raise GovernanceError(f"model {model.id}'s files are gone: {source}")
    versions = serving_dir.serving_versions(destination)
    previous = versions[-1] if versions else None
    serving = serving_dir.serving_copy_of(source, destination)
    if serving is not None:
        return {"model_id": model.id, "run": info.name, "version": os.path.basename(serving),
                "destination": serving, "previous": previous, "promoted": False}
    # Above every version recorded anywhere, so a version names one publication in `lineage` and `rollback`.
    version = str(max(int(serving_dir.next_version(destination)), _newest_recorded_version(store) + 1))
    target = serving_dir.publish(source, destination, version)
    record_publication(store, PROMOTION_TYPE, model, target, previous, reason, False)
    return {"model_id": model.id, "run": info.name, "version": version, "destination": target,
            "previous": previous, "promoted": True}
