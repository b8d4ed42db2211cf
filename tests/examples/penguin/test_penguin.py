"""The penguin task (examples/penguin/) end to end: a second, multi-class task through the same pipeline,
gates, command and report, chosen by one setting (PIPELINE_TASK)."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipeline import configs
from pipeline.metadata import run_summary
from tests.conftest import PROJECT_ROOT, tensorboard_scalars
from tests.docs.commands import documented
from tests.orchestrator_checks import ALL_NODES, cli_json

pytestmark = pytest.mark.e2e

TASK = "examples.penguin.modules"
DATA = PROJECT_ROOT / "examples" / "penguin" / "data" / "penguins_processed.csv"


@dataclasses.dataclass
class PenguinRun:
    config: configs.PipelineConfig
    env: dict[str, str]
    output: str
    summary: run_summary.RunSummary


def _env(output_root: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "TAXI_"))}
    return {**env, "PIPELINE_TASK": TASK, "PIPELINE_OUTPUT_ROOT": str(output_root), "PIPELINE_TRAIN_STEPS": "100",
            "PIPELINE_EVAL_STEPS": "4", "PIPELINE_EPOCHS": "1", **more}


@pytest.fixture(scope="module")
def penguin(tmp_path_factory) -> PenguinRun:
    """`PIPELINE_TASK=examples.penguin.modules make run`, as docs/configuration.md shows it, with fewer steps."""
    command = documented("docs/configuration.md", "PIPELINE_TASK=examples.penguin.modules make run")
    assert command.env == {"PIPELINE_TASK": TASK}
    env = _env(tmp_path_factory.mktemp("penguin_output"))
    output = command.run(env).stdout
    config = configs.load_config(**configs.env_overrides(env))
    return PenguinRun(config, env, output, run_summary.summarize_latest_run(config, config.pipeline_name))


def _rows() -> list[dict[str, str]]:
    with open(DATA, newline="") as f:
        return list(csv.DictReader(f))


def test_the_task_setting_chooses_name_data_schema_and_modules(penguin):
    config = penguin.config
    assert config.pipeline_name == "penguin"
    assert Path(config.data_root) == DATA.parent
    assert Path(config.schema_path) == PROJECT_ROOT / "examples" / "penguin" / "schema" / "schema.pbtxt"
    assert Path(config.trainer_module_file).parent == PROJECT_ROOT / "examples" / "penguin" / "modules"
    assert Path(config.metadata_path).parent.name == "penguin"


def test_every_node_runs_and_the_model_is_blessed_by_accuracy(penguin):
    states = {run.node_id: run.state for run in penguin.summary.components}
    assert states == {node: "executed" for node in ALL_NODES}
    assert sum(penguin.summary.rows_per_split.values()) == len(_rows()) == 334
    assert penguin.summary.blessed is True and penguin.summary.pushed_to
    assert penguin.summary.eval_metrics["sparse_categorical_accuracy"] > 0.8


def test_per_class_metrics_are_shown_per_class(penguin):
    metrics = penguin.summary.eval_metrics
    for name in ("precision", "recall"):
        assert {f"{name} (class {i})" for i in range(3)} <= set(metrics)
    assert "precision (class 2)" in penguin.output and "binary_accuracy" not in metrics


def test_the_trainer_writes_its_history_as_tensorboard_scalars(penguin):
    model_run = penguin.summary.component("Trainer").output("model_run").uri
    history = json.loads(Path(model_run, "history.json").read_text())
    scalars = tensorboard_scalars(model_run)
    expected = {
        ("train", "epoch_loss"): history["loss"],
        ("train", "epoch_learning_rate"): [penguin.config.learning_rate],
        ("validation", "epoch_loss"): history["val_loss"],
        ("validation", "epoch_accuracy"): history["val_accuracy"],
    }
    assert set(scalars) == set(expected)
    for key, values in expected.items():
        assert scalars[key] == [(0, pytest.approx(values[0], rel=1e-6))], key


def test_the_pushed_model_names_the_species_of_raw_measurements(penguin):
    rows = _rows()
    examples = []
    for row in rows:
        example = tf.train.Example()
        for key, value in row.items():
            if key != "species":
                example.features.feature[key].float_list.value.append(float(value))
        examples.append(example.SerializeToString())
    model = tf.saved_model.load(penguin.summary.pushed_to)
    probabilities = model.signatures["serving_default"](examples=tf.constant(examples))["outputs"].numpy()
    assert probabilities.shape == (len(rows), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = np.mean(np.argmax(probabilities, axis=1) == np.array([int(row["species"]) for row in rows]))
    assert accuracy > 0.8


def test_the_command_and_the_report_read_the_penguin_runs(penguin, capsys, tmp_path):
    [run] = cli_json(capsys, penguin.config, "runs")["runs"]
    assert run["record"]["task"] == TASK and "task.py" in run["record"]["task_files"]
    # The penguin task's blessing metric, not the default task's.
    assert run["blessing_metric"]["name"] == "sparse_categorical_accuracy"
    assert run["blessing_metric"]["value"] == penguin.summary.eval_metrics["sparse_categorical_accuracy"]
    report = tmp_path / "penguin.html"
    documented("docs/configuration.md", "PIPELINE_TASK=examples.penguin.modules .venv/bin/pipeline report latest -o "
               "penguin.html").replace("penguin.html", str(report)).run(penguin.env, timeout=300)
    page = report.read_text()
    # Per-class metrics named by the task's classes, not their ids.
    assert "sparse_categorical_accuracy" in page and "precision (Chinstrap)" in page and "(class 1)" not in page
    # TFMA's confusion matrix of the most probable species, from the run's own evaluation (with this project's
    # changes to TFMA installed): its counts are the eval rows, its diagonal the accuracy TFMA computed.
    matrix = re.search(r'id="view-confusion-matrix-overall">(.*?)</figure>', page, re.S).group(1)
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", matrix)]
    assert {"Adelie", "Chinstrap", "Gentoo"} <= set(texts)
    counts = [int(t.replace(",", "")) for t in texts if re.fullmatch(r"[0-9,]+", t)]
    metrics = penguin.summary.eval_metrics
    assert len(counts) == 9 and sum(counts) == metrics["example_count"]
    assert sum(counts[0::4]) / sum(counts) == pytest.approx(metrics["sparse_categorical_accuracy"], abs=1e-6)
    # Charts and tables follow the task's metrics: no AUC, which a three-class task does not compute.
    assert not re.search(r"\bauc\b", page.split("<body>", 1)[1], re.IGNORECASE)


def test_a_species_outside_the_schema_stops_the_run_at_the_gate(penguin, tmp_path):
    rows = _rows()
    rows[0]["species"] = "5"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "penguins.csv").write_text(out.getvalue())
    env = {**penguin.env, "PIPELINE_DATA_ROOT": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "pipeline" / "runners" / "local_runner.py")],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "column 'species': Out-of-range values" in result.stderr
    assert len(list(Path(penguin.config.serving_model_dir).iterdir())) == 1
