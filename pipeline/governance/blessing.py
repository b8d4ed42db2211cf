"""Whether a run's model was blessed, and why: each threshold the Evaluator judged it by, against the
model's metrics, as a Markdown table for a CI job's summary and an exit status a CI step can fail on.

This is the quality gate of continuous training (`make check-blessing`, the CI's training job): the
same verdict the Evaluator recorded, read back from the store, never judged again here.
"""

from __future__ import annotations

import dataclasses
import json

from ml_metadata import metadata_store

from pipeline import configs
from pipeline.governance.report import thresholds
from pipeline.governance.runs import RunInfo, find_run, property_value
from pipeline.metadata import artifact_files
from pipeline.metadata.run_summary import DATA_GATE_ID

# `pipeline blessing` exits with this when the run's model was not blessed (or none was evaluated), so a
# CI step fails and no promotion follows; 1 stays "the question could not be answered".
EXIT_NOT_BLESSED = 3
# TFMA needs a strictly negative change threshold; the pipeline writes this for "no decrease allowed".
_NO_DECREASE = 1e-9


@dataclasses.dataclass
class Check:
    """One threshold of the Evaluator's config, and how the candidate model fared against it."""

    metric: str
    slices: str
    threshold: str
    value: str
    baseline: str
    result: str  # "pass", "FAIL", or "not applied" (a change threshold before any model was blessed)


@dataclasses.dataclass
class Verdict:
    pipeline: str
    run: str
    status: str
    blessed: bool | None
    reason: str
    checks: list[Check]
    metrics: dict[str, float]
    record: dict
    pushed_version: str | None

    @property
    def exit_status(self) -> int:
        return 0 if self.blessed else EXIT_NOT_BLESSED


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.4f}"


def _slices(specs: list[dict]) -> str:
    return ", ".join(
        "overall" if not spec else " & ".join(spec.get("feature_keys", [])) or json.dumps(spec) for spec in specs
    ) or "overall"


def _failures(evaluation_uri: str) -> set[tuple[str, str, str]]:
    """(metric, "value" or "change", slice) of every threshold TFMA's validation result says failed."""
    failed = set()
    result = artifact_files.load_validation_result(evaluation_uri)
    for per_slice in result.metric_validations_per_slice:
        where = " & ".join(key.column for key in per_slice.slice_key.single_slice_keys) or "overall"
        for failure in per_slice.failures:
            kind = "change" if failure.metric_threshold.HasField("change_threshold") else "value"
            failed.add((artifact_files.metric_name(failure.metric_key), kind, where))
    return failed


def _checks(eval_config: dict, evaluation_uri: str) -> list[Check]:
    candidate = artifact_files.overall_metrics(evaluation_uri)
    baseline = artifact_files.overall_metrics(evaluation_uri, baseline=True)
    failed = _failures(evaluation_uri)
    checks = []
    for name, per_slice in thresholds(eval_config):
        slices = _slices(per_slice.get("slicing_specs", [{}]))
        threshold = per_slice.get("threshold", {})
        value_threshold = threshold.get("value_threshold", {})
        bounds = [f"at least {value_threshold['lower_bound']:g}"] if "lower_bound" in value_threshold else []
        bounds += [f"at most {value_threshold['upper_bound']:g}"] if "upper_bound" in value_threshold else []
        if bounds:
            checks.append(Check(
                name, slices, " and ".join(bounds), _number(candidate.get(name)), "-",
                "FAIL" if (name, "value", slices) in failed else "pass",
            ))
        change = threshold.get("change_threshold", {})
        if change:
            lower_is_better = change.get("direction") == "LOWER_IS_BETTER"
            allowed = abs(float(change.get("absolute", change.get("relative", 0.0))))
            unit = "" if "absolute" in change else " (relative)"
            worse = "rise" if lower_is_better else "fall"
            text = (
                f"may not {worse} below the blessed baseline's" if allowed <= _NO_DECREASE and not lower_is_better
                else f"may not {worse} above the blessed baseline's" if allowed <= _NO_DECREASE
                else f"may {worse} by at most {allowed:g}{unit} against the blessed baseline's"
            )
            if name in baseline:
                shown = f"{_number(baseline[name])} (change {candidate.get(name, float('nan')) - baseline[name]:+.4f})"
                result = "FAIL" if (name, "change", slices) in failed else "pass"
            else:
                shown, result = "none yet", "not applied"
            checks.append(Check(name, slices, text, _number(candidate.get(name)), shown, result))
    return checks


def verdict(store: metadata_store.MetadataStore, config: configs.PipelineConfig, run: str = "latest") -> Verdict:
    """The blessing of `run`'s model as the Evaluator recorded it, with the reason when not blessed."""
    info: RunInfo = find_run(store, config.pipeline_name, run)
    evaluator = next((c for c in reversed(info.components) if c.node_id == "Evaluator"), None)
    evaluation = evaluator.output("evaluation") if evaluator else None
    blessing = evaluator.output("blessing") if evaluator else None
    checks, metrics, reason = [], {}, ""
    if evaluation is not None and blessing is not None:
        eval_config = json.loads(property_value(evaluator.execution.custom_properties, "eval_config") or "{}")
        checks = _checks(eval_config, evaluation.uri)
        metrics = artifact_files.overall_metrics(evaluation.uri)
        if not property_value(blessing.custom_properties, "blessed"):
            reason = "; ".join(artifact_files.blessing_failures(evaluation.uri))
    elif info.record.get("data_gate"):
        reason = "the data gate stopped the run, so no model was trained: " + info.record["data_gate"]
    else:
        last = info.components[-1].node_id if info.components else "none"
        reason = (
            "it was a validation run: it stopped after the data gate and trained no model"
            if last == DATA_GATE_ID and info.status == "complete"
            else f"the run is {info.status} and evaluated no model (its last component was {last})"
        )
    return Verdict(
        pipeline=config.pipeline_name, run=info.name, status=info.status, blessed=info.blessed, reason=reason,
        checks=checks, metrics=metrics, record=info.record, pushed_version=info.pushed_version,
    )


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
        lines += [
            "| metric | slices | threshold | value | blessed baseline | result |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            "| " + " | ".join(_cell(v) for v in (c.metric, c.slices, c.threshold, c.value, c.baseline,
                                                 f"**{c.result}**" if c.result == "FAIL" else c.result)) + " |"
            for c in found.checks
        ]
        lines.append("")
    judged = {c.metric for c in found.checks}
    others = {name: value for name, value in found.metrics.items() if name not in judged}
    if others:
        lines += ["Other metrics (overall): " + ", ".join(f"{k} {_number(v)}" for k, v in sorted(others.items())), ""]
    record = found.record
    if record:
        commit = (record.get("git_commit") or "no git")[:12]
        lines.append(f"Run by {record.get('user')}@{record.get('host')}, runner {record.get('runner')}, commit {commit}.")
    if found.pushed_version:
        lines.append(f"The Pusher wrote it to the serving directory as version {found.pushed_version}.")
    return "\n".join(lines) + "\n"
