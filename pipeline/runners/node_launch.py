"""Run one node of the compiled pipeline for one pipeline run: the building block of the task-per-node
orchestrators (Airflow, Luigi).

TFX's LocalDagRunner launches every node of the compiled IR in one loop; an orchestrator that schedules
each node as its own task needs the same launch for a single node, plus the graph to wire its tasks
and a way to ask ML Metadata whether a node already succeeded in a run. Each launch goes through TFX's
portable launcher against the pipeline's own MLMD store, so caching, lineage and the `pipeline_run`
and `node` contexts are exactly those of the local runner, and the `pipeline` CLI reads them
whichever orchestrator wrote them. What a run does around its nodes (the input check, the store's lease,
the record) is pipeline/runners/lifecycle.py's.
"""

from __future__ import annotations

import functools
import os

from absl import logging
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.compiler import constants as compiler_constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import launcher
from tfx.proto.orchestration import pipeline_pb2

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.metadata.store import open_store

# Execution states that mean "this node is done for the run" (a cache hit is done too).
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


@functools.lru_cache(maxsize=4)
def compile_pipeline(config: configs.PipelineConfig) -> pipeline_pb2.Pipeline:
    """The pipeline's IR (pipeline.compile_pipeline), cached per configuration, since every task of a run
    needs it: treat the result as read-only."""
    return pipeline_definition.compile_pipeline(config)


def upstream_node_ids(ir: pipeline_pb2.Pipeline) -> dict[str, list[str]]:
    """Each node's direct upstream nodes, in the IR's topological order."""
    return {
        node.pipeline_node.node_info.id: list(node.pipeline_node.upstream_nodes) for node in ir.nodes
    }


def _connection_config(ir: pipeline_pb2.Pipeline):
    deployment = runner_utils.extract_local_deployment_config(ir)
    connection = deployment.metadata_connection_config
    return getattr(connection, connection.WhichOneof("connection_config")), deployment


def launch(ir: pipeline_pb2.Pipeline, node_id: str, run_id: str) -> None:
    """Launch one node for `run_id` as LocalDagRunner would; raises when the node fails.

    The node's inputs are resolved from MLMD, so its upstream nodes must have succeeded in this run.
    """
    bound = pipeline_definition.for_run(ir, run_id)
    nodes = {node.pipeline_node.node_info.id: node.pipeline_node for node in bound.nodes}
    if node_id not in nodes:
        raise KeyError(f"pipeline {bound.pipeline_info.id!r} has no node {node_id!r}; nodes: {', '.join(nodes)}")
    connection_config, deployment = _connection_config(bound)
    node_launcher = launcher.Launcher(
        pipeline_node=nodes[node_id],
        mlmd_connection=metadata.Metadata(connection_config),
        pipeline_info=bound.pipeline_info,
        pipeline_runtime_spec=bound.runtime_spec,
        executor_spec=runner_utils.extract_executor_spec(deployment, node_id),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
    )
    # The same records LocalDagRunner logs, so progress.component_progress reports them alike.
    logging.info("Component %s is running.", node_id)
    node_launcher.launch()
    if not node_succeeded(connection_config, bound.pipeline_info.id, run_id, node_id):
        # The driver skipped the execution: its inputs were not there (an upstream node has not run).
        raise RuntimeError(
            f"{node_id} did not run in pipeline run {run_id!r}: its inputs are missing; run its "
            "upstream nodes in this run first"
        )
    logging.info("Component %s is finished.", node_id)


def node_succeeded(
    connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str, run_id: str, node_id: str
) -> bool:
    """Whether `node_id` has a finished or cached execution in pipeline run `run_id`."""
    if connection.HasField("sqlite") and not os.path.exists(connection.sqlite.filename_uri):
        return False
    store = open_store(connection)
    run_context = store.get_context_by_type_and_name(
        compiler_constants.PIPELINE_RUN_CONTEXT_TYPE_NAME, run_id
    )
    node_context = store.get_context_by_type_and_name(
        compiler_constants.NODE_CONTEXT_TYPE_NAME, f"{pipeline_name}.{node_id}"
    )
    if run_context is None or node_context is None:
        return False
    in_node = {e.id for e in store.get_executions_by_context(node_context.id)}
    return any(
        e.id in in_node and e.last_known_state in _DONE
        for e in store.get_executions_by_context(run_context.id)
    )

