"""`pipeline plan`: what the next run would do with the code, data, schema and settings as they are now,
node by node (served from the cache, run, or a resolver resolving), and why; it runs nothing and writes
nothing.

Each node's cache key is computed as TFX's launcher computes it before it decides (the local and Beam
runners' `tfx/orchestration/portable/launcher.py`, `_prepare_execution`), with TFX's own functions: the
node's parameters (`inputs_utils.resolve_parameters_with_schema`), its custom driver's additions
(CsvExampleGen's: the span, version and fingerprint of the files it would read, by TFX's own driver), its
output artifacts (`outputs_utils.generate_output_artifacts`), its inputs as TFX's input resolution resolves
them (resolver strategies included: the data gate's baseline and the Evaluator's), then
`cache_utils.get_cache_context` over them all and `cache_utils.get_cached_outputs`.

What a run resolves from its own `pipeline_run` context (the outputs of the nodes before it in the same
run) is not in the store before the run: a node served from the cache outputs its cached artifacts, which
are put in those channels' place (`InputSpec.static_inputs`); a node that will run outputs new artifacts,
so every node that reads them will run too. The store is opened read-only, and the one write TFX's key
function makes (registering a key no execution has yet) is refused by `_ReadOnlyStore`.

Why a node will run comes from comparing the key's parts with the node's newest finished execution
(complete or cached): which input artifacts, execution properties (a module's content hash inside
`custom_config`, named by file from that run's record) or output properties (the input fingerprint)
differ. The rest of the key (the executor and its Beam args, the node's definition) is not in the store:
when nothing recorded differs, the plan says so.
"""

from __future__ import annotations

import dataclasses
import json

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.compiler import constants as compiler_constants
from tfx.dsl.compiler import placeholder_utils
from tfx.orchestration import data_types_utils
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import (
    cache_utils,
    data_types,
    inputs_utils,
    outputs_utils,
    python_driver_operator,
)
from tfx.proto.orchestration import pipeline_pb2

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.governance.runs import GovernanceError
from pipeline.metadata import events, run_record
from pipeline.metadata.store import connection_config

CACHED, WILL_RUN, RESOLVES, SKIPPED = "cached", "will run", "resolves", "skipped"
# The run id the plan binds the pipeline to: no run has it, so no past run's outputs resolve as this run's.
PLAN_RUN_ID = "pipeline-plan"
_RUN_CONTEXT = compiler_constants.PIPELINE_RUN_CONTEXT_TYPE_NAME
_FINISHED = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


class PlanError(GovernanceError):
    """A node's inputs could not be resolved as the run would resolve them."""


@dataclasses.dataclass
class NodePlan:
    node_id: str
    state: str  # CACHED, WILL_RUN, RESOLVES (a resolver: it resolves on every run, never cached) or SKIPPED
    reasons: list[str]
    cache_key: str | None = None  # The would-be execution_cache context's name, when the inputs are known.
    cached_from_run: str | None = None  # The run whose execution produced the outputs the cache serves.


class _WouldWrite(Exception):
    """TFX asked the store to write; `args` holds what it would have written."""


class _ReadOnlyStore:
    """A MetadataStore that reads and refuses every write: get_cache_context registers the key it computed
    when no execution has it yet, which is all the plan needs to know."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name: str):
        if name.startswith(("put_", "delete_")):
            def refuse(*args, **kwargs):
                raise _WouldWrite(name, *args)
            return refuse
        return getattr(self._store, name)


class _ReadOnlyHandle:
    """All that TFX's input resolution, cache functions and ExampleGen's driver use of a
    tfx.orchestration.metadata.Metadata: its `store`."""

    def __init__(self, store):
        self.store = _ReadOnlyStore(store)


def plan(config: configs.PipelineConfig, store: metadata_store.MetadataStore | None) -> list[NodePlan]:
    """The plan of the next run of `config`'s pipeline against `store` (opened read-only; None when there
    is none yet), one entry per node in the order the run runs them."""
    # With a read-only connection, which creates no directory for the store (the IR's connection is not
    # part of any cache key).
    readonly = connection_config(config, readonly=True, create=False)
    ir = pipeline_definition.for_run(pipeline_definition.compile_pipeline(config, readonly), PLAN_RUN_ID)
    deployment = runner_utils.extract_local_deployment_config(ir)
    # Each node's outputs in the planned run, by output key; None: new artifacts, not known before it runs.
    outputs: dict[str, dict | None] = {}
    plans = []
    for node in ir.nodes:
        pipeline_node = node.pipeline_node
        if pipeline_node.execution_options.HasField("skip"):
            continue
        node_id = pipeline_node.node_info.id
        if store is None:
            if runner_utils.extract_executor_spec(deployment, node_id):
                plans.append(NodePlan(node_id, WILL_RUN, ["no ML Metadata store yet: nothing is cached"]))
            else:
                plans.append(NodePlan(node_id, RESOLVES, ["no ML Metadata store yet: nothing to resolve"]))
            outputs[node_id] = None
            continue
        found, outputs[node_id] = _plan_node(store, ir, deployment, pipeline_node, outputs)
        plans.append(found)
    return plans


def _run_scoped_channels(pipeline_node: pipeline_pb2.PipelineNode):
    """(input key, producer node id, output key) of each input channel read from this run's own outputs."""
    for key, spec in pipeline_node.inputs.inputs.items():
        for channel in spec.channels:
            if any(query.type.name == _RUN_CONTEXT for query in channel.context_queries):
                yield key, channel.producer_node_query.id, channel.output_key


def _plan_node(store, ir, deployment, pipeline_node, outputs) -> tuple[NodePlan, dict | None]:
    node_id = pipeline_node.node_info.id
    resolvers = {node.pipeline_node.node_info.id for node in ir.nodes
                 if not runner_utils.extract_executor_spec(deployment, node.pipeline_node.node_info.id)}
    is_resolver = node_id in resolvers
    new = {
        (producer, output_key)
        for _, producer, output_key in _run_scoped_channels(pipeline_node)
        if outputs.get(producer) is None
    }
    if new:
        producers = sorted({producer for producer, _ in new})
        if is_resolver:
            return NodePlan(node_id, RESOLVES, [f"after {', '.join(producers)}, which will run"]), None
        running = [p for p in producers if p not in resolvers]
        if not running:  # Only a resolver after a node that will run: it resolves what is not there yet.
            return NodePlan(node_id, WILL_RUN, [f"{', '.join(producers)} resolves after a node that will run"]), None
        shown = ", ".join(f"{p} ({', '.join(sorted(k for q, k in new if q == p))})" for p in running)
        reasons = [f"new inputs from {shown}, which will run"]
        # Its own changes too, when its settings or module changed as well (the inputs are not there yet).
        previous = _newest_finished_execution(store, ir.pipeline_info.id, node_id)
        if previous is not None:
            found, _ = _property_differences(store, previous, _parameters(pipeline_node))
            reasons += _since(store, previous, found)
        return NodePlan(node_id, WILL_RUN, reasons), None

    handle = _ReadOnlyHandle(store)
    try:
        resolved = inputs_utils.resolve_input_artifacts(
            pipeline_node=_with_run_outputs(pipeline_node, outputs), metadata_handle=handle
        )
    except Exception as error:  # noqa: BLE001  (TFX wraps every resolution failure; the plan names the node)
        raise PlanError(f"cannot resolve the inputs of {node_id} as the run would: {error}") from error
    if isinstance(resolved, inputs_utils.Skip):
        return NodePlan(node_id, SKIPPED, ["its inputs resolve to nothing: the run skips it"]), None
    input_artifacts = resolved[0]
    if is_resolver:
        # A resolver's outputs are what it resolved (tfx/orchestration/portable/resolver_node_handler.py).
        return NodePlan(node_id, RESOLVES, [_describe_artifacts(input_artifacts)]), dict(input_artifacts)

    exec_properties = _parameters(pipeline_node)
    executor_spec = runner_utils.extract_executor_spec(deployment, node_id)
    # Properties given as placeholders over the inputs (none in this pipeline), as the launcher's step 4.
    exec_properties.update(inputs_utils.resolve_dynamic_parameters(
        node_parameters=pipeline_node.parameters,
        context=placeholder_utils.ResolutionContext(
            exec_info=data_types.ExecutionInfo(
                input_dict={key: list(value) for key, value in input_artifacts.items()},
                pipeline_node=pipeline_node,
                pipeline_info=ir.pipeline_info,
                pipeline_run_id=PLAN_RUN_ID,
                top_level_pipeline_run_id=ir.runtime_spec.top_level_pipeline_run_id,
            ),
            executor_spec=executor_spec,
        ),
    ))
    # The artifacts' URIs hold an execution id the run would get; get_cache_context blanks them.
    output_artifacts = outputs_utils.generate_output_artifacts(
        execution_id=0, outputs=pipeline_node.outputs.outputs, node_dir=""
    )
    driver_spec = runner_utils.extract_custom_driver_spec(deployment, node_id)
    if driver_spec:
        _apply_driver(driver_spec, handle, ir, pipeline_node, input_artifacts, output_artifacts, exec_properties)
    try:
        context = cache_utils.get_cache_context(
            metadata_handle=handle,
            pipeline_node=pipeline_node,
            pipeline_info=ir.pipeline_info,
            executor_spec=executor_spec,
            input_artifacts=input_artifacts,
            output_artifacts=output_artifacts,
            parameters=exec_properties,
        )
        key = context.name
        cached = cache_utils.get_cached_outputs(metadata_handle=handle, cache_context=context)
    except _WouldWrite as refused:  # No execution has this key: TFX would register it now.
        written = refused.args[1] if len(refused.args) > 1 else []
        key = written[0].name if refused.args[0] == "put_contexts" and written else None
        cached = None
    if not pipeline_node.execution_options.caching_options.enable_cache:
        return NodePlan(node_id, WILL_RUN, ["its cache is turned off"], key), None
    if cached is not None:
        return NodePlan(node_id, CACHED, [], key, _producing_run(store, cached)), dict(cached)
    previous = _newest_finished_execution(store, ir.pipeline_info.id, node_id)
    if previous is None:
        return NodePlan(node_id, WILL_RUN, ["no earlier execution"], key), None
    reasons = _differences(store, previous, input_artifacts, exec_properties, output_artifacts)
    return NodePlan(node_id, WILL_RUN, reasons, key), None


def _parameters(pipeline_node: pipeline_pb2.PipelineNode) -> dict:
    """The node's execution properties, as the launcher resolves them before its driver runs."""
    return data_types_utils.build_parsed_value_dict(
        inputs_utils.resolve_parameters_with_schema(node_parameters=pipeline_node.parameters)
    )


def _with_run_outputs(pipeline_node: pipeline_pb2.PipelineNode, outputs) -> pipeline_pb2.PipelineNode:
    """A copy of the node whose channels from this run's outputs name those artifacts (static inputs)."""
    bound = pipeline_pb2.PipelineNode()
    bound.CopyFrom(pipeline_node)
    scoped: dict[str, list[int]] = {}
    for key, producer, output_key in _run_scoped_channels(pipeline_node):
        scoped.setdefault(key, []).extend(a.id for a in outputs[producer].get(output_key, []))
    for key, artifact_ids in scoped.items():
        spec = bound.inputs.inputs[key]
        if len(spec.channels) != sum(1 for k, _, _ in _run_scoped_channels(pipeline_node) if k == key):
            raise PlanError(f"input {key} of {pipeline_node.node_info.id} mixes this run's outputs with others")
        del spec.channels[:]
        spec.static_inputs.SetInParent()
        spec.static_inputs.artifact_ids.extend(artifact_ids)
    return bound


def _apply_driver(driver_spec, handle, ir, pipeline_node, input_artifacts, output_artifacts, exec_properties):
    """Run the node's custom driver as the launcher does, and take its exec properties and outputs.

    As Launcher._update_with_driver_output, which is a method of a launcher this does not build; the
    driver's output URI (a directory the launcher creates under the pipeline root) is left out: ExampleGen's
    driver, the only one here, reads the input files and writes nothing."""
    driver_output = python_driver_operator.PythonDriverOperator(driver_spec, handle).run_driver(
        data_types.ExecutionInfo(
            input_dict=input_artifacts,
            output_dict=output_artifacts,
            exec_properties=exec_properties,
            pipeline_node=pipeline_node,
            pipeline_info=ir.pipeline_info,
        )
    )
    for key, artifact_list in driver_output.output_artifacts.items():
        artifact_class = output_artifacts[key][0].type
        updated = []
        for proto in artifact_list.artifacts:
            artifact = artifact_class()
            artifact.set_mlmd_artifact(proto)
            updated.append(artifact)
        output_artifacts[key] = updated
    for key, value in driver_output.exec_properties.items():
        exec_properties[key] = getattr(value, value.WhichOneof("value"))


def _describe_artifacts(artifacts: dict) -> str:
    shown = [f"{key} {', '.join(f'#{a.id}' for a in found) or '(none)'}" for key, found in sorted(artifacts.items())]
    return "to " + "; ".join(shown)


def _run_name(store, execution_id: int) -> str | None:
    run_type = store.get_context_type(_RUN_CONTEXT)
    for context in store.get_contexts_by_execution(execution_id):
        if run_type is not None and context.type_id == run_type.id:
            return context.name
    return None


def _producing_run(store, cached: dict) -> str | None:
    """The run whose execution first output the cached artifacts."""
    artifact_ids = [a.id for found in cached.values() for a in found]
    execution_ids = set(events.producers(store, artifact_ids).values())
    return _run_name(store, min(execution_ids)) if execution_ids else None


def _newest_finished_execution(store, pipeline_name: str, node_id: str) -> metadata_store_pb2.Execution | None:
    node_context = store.get_context_by_type_and_name(
        compiler_constants.NODE_CONTEXT_TYPE_NAME, f"{pipeline_name}.{node_id}"
    )
    if node_context is None:
        return None
    finished = [e for e in store.get_executions_by_context(node_context.id) if e.last_known_state in _FINISHED]
    return max(finished, key=lambda e: e.id) if finished else None


def _change(old, new) -> str:
    """`old -> new`, long values cut to where they first differ, 24 characters of each: a hash from its start, an
    input fingerprint (`split:single_split,num_files:1,total_bytes:193456,...`) from the differing field."""
    old, new = str(old), str(new)
    if len(old) <= 24 and len(new) <= 24:
        return f"{old} -> {new}"
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    start = max(old.rfind(",", 0, start) + 1, 0) if "," in old[:start] else 0

    def cut(text: str) -> str:
        return ("…" if start else "") + (text[start:start + 24] + "…" if len(text) > start + 24 else text[start:])

    return f"{cut(old)} -> {cut(new)}"


def _stored(value: metadata_store_pb2.Value):
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def _differences(store, previous, input_artifacts, exec_properties, output_artifacts) -> list[str]:
    """What differs between the would-be execution's key parts and the `previous` execution's record."""
    reasons = []
    old_inputs: dict[str, list[int]] = {}
    for event in events.inputs(store, [previous.id]):
        old_inputs.setdefault(events.key(event), []).append(event.artifact_id)
    for key in sorted(set(old_inputs) | set(input_artifacts)):
        old, new = sorted(old_inputs.get(key, [])), sorted(a.id for a in input_artifacts.get(key, []))
        if old != new:
            shown = ", ".join(f"#{i}" for i in old) or "none"
            reasons.append(f"input {key} changed: {_change(shown, ', '.join(f'#{i}' for i in new) or 'none')}")
    found, changed_properties = _property_differences(store, previous, exec_properties)
    reasons += found
    old_outputs = {a.id: a for a in store.get_artifacts_by_id(
        [e.artifact_id for e in events.outputs(store, [previous.id])])}
    old_by_key: dict[str, list] = {}
    for event in events.outputs(store, [previous.id]):
        old_by_key.setdefault(events.key(event), []).append(old_outputs[event.artifact_id])
    for key, artifacts in sorted(output_artifacts.items()):
        for artifact in artifacts[:1]:
            for name, value in sorted(artifact.mlmd_artifact.custom_properties.items()):
                old = [_stored(a.custom_properties[name])
                       for a in old_by_key.get(key, []) if name in a.custom_properties]
                if old and old[0] != _stored(value) and name not in changed_properties:
                    reasons.append(f"{name} of its {key} changed: {_change(old[0], _stored(value))}")
    if not reasons:
        reasons.append(
            "its cache key changed in what the store does not record (its executor and Beam args, its "
            "definition, or a module file's content)"
        )
    return _since(store, previous, reasons)


def _since(store, previous, reasons: list[str]) -> list[str]:
    """The reasons, the first saying which execution they compare with (by its run)."""
    run = _run_name(store, previous.id)
    since = f"since run {run}" if run else f"since execution {previous.id}"
    return [f"{reason} ({since})" if i == 0 else reason for i, reason in enumerate(reasons)]


def _property_differences(store, previous, exec_properties) -> tuple[list[str], set[str]]:
    """Lines for the execution properties that differ from `previous`'s, and their names."""
    reasons, changed = [], set()
    for name, value in sorted(exec_properties.items()):
        stored = previous.properties.get(name) or previous.custom_properties.get(name)
        if stored is None:  # Not recorded (a cached execution keeps only what it was registered with).
            continue
        new = data_types_utils.set_parameter_value(pipeline_pb2.Value(), value).field_value
        if stored != new:
            changed.add(name)
            reasons += _property_change(store, previous, name, _stored(stored), _stored(new))
    return reasons, changed


def _property_change(store, previous, name: str, old, new) -> list[str]:
    """Lines for one changed execution property; a JSON object's changed keys one by one."""
    try:
        old_json, new_json = json.loads(old), json.loads(new)
    except (TypeError, ValueError):
        old_json = new_json = None
    if not (isinstance(old_json, dict) and isinstance(new_json, dict)):
        return [f"{name} changed: {_change(old, new)}"]
    lines = []
    for key in sorted(set(old_json) | set(new_json)):
        if old_json.get(key) != new_json.get(key):
            # A key the proto or JSON leaves out (TrainArgs without num_steps at the full scale) is unset.
            before, after = (values[key] if key in values else "(unset)" for values in (old_json, new_json))
            line = f"{name}.{key} changed: {_change(before, after)}"
            if key == "module_fingerprint":
                files = _changed_module_files(store, previous) or "its module or a module it imports"
                line = f"{files} changed: {name}.{key} {_change(before, after)}"
            lines.append(line)
    return lines


def _changed_module_files(store, previous) -> str:
    """The files of the execution's module whose content differs from the record of the run it was in."""
    properties = previous.custom_properties
    module_file = _stored(properties["module_file"]) if "module_file" in properties else None
    run = _run_name(store, previous.id)
    context = store.get_context_by_type_and_name(_RUN_CONTEXT, run) if run else None
    if not module_file or context is None:
        return ""
    record = run_record.read_record(context)
    recorded = dict(record.get("task_files") or {})
    for name in ("transform_module", "trainer_module"):
        if record.get(f"{name}_file"):
            recorded[record[f"{name}_file"].rsplit("/", 1)[-1]] = record.get(f"{name}_sha256")
    try:
        changed = [
            path.name for path in pipeline_definition.module_sources(module_file)
            if path.name in recorded and run_record.file_sha256(path) != recorded[path.name]
        ]
    except (OSError, SyntaxError):  # Gone or unreadable now: the run will say so; the plan names no file.
        return ""
    return ", ".join(changed)


def format_plan(config: configs.PipelineConfig, plans: list[NodePlan]) -> str:
    runs = sum(p.state == WILL_RUN for p in plans)
    lines = [f"Plan for the next run of {config.pipeline_name}: {runs} of "
             f"{sum(p.state != RESOLVES for p in plans)} components will run, nothing run to find out"]
    for p in plans:
        detail = p.reasons[:1] or ([f"as in run {p.cached_from_run}"] if p.cached_from_run else [])
        lines.append(f"  {p.node_id:<32} {p.state:<9} {'; '.join(detail)}")
        lines += [f"  {'':<32} {'':<9} {reason}" for reason in p.reasons[1:]]
    return "\n".join(lines)
