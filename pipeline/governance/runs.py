"""Which runs happened and what each did, and the rollbacks between them: read from ML Metadata.

Everything in governance/ is read from the store and the serving directory, never from a runner's
memory, so the answers are the same whichever orchestrator wrote the store. What came first is read from
MLMD's execution ids, which grow with each write, never from clock times or run names: a clock stepped
back, or two runs started in one millisecond, leave the newest run first.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.metadata import artifact_files, events, run_record, run_summary

ROLLBACK_TYPE = "Rollback"
# `pipeline promote`: a blessed model published into the production serving directory.
PROMOTION_TYPE = "Promotion"


class GovernanceError(Exception):
    """A question the store cannot answer as asked; the message says why."""


class BadArgument(GovernanceError):
    """A well-formed argument that names something unusable (an output file that cannot be written, a
    host name that does not resolve, a file that is not a store): the `pipeline` command exits 2 on it, as
    on a malformed one."""


def producing_execution(store, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that first output the artifact (later cached executions reuse it)."""
    return events.producer(store, artifact_id)


def timestamp(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def property_value(properties, name):
    """A property's value whatever its type, or None."""
    if name not in properties:
        return None
    field = properties[name].WhichOneof("value")
    return getattr(properties[name], field) if field else None


@dataclasses.dataclass
class RunInfo:
    name: str
    context_id: int
    started_ms: int
    # The id of its first execution: orders runs, rollbacks and promotions by when they started.
    first_execution_id: int
    seconds: float
    status: str
    components: list[run_summary.ComponentRun]
    record: dict
    blessed: bool | None
    pushed_version: str | None
    # The task's blessing metric and the run's model's value of it on the whole eval split (None: no model
    # was evaluated); set by `with_blessing_metric`, which reads the Evaluator's files.
    blessing_metric: tuple[str, float | None] | None = None

    def as_dict(self) -> dict:
        return {
            "run": self.name,
            "context_id": self.context_id,
            "started": timestamp(self.started_ms),
            "seconds": round(self.seconds, 1),
            "status": self.status,
            "blessed": self.blessed,
            "pushed_version": self.pushed_version,
            "blessing_metric": (
                {"name": self.blessing_metric[0], "value": self.blessing_metric[1]} if self.blessing_metric else None
            ),
            "record": self.record,
            "components": [
                {"node": c.node_id, "state": c.state, "seconds": round(c.seconds, 1)} for c in self.components
            ],
        }


@dataclasses.dataclass
class RollbackInfo:
    execution: metadata_store_pb2.Execution
    model_id: int | None
    pushed: metadata_store_pb2.Artifact | None

    def prop(self, name):
        found = property_value(self.execution.properties, name)
        return found if found is not None else property_value(self.execution.custom_properties, name)


def pipeline_context(store: metadata_store.MetadataStore, pipeline_name: str) -> metadata_store_pb2.Context:
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        names = [c.name for c in store.get_contexts_by_type("pipeline")]
        hint = f"; pipelines in this store: {', '.join(names)}" if names else "; the store holds no runs"
        raise GovernanceError(f"pipeline {pipeline_name!r} has never run against this store{hint}")
    return context


def list_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[RunInfo]:
    """Every run of the pipeline, newest first."""
    pipeline_context(store, pipeline_name)
    runs = []
    for context in store.get_contexts_by_type("pipeline_run"):
        components = run_summary.component_runs(store, context, pipeline_name)
        components = [c for c in components if c.node_id != "?"]
        if not components:
            continue
        start = min(c.execution.create_time_since_epoch for c in components)
        end = max(c.execution.last_update_time_since_epoch for c in components)
        # A run resumed after a failure (Luigi, Airflow task retries) holds the failed execution too:
        # each node's newest execution says how the run stands.
        newest = {c.node_id: c for c in components}
        states = {c.state for c in newest.values()}
        status = next((s for s in ("failed", "running", "canceled") if s in states), "complete")
        blessing = next((c.output("blessing") for c in components if c.output("blessing")), None)
        blessed = property_value(blessing.custom_properties, "blessed") if blessing else None
        pushed = next((c.output("pushed_model") for c in components if c.output("pushed_model")), None)
        pushed_version = (
            property_value(pushed.custom_properties, "pushed_version")
            if pushed is not None and property_value(pushed.custom_properties, "pushed")
            else None
        )
        runs.append(
            RunInfo(
                name=context.name,
                context_id=context.id,
                started_ms=start,
                first_execution_id=min(c.execution.id for c in components),
                seconds=(end - start) / 1000.0,
                status=status,
                components=components,
                record=run_record.read_record(context),
                blessed=None if blessed is None else bool(blessed),
                pushed_version=pushed_version,
            )
        )
    return sorted(runs, key=lambda r: r.first_execution_id, reverse=True)


def run_task(record: dict, config: configs.PipelineConfig) -> configs.Task:
    """The task a run ran, from its record (the configured task for a run recorded without one)."""
    try:
        return configs.load_task(record.get("task") or config.task)
    except configs.ConfigError:  # The run's task package is gone from this checkout.
        return config.task_spec


def blessing_metric_name(record: dict, config: configs.PipelineConfig) -> str:
    """The blessing metric of the task a run ran (run_task)."""
    return run_task(record, config).blessing_metric


def with_blessing_metric(run: RunInfo, config: configs.PipelineConfig) -> RunInfo:
    """The run with its model's value of the blessing metric of the task it ran (from its record; the
    configured task's for a run recorded without one), read from TFMA's files with protobuf alone."""
    metric = blessing_metric_name(run.record, config)
    evaluation = next(
        (c.output("evaluation") for c in reversed(run.components) if c.output("evaluation")), None
    )
    value = None
    if evaluation is not None:
        try:
            value = artifact_files.overall_metrics(evaluation.uri).get(metric)
        except (OSError, artifact_files.UnreadableArtifact):  # Its files are gone or damaged: no value.
            value = None
    return dataclasses.replace(run, blessing_metric=(metric, value))


def list_rollbacks(store: metadata_store.MetadataStore, type_name: str = ROLLBACK_TYPE) -> list[RollbackInfo]:
    """Every rollback (or, with PROMOTION_TYPE, every promotion) recorded in the store, newest first."""
    if not _has_execution_type(store, type_name):
        return []
    executions = store.get_executions_by_type(type_name)
    found = []
    for execution in executions:
        model_id = next((e.artifact_id for e in events.inputs(store, [execution.id])), None)
        pushed_id = next((e.artifact_id for e in events.outputs(store, [execution.id])), None)
        pushed = store.get_artifacts_by_id([pushed_id])[0] if pushed_id else None
        found.append(RollbackInfo(execution, model_id, pushed))
    return sorted(found, key=lambda r: r.execution.id, reverse=True)


def _has_execution_type(store, name: str) -> bool:
    return any(t.name == name for t in store.get_execution_types())


def find_run(store: metadata_store.MetadataStore, pipeline_name: str, run: str) -> RunInfo:
    """A run by its name, its context id, or `latest`."""
    runs = list_runs(store, pipeline_name)
    if not runs:
        raise GovernanceError(f"pipeline {pipeline_name!r} has no recorded run")
    if run == "latest":
        return runs[0]
    for info in runs:
        if run in (info.name, str(info.context_id)):
            return info
    known = ", ".join(r.name for r in runs[:5])
    raise GovernanceError(f"no run {run!r} of {pipeline_name!r}; recent runs: {known}")


def trainer_logs(store: metadata_store.MetadataStore, pipeline_name: str, run: str) -> tuple[RunInfo, str]:
    """The run and the folder of its Trainer's TensorBoard logs (its `model_run` output); for `latest`, the
    newest run that has one (a run stopped at the data gate trained nothing)."""
    runs = list_runs(store, pipeline_name) if run == "latest" else [find_run(store, pipeline_name, run)]
    for info in runs:
        found = [c.output("model_run") for c in info.components if c.node_id == "Trainer" and c.output("model_run")]
        if found:
            log_dir = found[-1].uri
            break
    else:
        if run == "latest":
            raise GovernanceError(f"no run of {pipeline_name!r} has trained a model yet")
        raise GovernanceError(f"run {runs[0].name} trained no model (it stopped before the Trainer)")
    if "://" not in log_dir:  # Local: check it now rather than serve an empty page.
        if not os.path.isdir(log_dir):
            raise GovernanceError(f"the Trainer's output of run {info.name} is gone: {log_dir}")
        if not any(".tfevents." in name for _, _, files in os.walk(log_dir) for name in files):
            raise GovernanceError(
                f"the Trainer of run {info.name} wrote no TensorBoard logs (its trainer module writes none, or "
                f"predates them): {log_dir}"
            )
    return info, log_dir
