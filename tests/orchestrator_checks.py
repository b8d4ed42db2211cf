"""Checks shared by the end-to-end tests of every runner: what a run left in ML Metadata, read as users read it."""

from __future__ import annotations

import json

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.components import data_gate
from pipeline.governance import cli
from pipeline.metadata import run_summary
from pipeline.metadata.store import connection_config, open_store

ALL_NODES = {
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "CuratedSchemaImporter",
    "ExampleValidator",
    data_gate.BASELINE_RESOLVER_ID,
    data_gate.DATA_GATE_ID,
    "Transform",
    "Trainer",
    pipeline_definition.RESOLVER_ID,
    "Evaluator",
    "Pusher",
}
# What an unchanged re-run takes from the cache: every component; the resolvers and the data gate run on
# every run (the gate checks drift against the statistics it passed last time).
CACHED_WHEN_UNCHANGED = ALL_NODES - {
    pipeline_definition.RESOLVER_ID,
    data_gate.BASELINE_RESOLVER_ID,
    data_gate.DATA_GATE_ID,
}


def states_of_run(config: configs.PipelineConfig, run_id: str) -> dict[str, list[str]]:
    """Every node's execution states in pipeline run `run_id`, oldest first."""
    store = open_store(connection_config(config))
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    assert context is not None, f"no pipeline run {run_id!r} in {config.metadata_path}"
    found: dict[str, list[str]] = {}
    for run in run_summary.component_runs(store, context, config.pipeline_name):
        found.setdefault(run.node_id, []).append(run.state)
    return found


def cli_json(capsys, config: configs.PipelineConfig, *args: str):
    """`pipeline <args> --format json` against the run's store and serving directory."""
    capsys.readouterr()
    # A MySQL store comes from the environment (PIPELINE_METADATA_MYSQL_*); --metadata-path names SQLite.
    store = [] if config.metadata_mysql_host else ["--metadata-path", config.metadata_path]
    code = cli.main([
        *args, "--format", "json", *store,
        "--serving-model-dir", config.serving_model_dir, "--pipeline-name", config.pipeline_name,
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)
