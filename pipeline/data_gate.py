"""The data gate: a pipeline node that stops the run when the new data breaks the curated schema.

ExampleValidator only writes its anomalies (into MLMD, as an ExampleAnomalies artifact); the pipeline
would go on and train. The gate reads those anomalies, adds TFDV's drift check against the statistics of
the last data that passed the gate (the drift comparators are in the curated schema), and fails with one
message naming the data, each split, column and problem. Transform depends on the gate, so Transform,
Trainer, Evaluator and Pusher never run on rejected data. Failing, rather than conditional execution,
stops every runner alike (local, Beam, Airflow, Kubeflow), and the failed run is visible in each.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from pipeline import run_summary

DATA_GATE_ID = "DataGate"
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


def input_files(input_base: str, input_pattern: str) -> list[str]:
    if not os.path.isdir(input_base):
        return []
    return sorted(name for name in os.listdir(input_base) if fnmatch.fnmatch(name, input_pattern))


def rejection_message(
    input_base: str, input_pattern: str, span: int, lines: list[str], warnings: list[str]
) -> str:
    files = ", ".join(input_files(input_base, input_pattern)) or input_pattern
    parts = [
        f"data gate: the data in {input_base} (files {files}; span {span}) has {len(lines)} "
        "problem(s) against the curated schema; Transform, Trainer, Evaluator and Pusher did not run",
        *(f"  {line}" for line in lines),
    ]
    if warnings:
        parts.append("Warnings (not halting):")
        parts.extend(f"  {line}" for line in warnings)
    parts.append(
        "Fix the data, or if the change is intended, update the curated schema (make schema-candidate "
        "shows SchemaGen's inference to compare)."
    )
    return "\n".join(parts)


class DataGateExecutor(base_executor.BaseExecutor):
    """Judges ExampleValidator's anomalies and drift; passes the statistics on as the next baseline."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        import tensorflow_data_validation as tfdv

        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        anomalies_artifact = artifact_utils.get_single_instance(input_dict["anomalies"])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        )
        baselines = input_dict.get("baseline_statistics") or []
        current = run_summary.load_statistics(statistics.uri)
        previous = run_summary.load_statistics(baselines[0].uri) if baselines else {}

        found: list[tuple[bool, str]] = []
        for split, anomalies in run_summary.load_anomalies(anomalies_artifact.uri).items():
            found.extend(findings(split, anomalies))
        for split, stats in current.items():
            if split in previous:
                drift = tfdv.validate_statistics(stats, schema, previous_statistics=previous[split])
                found.extend(findings(split, drift, drift_only=True))

        halting = [line for halts, line in found if halts]
        warnings = [line for halts, line in found if not halts]
        if halting:
            raise DataGateError(
                rejection_message(
                    exec_properties["input_base"],
                    exec_properties["input_pattern"],
                    statistics.span,
                    halting,
                    warnings,
                )
            )
        validated = artifact_utils.get_single_instance(output_dict[VALIDATED_STATISTICS_KEY])
        io_utils.copy_dir(statistics.uri, validated.uri)
        validated.split_names = statistics.split_names
        validated.span = statistics.span


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "input_pattern": ExecutionParameter(type=str),
    }
    INPUTS = {
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
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        anomalies: types.BaseChannel,
        input_base: str,
        input_pattern: str,
        baseline_statistics: types.BaseChannel | None = None,
    ):
        super().__init__(
            spec=DataGateSpec(
                statistics=statistics,
                schema=schema,
                anomalies=anomalies,
                baseline_statistics=baseline_statistics,
                input_base=input_base,
                input_pattern=input_pattern,
                validated_statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
            )
        )
