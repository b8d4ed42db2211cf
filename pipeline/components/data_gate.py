"""The data gate: a pipeline node that stops the run when the new data breaks the curated schema.

ExampleValidator only writes its anomalies (into MLMD, as an ExampleAnomalies artifact); the pipeline
would go on and train. The gate reads those anomalies and adds three checks of its own: a minimum number
of rows per split (too little data, an empty span above all, never trains and never becomes the drift
baseline), TFDV's drift check of categorical columns against the statistics of the last data that passed
the gate (the drift comparators are in the curated schema), and a drift check of every numeric column
against the same data (pipeline/guards/numeric_drift.py). It fails with one message naming the data (the
files, span and version the run read), each split, column and problem. Transform depends on the gate, so Transform,
Trainer, Evaluator and Pusher never run on rejected data. Failing, rather than conditional execution,
stops every runner alike (local, Beam, Airflow, Kubeflow), and the failed run is visible in each.
"""

from __future__ import annotations

import json
from typing import Any

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from pipeline import inputs
from pipeline.guards import numeric_drift
from pipeline.configs import ConfigError
from pipeline.metadata import artifact_files
from pipeline.metadata.run_summary import DATA_GATE_ID  # noqa: F401  (the gate's node id, read back there)

BASELINE_RESOLVER_ID = "validated_statistics_resolver"
VALIDATED_STATISTICS_KEY = "validated_statistics"
# Anomalies of these severities stop the run; the rest are reported and let through.
_HALTING = (anomalies_pb2.AnomalyInfo.ERROR, anomalies_pb2.AnomalyInfo.UNKNOWN)


class DataGateError(RuntimeError):
    """The new data was rejected; the message lists every problem found."""


class LatestIfAnyStrategy(LatestArtifactStrategy):
    """The newest artifact of the channel, or none before the first exists.

    TFX's LatestArtifactStrategy fails the resolver (a FAILED execution and a logged traceback) while
    its channel is empty, as it is on a store's first run, before any data has passed the gate.
    TFX's Kubeflow V2 compiler accepts only TFX's own strategies: a runner compiling for it would swap
    in LatestArtifactStrategy (not tried here).
    """

    def resolve_artifacts(self, store, input_dict):
        return self._resolve(input_dict)


def _is_drift(reason: anomalies_pb2.AnomalyInfo.Reason) -> bool:
    return anomalies_pb2.AnomalyInfo.Type.Name(reason.type).startswith("COMPARATOR_")


def findings(
    split: str, anomalies: anomalies_pb2.Anomalies, drift_only: bool = False
) -> list[tuple[bool, str]]:
    """(halts, line) for each problem in one split's anomalies: one line per column and reason."""
    infos = [(f"column {name!r}", info) for name, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append(("whole dataset", anomalies.dataset_anomaly_info))
    found = []
    for where, info in infos:
        reasons = [r for r in info.reason if _is_drift(r) or not drift_only]
        lines = [f"{r.short_description}: {r.description}" for r in reasons]
        if not info.reason and not drift_only:
            lines = [f"{info.short_description}: {info.description}"]
        found.extend((info.severity in _HALTING, f"[{split}] {where}: {line}") for line in lines)
    return found


def describe_input(input_base: str, input_pattern: str, examples: types.Artifact | None) -> str:
    """The files, span and version ExampleGen read, as `inputs.resolve` finds them for its artifact."""
    span, version = 0, None
    if examples is not None:
        span = artifact_files.int_property(examples.mlmd_artifact, "span") or 0
        version = artifact_files.int_property(examples.mlmd_artifact, "version")
    try:
        return inputs.resolve(input_base, input_pattern, span, version).describe()
    except ConfigError:  # The files have gone since ExampleGen read them.
        return f"files {input_pattern}; span {span}"


def rejection_message(where: str, input_base: str, lines: list[str], warnings: list[str]) -> str:
    parts = [
        f"data gate: the data in {input_base} ({where}) has {len(lines)} problem(s) against the curated "
        "schema; Transform, Trainer, Evaluator and Pusher did not run",
        *(f"  {line}" for line in lines),
    ]
    if warnings:
        parts.append("Warnings (not halting):")
        parts.extend(f"  {line}" for line in warnings)
    parts.append(
        "Fix the data, or if the change is intended, update the curated schema (make schema-candidate "
        "shows SchemaGen's inference to compare) or the gate's settings (min_train_rows, min_eval_rows, "
        "numeric_drift_overrides)."
    )
    return "\n".join(parts)


def too_few_rows(current: dict, min_rows: dict[str, int]) -> list[str]:
    """A line for each split with fewer rows than its minimum (any split needs at least one)."""
    found = []
    for split, stats in sorted(current.items()):
        rows = sum(dataset.num_examples for dataset in stats.datasets)
        minimum = max(min_rows.get(split, 1), 1)
        if rows < minimum:
            setting = f" (min_{split}_rows)" if split in min_rows else ""
            found.append(
                f"[{split}] whole dataset: Too few rows: {rows:,} rows, the minimum is {minimum:,}{setting}"
            )
    return found


class DataGateExecutor(base_executor.BaseExecutor):
    """Judges ExampleValidator's anomalies and drift; passes the statistics on as the next baseline."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        anomalies_artifact = artifact_utils.get_single_instance(input_dict["anomalies"])
        examples = (input_dict.get("examples") or [None])[0]
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        )
        settings = json.loads(exec_properties.get("numeric_drift") or "{}")
        overrides = numeric_drift.parse_overrides(settings.get("overrides", []), schema)
        baselines = input_dict.get("baseline_statistics") or []
        current = artifact_files.load_statistics(statistics.uri)
        previous = artifact_files.load_statistics(baselines[0].uri) if baselines else {}

        scarce = too_few_rows(current, json.loads(exec_properties.get("min_rows") or "{}"))
        found: list[tuple[bool, str]] = [(True, line) for line in scarce]
        for split, anomalies in artifact_files.load_anomalies(anomalies_artifact.uri).items():
            found.extend(findings(split, anomalies))
        # Drift measured on a handful of rows is noise: with too few rows, that is all there is to say.
        if scarce:
            previous = {}
        for split, stats in current.items():
            if split in previous:
                drift = tfdv.validate_statistics(stats, schema, previous_statistics=previous[split])
                found.extend(findings(split, drift, drift_only=True))
        if previous:
            moved = numeric_drift.compare(
                list(current.values()), list(previous.values()), schema,
                settings.get("min_distance", 0.1), overrides,
            )
            found.extend((True, f"[all splits] {finding.line()}") for finding in moved)

        halting = [line for halts, line in found if halts]
        warnings = [line for halts, line in found if not halts]
        if halting:
            input_base = exec_properties["input_base"]
            where = describe_input(input_base, exec_properties["input_pattern"], examples)
            raise DataGateError(rejection_message(where, input_base, halting, warnings))
        validated = artifact_utils.get_single_instance(output_dict[VALIDATED_STATISTICS_KEY])
        io_utils.copy_dir(statistics.uri, validated.uri)
        validated.split_names = statistics.split_names
        validated.span = statistics.span


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "input_pattern": ExecutionParameter(type=str),
        # JSON: {split: minimum rows}.
        "min_rows": ExecutionParameter(type=str),
        # JSON: {"min_distance": float, "overrides": ["feature=distance" or "feature=off", ...]}.
        "numeric_drift": ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "baseline_statistics": ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True
        ),
    }
    OUTPUTS = {
        VALIDATED_STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
    }


class DataGate(base_component.BaseComponent):
    """Stops the pipeline on anomalies or drift; its output is the statistics of data that passed."""

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(DataGateExecutor)

    def __init__(
        self,
        examples: types.BaseChannel,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        anomalies: types.BaseChannel,
        input_base: str,
        input_pattern: str,
        min_rows: dict[str, int],
        numeric_drift_min_distance: float,
        numeric_drift_overrides: list[str],
        baseline_statistics: types.BaseChannel | None = None,
    ):
        super().__init__(
            spec=DataGateSpec(
                examples=examples,
                statistics=statistics,
                schema=schema,
                anomalies=anomalies,
                baseline_statistics=baseline_statistics,
                input_base=input_base,
                input_pattern=input_pattern,
                min_rows=json.dumps(min_rows, sort_keys=True),
                numeric_drift=json.dumps(
                    {"min_distance": numeric_drift_min_distance, "overrides": list(numeric_drift_overrides)},
                    sort_keys=True,
                ),
                validated_statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
            )
        )
