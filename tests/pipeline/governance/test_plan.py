"""`pipeline plan` against what the run after it does.

One store, six real runs: before the first (no store yet), with nothing changed, then after each kind of
change: the data, the curated schema, the transform module, a setting. Before each run the plan is printed
as a user prints it; the run must then execute exactly the components the plan said would run (a resolver
always executes) and serve the others from the cache, under the cache keys the plan computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.metadata import run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import copy_modules, read_rows, run_local_pipeline, small_run_env, write_rows
from tests.docs.commands import documented

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).parent / "pipeline")
# What the run summary says of a component the plan gave each state.
RUN_STATE = {"cached": "cached", "will run": "executed", "resolves": "executed"}


@dataclasses.dataclass
class Step:
    plan: dict  # `pipeline plan --format json`, printed before the run
    text: str  # `pipeline plan`, as the docs show it (before the transform module's edit only)
    summary: run_summary.RunSummary  # what the run then did
    cache_keys: dict[str, str]  # each component's execution_cache context in the run

    def node(self, node_id: str) -> dict:
        return next(n for n in self.plan["nodes"] if n["node_id"] == node_id)

    def planned(self, state: str) -> set[str]:
        return {n["node_id"] for n in self.plan["nodes"] if n["state"] == state}


def _tree(root: Path) -> dict[str, str]:
    """Every file under root with its SHA-256: what a command that writes nothing leaves as it was."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _cache_keys(config: configs.PipelineConfig, summary: run_summary.RunSummary) -> dict[str, str]:
    store = open_store(config, readonly=True)
    cache_type = store.get_context_type("execution_cache")
    return {
        component.node_id: context.name
        for component in summary.components
        for context in store.get_contexts_by_execution(component.execution.id)
        if context.type_id == cache_type.id
    }


@pytest.fixture(scope="module")
def steps(tmp_path_factory, sample_data_dir) -> dict[str, Step]:
    root = tmp_path_factory.mktemp("plan")
    data = root / "data"
    shutil.copytree(sample_data_dir, data)
    modules_dir = copy_modules(root / "user" / "modules")
    schema = root / "schema.pbtxt"
    shutil.copy(configs.load_config().schema_path, schema)
    output = root / "output"
    env = {**small_run_env(data, output, modules_dir), "PIPELINE_SCHEMA_PATH": str(schema),
           "PIPELINE_BLESSING_MAX_DECREASE": "1.0"}
    config = configs.load_config(**configs.env_overrides(env))
    rows = read_rows(data / "data.csv")
    transform_file = modules_dir / "transform_module.py"

    def full_scale():
        # Every training row, in a pass of 4096-row batches: no steps (they would be refused).
        env["PIPELINE_SCALE"] = "full"
        del env["PIPELINE_TRAIN_STEPS"]

    changes = {
        "first": lambda: None,
        "unchanged": lambda: None,
        "data": lambda: write_rows(data / "data.csv", rows + rows[:40]),
        "schema": lambda: schema.write_text(schema.read_text() + "\n# edited by the test\n"),
        "transform": lambda: transform_file.write_text(transform_file.read_text() + "\n# edited by the test\n"),
        "setting": full_scale,
    }
    found = {}
    for name, change in changes.items():
        change()
        before = _tree(output) if output.exists() else {}
        answer = subprocess.run([CLI, "plan", "--format", "json"], env=env, capture_output=True, text=True, timeout=300)
        assert answer.returncode == 0 and answer.stderr == "", (name, answer.stderr[-4000:])
        # The plan as the docs show it, once (each call is some 6 s, most of it importing TFX and TFMA).
        text = documented("docs/runs-lineage-reports.md", "pipeline plan").run(env).stdout if name == "transform" else ""
        # The plan ran nothing and wrote nothing: not the store, not a directory under the pipeline root.
        assert (_tree(output) if output.exists() else {}) == before, name
        run_local_pipeline(env)
        summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
        found[name] = Step(json.loads(answer.stdout), text, summary, _cache_keys(config, summary))
    return found


@pytest.mark.parametrize("name", ["first", "unchanged", "data", "schema", "transform", "setting"])
def test_the_run_does_what_the_plan_said(steps, name):
    step = steps[name]
    planned = {n["node_id"]: RUN_STATE[n["state"]] for n in step.plan["nodes"]}
    done = {c.node_id: c.state for c in step.summary.components}
    assert planned == done
    # The keys are TFX's own: the run filed each component it ran or took from the cache under the key the
    # plan computed (a node after one that will run has none: its inputs do not exist yet).
    keyed = {n["node_id"]: n["cache_key"] for n in step.plan["nodes"] if n["cache_key"]}
    assert keyed == {node: step.cache_keys[node] for node in keyed}
    assert keyed or name == "first"
    for node in step.plan["nodes"]:
        assert node["state"] == "cached" or node["reasons"], node


def test_before_the_first_run_everything_will_run(steps):
    step = steps["first"]
    assert step.planned("resolves") == {"validated_statistics_resolver", "baseline_model_resolver"}
    assert step.planned("will run") == {c.node_id for c in step.summary.components} - step.planned("resolves")
    assert step.node("Trainer")["reasons"] == ["no ML Metadata store yet: nothing is cached"]


def test_unchanged_only_the_data_gate_runs_against_the_data_it_passed_last(steps):
    step = steps["unchanged"]
    assert step.planned("will run") == {"DataGate"}
    # The first run's gate had no data passed before it; this one compares with what that run passed.
    assert step.node("DataGate")["reasons"][0].startswith("input baseline_statistics changed: none -> #")


def test_changed_data_reruns_from_example_gen_and_keeps_the_schema(steps):
    step = steps["data"]
    assert step.node("CsvExampleGen")["reasons"][0].startswith("input_fingerprint of its examples changed: ")
    assert step.node("CuratedSchemaImporter")["state"] == "cached"
    assert step.node("StatisticsGen")["reasons"] == ["new inputs from CsvExampleGen (examples), which will run"]


def test_an_edited_schema_reruns_what_reads_it(steps):
    step = steps["schema"]
    assert step.node("CuratedSchemaImporter")["reasons"][0].startswith("schema_sha256 changed: ")
    assert step.planned("cached") == {"CsvExampleGen", "StatisticsGen", "SchemaGen"}
    assert step.node("Transform")["reasons"] == [
        "new inputs from CuratedSchemaImporter (schema), which will run"]


def test_an_edited_transform_module_is_named(steps):
    step = steps["transform"]
    reason = step.node("Transform")["reasons"][0]
    assert reason.startswith("transform_module.py changed: custom_config.module_fingerprint "), reason
    assert step.node("Trainer")["reasons"] == [
        "new inputs from Transform (transform_graph), which will run"]
    assert step.planned("will run") == {"DataGate", "Transform", "Trainer", "Evaluator", "Pusher"}
    line = next(line for line in step.text.splitlines() if line.strip().startswith("Transform "))
    assert "will run  transform_module.py changed" in line, step.text


def test_a_changed_setting_reruns_the_trainer_and_what_follows(steps):
    step = steps["setting"]
    reasons = step.node("Trainer")["reasons"]
    assert [reason.split(" (since run ")[0] for reason in reasons] == [
        "custom_config.batch_size changed: 128 -> 4096", "train_args.num_steps changed: 60 -> (unset)"], reasons
    assert step.planned("will run") == {"DataGate", "Trainer", "Evaluator", "Pusher"}


def test_the_full_scale_trains_on_every_row_of_the_training_split(steps):
    """The Trainer's own record of the rows it trained on: the whole split once (PIPELINE_EPOCHS is 1 in
    the suite's runs), against 60 batches of 128 at the sample scale."""
    trained = {}
    for name in ("transform", "setting"):
        model_run = steps[name].summary.component("Trainer").output("model_run")
        trained[name] = json.loads(Path(model_run.uri, "training.json").read_text())["rows"]
    assert trained["transform"] == 60 * 128
    assert trained["setting"] == steps["setting"].summary.rows_per_split["train"] > 1000
