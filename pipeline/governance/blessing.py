"""Whether a run's model was blessed, and why: each threshold the Evaluator judged it by, against the
model's metrics, as a Markdown table for a CI job's summary and an exit status a CI step can fail on.

This is the quality gate of continuous training (`make check-blessing`, the CI's training job): the
same verdict the Evaluator recorded, read back from the store, never judged again here.
"""

from __future__ import annotations

import dataclasses

from ml_metadata import metadata_store

from pipeline import configs
from pipeline.governance.report import (
    THRESHOLD_COLUMNS,
    baseline_text,
    format_number,
    threshold_row,
)
from pipeline.governance.runs import RunInfo, find_run, property_value
from pipeline.metadata import artifact_files, run_summary
from pipeline.metadata.run_summary import DATA_GATE_ID, ComponentRun

# `pipeline blessing` exits with this when the run's model was not blessed (or none was evaluated), so a
# CI step fails and no promotion follows; 1 stays "the question could not be answered".
EXIT_NOT_BLESSED = 3


@dataclasses.dataclass
class Verdict:
    pipeline: str
    run: str
    status: str
    blessed: bool | None
    reason: str
    checks: list[artifact_files.ThresholdCheck]
    # Which model the candidate was compared with, or that there was none (report.baseline_text).
    baseline: str
    metrics: dict[str, float]
    record: dict
    pushed_version: str | None

    @property
    def exit_status(self) -> int:
        return 0 if self.blessed else EXIT_NOT_BLESSED


def verdict(store: metadata_store.MetadataStore, config: configs.PipelineConfig, run: str = "latest") -> Verdict:
    """The blessing of `run`'s model as the Evaluator recorded it, with the reason when not blessed."""
    info: RunInfo = find_run(store, config.pipeline_name, run)
    evaluator = next((c for c in reversed(info.components) if c.node_id == "Evaluator"), None)
    evaluation = evaluator.output("evaluation") if evaluator else None
    blessing = evaluator.output("blessing") if evaluator else None
    if evaluation is not None and blessing is not None:
        judged = evaluator_judgment(evaluator)
    elif info.record.get("data_gate"):
        judged = {"reason": "the data gate stopped the run, so no model was trained: " + info.record["data_gate"]}
    else:
        last = info.components[-1].node_id if info.components else "none"
        judged = {"reason": (
            "it was a validation run: it stopped after the data gate and trained no model"
            if last == DATA_GATE_ID and info.status == "complete"
            else f"the run is {info.status} and evaluated no model (its last component was {last})"
        )}
    return Verdict(**{
        "checks": [], "baseline": "", "metrics": {}, **judged, "pipeline": config.pipeline_name, "run": info.name,
        "status": info.status, "blessed": info.blessed, "record": info.record, "pushed_version": info.pushed_version,
    })


def evaluator_judgment(evaluator: ComponentRun) -> dict:
    """What the Evaluator's outputs say of its model (Verdict's fields): each threshold per slice with the
    values compared, which baseline, the overall metrics, and why it was not blessed."""
    evaluation, blessing = evaluator.output("evaluation"), evaluator.output("blessing")
    checks = run_summary.threshold_checks(evaluator)
    blessed = property_value(blessing.custom_properties, "blessed")
    return {
        "checks": checks,
        "baseline": baseline_text(checks, property_value(blessing.custom_properties, "baseline_model_id")),
        "metrics": artifact_files.overall_metrics(evaluation.uri),
        "reason": "" if blessed else "; ".join(artifact_files.blessing_failures(evaluation.uri)),
    }


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(found: Verdict) -> str:
    """The verdict as a CI job summary: a heading that says it, the thresholds table, the reason."""
    if found.blessed:
        heading = f"### Model blessed: run {found.run} of {found.pipeline}"
    elif found.blessed is None:
        heading = f"### No model evaluated: run {found.run} of {found.pipeline}"
    else:
        heading = f"### Model NOT blessed: run {found.run} of {found.pipeline}"
    lines = [heading, ""]
    if found.reason:
        first, _, rest = found.reason.partition("\n")
        lines += [f"**Why:** {first}", ""]
        if rest:
            lines += ["```", rest, "```", ""]
    if found.checks:
        lines += [found.baseline, "", "| " + " | ".join(THRESHOLD_COLUMNS) + " |",
                  "|" + " --- |" * len(THRESHOLD_COLUMNS)]
        for check in found.checks:
            row = threshold_row(check)
            row[-1] = f"**{row[-1]}**" if check.passed is False else row[-1]
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        lines.append("")
    judged = {c.metric for c in found.checks}
    others = {name: value for name, value in found.metrics.items() if name not in judged}
    if others:
        lines += ["Other metrics (overall): " + ", ".join(f"{k} {format_number(v)}" for k, v in sorted(others.items())), ""]
    record = found.record
    if record:
        commit = (record.get("git_commit") or "no git")[:12]
        lines.append(f"Run by {record.get('user')}@{record.get('host')}, runner {record.get('runner')}, commit {commit}.")
    if found.pushed_version:
        lines.append(f"The Pusher wrote it to the serving directory as version {found.pushed_version}.")
    return "\n".join(lines) + "\n"
