"""The whole pipeline on a sample of the data with the local runner, run as a user runs it.

One sequence of real runs (first run, unchanged re-run, re-run after a module edit: the `local_runs`
fixture, shared with the CLI tests), then the tfx CLI, feeds several focused tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2

from pipeline import pipeline as pipeline_definition
from pipeline.components import data_gate
from pipeline.governance import lineage
from pipeline.governance.serving import resolve_model
from pipeline.metadata import artifact_files, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import (
    PROJECT_ROOT,
    predict_through_both_signatures,
    run_command,
    run_local_pipeline,
)
from tests.docs.commands import documented, run_together
from tests.orchestrator_checks import (
    ALL_NODES,
    CACHED_WHEN_UNCHANGED,
    FLOAT_SUM_METRICS,
    evaluation_metrics,
    execution_artifacts,
    float_sum_approx,
    node_execution,
)

pytestmark = pytest.mark.e2e


def _summary(config):
    return run_summary.summarize_latest_run(
        connection_config(config), config.pipeline_name
    )


@pytest.fixture(scope="module")
def runs(local_runs):
    return local_runs


def states(summary: run_summary.RunSummary) -> dict[str, str]:
    return {run.node_id: run.state for run in summary.components}


def test_first_run_executes_every_component_and_pushes_a_blessed_model(runs, sample_rows):
    first = runs.summaries[0]
    assert states(first) == {node: "executed" for node in ALL_NODES}
    assert sum(first.rows_per_split.values()) == len(sample_rows)
    assert set(first.rows_per_split) == {"train", "eval"}
    assert first.rows_per_split["train"] > 2 * first.rows_per_split["eval"]
    assert first.eval_metrics["auc"] > 0.6
    assert first.blessed is True
    assert Path(first.pushed_to, "saved_model.pb").is_file()
    assert Path(first.pushed_to).parent == Path(runs.config.serving_model_dir)


def test_run_prints_progress_and_a_closing_summary(runs):
    output = runs.outputs[0]
    for node in ("CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert f"{node:<32} started" in output
        assert f"{node:<32} finished in " in output
    assert "Rows read: " in output
    assert "Anomalies against the curated schema: 0" in output
    assert "Eval metrics (overall): " in output and "auc " in output
    assert "Blessed: yes" in output
    assert f"Pushed to: {runs.summaries[0].pushed_to}" in output
    # Every threshold TFMA judged, the Credit Card slice's too; the first model had no baseline to compare.
    assert "Blessing thresholds (TFMA's verdict on each):" in output
    assert re.search(r"^  auc \(payment_type=Credit Card\) 0\.\d{4}, at least 0: pass$", output, re.M), output
    assert ("  auc (payment_type=Credit Card): a decrease of at most 1 against the baseline: not applied (no baseline: "
            "the first model judged)") in output.splitlines()
    # The retrained model's run compares it with the first on that slice.
    assert re.search(r"^  auc \(payment_type=Credit Card\) 0\.\d{4} against the baseline's 0\.\d{4}, change "
                     r"[+-]0\.\d{4}, a decrease of at most 1 against the baseline: pass$", runs.outputs[2], re.M)
    # A component served from the cache says so as it finishes, as the summary does.
    rerun = runs.outputs[1]
    for node in CACHED_WHEN_UNCHANGED:
        assert re.search(rf"^\d\d:\d\d:\d\d {node} +cached$", rerun, re.MULTILINE), node
        assert not re.search(rf"^\d\d:\d\d:\d\d {node} +finished in", rerun, re.MULTILINE), node
    # Every run ends naming its full log and the command that writes its report, which works as printed.
    logs = sorted(Path(runs.config.output_root, "logs", runs.config.pipeline_name).glob("*-local.log"))
    for output, summary, log in zip(runs.outputs, runs.summaries, logs):
        report = runs.config.report_file(summary.run_id)
        assert output.splitlines()[-2:] == [f"Log: {log}", f"Report: pipeline report {summary.run_id} -o {report}"]
    # Without -o, the report goes to the same file, under the output root, never the current directory.
    latest = _summary(runs.config).run_id
    wrote = documented("docs/runs-lineage-reports.md", "pipeline report latest").run(runs.env).stdout
    report = Path(runs.config.report_file(latest))
    assert wrote == f"wrote {report}\n" and report.read_text().startswith("<!DOCTYPE html>")
    assert report.parent == Path(runs.config.output_root, "reports", runs.config.pipeline_name)


# Every line a clean run may print: what it reads, each component's progress, the closing summary (and, under
# `make run`, make's echo of the command it runs).
CLEAN_RUN_LINES = (
    r"\.venv/bin/python pipeline/runners/local_runner\.py",
    r"\d\d:\d\d:\d\d Input: .+ \(.+; \d+ files?, [\d,]+ rows\)",
    r"\d\d:\d\d:\d\d \S+ +(started|finished in \d+\.\ds|cached|running for \d+(m\d\d)?s)",
    r"Run \S+ of pipeline \S+:",
    r"  \S+ +(executed|cached) +\d+\.\ds",
    r"Rows read: (\w+ [\d,]+(, )?)+",
    r"Anomalies against the curated schema: 0",
    r"Eval metrics \(overall\): .+",
    r"Blessing thresholds \(TFMA's verdict on each\):",
    r"  \S+ \(.+\)( [\d.]+)?.*: (pass|FAIL|not applied \(no baseline: the first model judged\))",
    r"Blessed: (yes|no)",
    r"Not blessed because: .+",
    r"Pushed to: \S+",
    r"Pushed: no, the blessed model is already serving: \S+",
    r"Pushed: no, nothing changed since an earlier run pushed this model as \S+",
    r"Not judged again: an earlier run evaluated model \d+ against the same baseline, and its verdict stands",
    r"Log: \S+\.log",
    r"Report: pipeline report \S+ -o \S+\.html",
)


def test_a_clean_run_prints_nothing_a_user_cannot_act_on_and_keeps_the_full_log(runs):
    """No warning, deprecation notice or TensorFlow C++ line between the progress lines: a clean run says
    what it read, what ran, and what came of it; what TFX, Beam and TensorFlow logged is in its log file."""
    for output, errors in zip(runs.outputs, runs.errors):
        assert errors == ""
        stray = [line for line in output.splitlines() if not any(re.fullmatch(p, line) for p in CLEAN_RUN_LINES)]
        assert not stray, stray
    logs = sorted(Path(runs.config.output_root, "logs", runs.config.pipeline_name).glob("*-local.log"))
    assert len(logs) == 3
    full = logs[0].read_text()
    assert "Component Transform is finished." in full and "WARNING" in full


def test_lineage_links_the_pushed_model_to_examples_schema_and_transform_graph(runs):
    store = open_store(connection_config(runs.config))
    pushed = runs.summaries[0].component("Pusher").output("pushed_model")
    ancestors = {(a.type_name, a.producer) for a in lineage.upstream(store, pushed.id)}
    assert ("Model", "Trainer") in ancestors
    assert ("ModelBlessing", "Evaluator") in ancestors
    assert ("TransformGraph", "Transform") in ancestors
    # The Trainer reads ExampleGen's examples through the transform graph; Transform writes no copy.
    assert ("Examples", "Transform") not in ancestors
    assert ("Examples", "CsvExampleGen") in ancestors
    assert ("Schema", pipeline_definition.CURATED_SCHEMA_ID) in ancestors


def test_pushed_model_predicts_raw_rows_through_both_signatures(runs, sample_rows):
    model = tf.saved_model.load(runs.summaries[0].pushed_to)
    from_examples, from_raw = predict_through_both_signatures(model, sample_rows[:25])
    assert from_examples.shape == (25, 1)
    assert ((from_examples > 0) & (from_examples < 1)).all()
    np.testing.assert_allclose(from_examples, from_raw, rtol=1e-5, atol=1e-6)




def test_unchanged_rerun_is_served_from_cache(runs):
    second = states(runs.summaries[1])
    assert {node: second[node] for node in CACHED_WHEN_UNCHANGED} == {
        node: "cached" for node in CACHED_WHEN_UNCHANGED
    }
    # The Evaluator's baseline is that of the candidate's first judgment (none), so it too is cached, and
    # says so; and with it the Pusher, which writes no new version.
    assert second["Evaluator"] == second["Pusher"] == "cached"
    model = runs.summaries[1].component("Trainer").output("model").id
    assert f"Not judged again: an earlier run evaluated model {model} against the same baseline" in runs.outputs[1]
    assert second[data_gate.DATA_GATE_ID] == "executed"
    assert runs.summaries[1].run_id != runs.summaries[0].run_id


def test_editing_the_trainer_module_invalidates_only_what_uses_it(runs):
    third = states(runs.summaries[2])
    for node in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform"):
        assert third[node] == "cached", node
    assert third["Trainer"] == "executed"
    assert third["Evaluator"] == "executed"
    assert third["Pusher"] == "executed"
    # The summary reports the new candidate's metrics, not the baseline's (the first run's model).
    assert runs.summaries[2].eval_metrics["auc"] != runs.summaries[0].eval_metrics["auc"]
    # The retrained model was judged against the model it replaces: the first run's, serving until then.
    store, name = open_store(runs.config, readonly=True), runs.config.pipeline_name
    third_run, first_run = runs.summaries[2].run_id, runs.summaries[0].run_id
    assert _node_io(store, name, third_run, "Evaluator", "INPUT") == {
        "model": _node_io(store, name, third_run, "Trainer", "OUTPUT")["model"],
        "baseline_model": _node_io(store, name, first_run, "Trainer", "OUTPUT")["model"],
        "examples": _node_io(store, name, first_run, "CsvExampleGen", "OUTPUT")["examples"],
    }


def test_the_evaluator_gives_tfmas_metrics_with_features_dropped_examples_grouped_and_on_parquet(runs, tmp_path, monkeypatch):
    """The retrained model's evaluation (with a baseline: two models' features per batch) ran through the
    pipeline's extractors on Parquet examples. TFX's Evaluator on the same inputs gives the same metrics
    and the same blessing: with TFMA's default extractors (nothing dropped before TFMA unbatches, examples
    not grouped by slice; after the stage that serializes the rows, which TFMA's defaults cannot do
    without on Parquet), and on the same rows written as tf.Examples by CsvExampleGen (TFX's default
    payload). Bit for bit, but for sums of float predictions: grouped by slice, the examples reach a
    slice's sums in another order (slice_groups.py)."""
    from tfx.proto import example_gen_pb2
    from tfx.types import artifact_utils, standard_artifacts

    from pipeline.components import eval_extractors
    from pipeline.upstream import slice_groups
    from pipeline.components import csv_example_gen

    inputs, properties, outputs = _evaluator_inputs(runs)
    assert properties["module_path"] == eval_extractors.__name__
    assert set(inputs) == {"examples", "model", "baseline_model"}
    assert list(Path(artifact_utils.get_split_uri(inputs["examples"], "eval")).glob("*.parquet"))

    # The same rows as tf.Examples: CsvExampleGen's executor with the run's own input and splits.
    store = open_store(runs.config, readonly=True)
    example_gen = node_execution(store, runs.config.pipeline_name, runs.summaries[0].run_id, "CsvExampleGen")  # cached later
    tf_examples = standard_artifacts.Examples()
    tf_examples.uri = str(tmp_path / "tf_examples")
    csv_example_gen.Executor().Do(
        {},
        {"examples": [tf_examples]},
        {
            **{key: example_gen.custom_properties[key].string_value for key in ("input_base", "input_config", "output_config")},
            "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        },
    )
    variants = {
        "TFMA's extractors": (inputs, lambda extracts, *_: extracts, lambda *_: False),
        "tf.Examples": ({**inputs, "examples": [tf_examples]}, eval_extractors.keep_named_features, slice_groups.supported),
    }
    results = {}
    for variant, (variant_inputs, keep, grouped) in variants.items():
        monkeypatch.setattr(eval_extractors, "keep_named_features", keep)
        monkeypatch.setattr(slice_groups, "supported", grouped)
        evaluation, blessed = _run_evaluator(variant_inputs, properties, tmp_path / variant)
        results[variant] = (evaluation_metrics(evaluation), blessed)
    ran = evaluation_metrics(outputs["evaluation"][0].uri)
    assert len(ran) > 30 and {key[2] for key in ran} == {"candidate", "baseline"}
    assert sorted(p.name for p in Path(outputs["blessing"][0].uri).iterdir()) == ["BLESSED"]
    for variant, (metrics, blessed) in results.items():
        assert set(metrics) == set(ran), variant
        for key, value in metrics.items():
            if key[1] in FLOAT_SUM_METRICS:
                expected = float_sum_approx(ran[key].double_value.value)
                assert value.double_value.value == expected, (variant, key)
            else:
                assert value.SerializeToString() == ran[key].SerializeToString(), (variant, key)
        assert blessed == ["BLESSED"], variant


def _run_evaluator(inputs: dict, properties: dict, folder: Path) -> tuple[str, list[str]]:
    """TFX's Evaluator executor on these inputs and exec properties: (its evaluation's folder, the names in
    its blessing's folder)."""
    # TFX's executor and artifact classes: only the tests that run the executor directly load them.
    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts

    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    for artifact, name in ((evaluation, "evaluation"), (blessing, "blessing")):
        artifact.uri = str(folder / name)
        Path(artifact.uri).mkdir(parents=True)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=[], tmp_dir=str(folder / "tmp"))
    evaluator_executor.Executor(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    return evaluation.uri, sorted(p.name for p in Path(blessing.uri).iterdir())


def _evaluator_inputs(runs) -> tuple[dict, dict, dict]:
    """The retrained model's run's Evaluator: (its inputs, candidate and baseline; the exec properties its
    executor was given, as recorded; its outputs)."""
    store, name = open_store(runs.config, readonly=True), runs.config.pipeline_name
    execution = node_execution(store, name, runs.summaries[2].run_id, "Evaluator")
    inputs, outputs = execution_artifacts(store, execution)
    properties = {key: value.string_value for key, value in execution.custom_properties.items() if key in (
        "eval_config", "example_splits", "fairness_indicator_thresholds", "module_path")}
    return inputs, properties, outputs


def test_the_evaluator_judges_the_credit_card_slice_by_its_own_threshold(runs):
    for summary in (runs.summaries[0], runs.summaries[2]):
        result = artifact_files.load_validation_result(summary.component("Evaluator").output("evaluation").uri)
        assert result.validation_ok
        checked = {json_format.MessageToJson(d.slicing_spec, indent=None): d.num_matching_slices
                   for d in result.validation_details.slicing_details}
        assert checked == {"{}": 1, '{"featureValues": {"payment_type": "Credit Card"}}': 1}


def test_a_candidate_failing_only_its_slice_threshold_is_not_blessed(runs, tmp_path):
    """The retrained model judged again with the Credit Card slice's lower bound just above its AUC there, every
    other threshold as the run had it: TFMA refuses it, and the reason names the slice with its values."""
    ran = runs.summaries[2].component("Evaluator").output("evaluation").uri
    card_auc = artifact_files.slice_metrics(ran)["payment_type=Credit Card"]["auc"]
    bound = math.ceil(card_auc * 1000 + 1) / 1000
    stricter = dataclasses.replace(runs.config, blessing_slice_thresholds=json.dumps(
        {"payment_type=Credit Card": {"lower_bound": bound, "max_decrease": 1.0}}))
    inputs, properties, _ = _evaluator_inputs(runs)
    eval_config = json_format.MessageToJson(pipeline_definition.create_eval_config(stricter))
    evaluation, blessing = _run_evaluator(inputs, {**properties, "eval_config": eval_config}, tmp_path)
    assert blessing == ["NOT_BLESSED"]
    assert artifact_files.blessing_failures(evaluation) == [
        f"auc (payment_type=Credit Card) {card_auc:.4f} is below the lower bound {bound:g}"]
    assert artifact_files.overall_metrics(evaluation)["auc"] >= runs.config.blessing_lower_bound


def test_a_rollback_stays_through_an_unchanged_rerun(runs, tmp_path):
    """A rollback withdraws a blessed model; the next run with nothing changed must not push it back,
    through `tfx run create` as through `make run`."""
    config, name = runs.config, runs.config.pipeline_name
    # The Pusher's cache key holds the serving path, so this runs in the shared store's own folder, on a
    # copy put there, and the shared store is put back after (other tests read it as the fixture left it).
    output_root = Path(config.output_root)
    saved = output_root.with_name(output_root.name + "-saved")
    shutil.copytree(output_root, saved)
    trainer_file = runs.modules_dir / "trainer_module.py"
    edited_trainer = trainer_file.read_text()
    original_trainer = (PROJECT_ROOT / "modules" / "trainer_module.py").read_text()
    try:
        store = open_store(config)
        models = [_node_io(store, name, runs.summaries[i].run_id, "Trainer", "OUTPUT")["model"] for i in (0, 2)]
        live = resolve_model(store, config.serving_model_dir, "serving")[1].id
        [target] = [m for m in models if m != live]
        cli = str(Path(sys.executable).parent / "pipeline")
        run_command([cli, "rollback", str(target), "--reason", "test"], runs.env)
        versions = sorted(p.name for p in Path(config.serving_model_dir).iterdir())
        tfx_env = {**runs.env, "LOCAL_HOME": str(tmp_path / "local_home")}
        run_together([documented("docs/runners.md", 'eval "$(pipeline env)"'), documented(
            "docs/runners.md", "tfx pipeline create --engine local --pipeline_path pipeline/runners/local_runner.py"
        ), documented("docs/runners.md", "tfx run create --engine local --pipeline_name chicago-taxi")], tfx_env)
        rerun = states(_summary(config))
        assert {node: rerun[node] for node in CACHED_WHEN_UNCHANGED} == {
            node: "cached" for node in CACHED_WHEN_UNCHANGED
        }
        assert sorted(p.name for p in Path(config.serving_model_dir).iterdir()) == versions
        assert resolve_model(open_store(config), config.serving_model_dir, "serving")[1].id == target

        # The module put back as the first run had it: the Trainer's cache hands over the model serving
        # now. It was judged when first trained and is not judged again, least of all against the model
        # the rollback withdrew (which would record the serving model as not blessed).
        trainer_file.write_text(original_trainer)
        output = documented("README.md", "make run").run(runs.env).stdout
        summary = _summary(config)
        assert summary.component("Trainer").output("model").id == target
        assert states(summary)["Evaluator"] == states(summary)["Pusher"] == "cached"
        assert f"Not judged again: an earlier run evaluated model {target} against the same baseline" in output
        assert summary.blessed is True and "Blessed: yes" in output
        assert sorted(p.name for p in Path(config.serving_model_dir).iterdir()) == versions
        assert resolve_model(open_store(config), config.serving_model_dir, "serving")[1].id == target
    finally:
        trainer_file.write_text(edited_trainer)
        shutil.rmtree(output_root)
        saved.rename(output_root)


def _node_io(store, pipeline_name: str, run_id: str, node: str, kind: str) -> dict[str, int]:
    """{key: artifact id} of one node's inputs (`INPUT`) or outputs (`OUTPUT`) in a pipeline run."""
    execution = node_execution(store, pipeline_name, run_id, node)
    wanted = getattr(metadata_store_pb2.Event, kind)
    return {
        e.path.steps[0].key: e.artifact_id
        for e in store.get_events_by_execution_ids([execution.id])
        if e.type == wanted
    }


# What TensorFlow and the Google clients print as the tfx CLI loads them, unless told not to.
TFX_CLI_NOISE = re.compile(
    r"tensorflow/|external/local_(tsl|xla)|cuda|cuFFT|cuDNN|cuBLAS|TensorRT|oneDNN|rebuild TensorFlow|Warning", re.I
)


def test_tfx_cli_creates_and_runs_the_pipeline(runs, tmp_path):
    env = {**runs.env, "LOCAL_HOME": str(tmp_path / "local_home")}
    quiet = documented("docs/runners.md", 'eval "$(pipeline env)"')
    created = run_together([quiet, documented(
        "docs/runners.md", "tfx pipeline create --engine local --pipeline_path pipeline/runners/local_runner.py"
    )], env)
    assert f'Pipeline "{runs.config.pipeline_name}" created successfully.' in created.stdout
    assert (tmp_path / "local_home" / runs.config.pipeline_name / "pipeline_args.json").is_file()
    ran = run_together([quiet, documented("docs/runners.md", "tfx run create --engine local --pipeline_name chicago-taxi")], env)
    assert "Transform" in ran.stdout and "Blessed:" in ran.stdout
    for result in (created, ran):
        noise = [line for line in (result.stdout + result.stderr).splitlines() if TFX_CLI_NOISE.search(line)]
        assert not noise, noise
    summary = _summary(runs.config)
    assert summary.run_id not in {s.run_id for s in runs.summaries}
    assert states(summary)["Transform"] == "cached"
