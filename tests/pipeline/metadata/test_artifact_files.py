"""What artifact_files reads without the libraries that wrote the files, and the rule that decides whether
a recorded output can still be used.

TFMA's metrics and validation result are read as TFMA's own loaders read them, from files written by
TensorFlow's TFRecord writer, in a process that never loads TensorFlow; the evaluation is TFMA-shaped (a
candidate, a baseline and their differences, overall and on a slice, a failed change threshold), and the
report and `pipeline blessing` read the same functions on real evaluations in
tests/pipeline/governance/test_cli.py. The usability rule runs on folders laid out as TFX writes them
(tests/pipeline/guards/test_recovery.py checks it on a real run's outputs).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import json_format
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2, validation_result_pb2

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.metadata import artifact_files
from tests.conftest import PROJECT_ROOT
from tests.tfma_evaluations import write_evaluation


def _slice(column: str | None, value: str | None, metrics: dict[tuple[str, str], float]):
    found = metrics_for_slice_pb2.MetricsForSlice()
    if column:
        found.slice_key.single_slice_keys.add(column=column, bytes_value=value.encode())
    for (model, name), number in metrics.items():
        entry = found.metric_keys_and_values.add()
        entry.key.name = name
        entry.key.model_name = model
        entry.key.is_diff = model == "diff"
        if model == "diff":
            entry.key.model_name = "candidate"
        entry.value.double_value.value = number
    return found


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """An evaluation directory as TFMA's writer lays it out, its records written by TensorFlow."""
    root = tmp_path_factory.mktemp("evaluation")
    slices = [
        _slice(None, None, {("candidate", "auc"): 0.81, ("baseline", "auc"): 0.86, ("diff", "auc"): -0.05,
                            ("candidate", "example_count"): 359.0}),
        _slice("payment_type", "Cash", {("candidate", "auc"): 0.0, ("candidate", "example_count"): 120.0}),
    ]
    with tf.io.TFRecordWriter(str(root / "metrics-00000-of-00001.tfrecord")) as writer:
        for found in slices:
            writer.write(found.SerializeToString())
    result = validation_result_pb2.ValidationResult(validation_ok=False)
    failure = result.metric_validations_per_slice.add().failures.add()
    failure.metric_key.name = "auc"
    failure.metric_key.is_diff = True
    failure.metric_value.double_value.value = -0.05
    failure.metric_threshold.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
    failure.metric_threshold.change_threshold.absolute.value = -1e-10
    with tf.io.TFRecordWriter(str(root / "validations.tfrecord")) as writer:
        writer.write(result.SerializeToString())
    # Plots as TFMA's writer merges them: each model's plots in one PlotData, keyed without a name.
    plots = metrics_for_slice_pb2.PlotsForSlice()
    for model, true_positives in (("candidate", 30.0), ("baseline", 20.0)):
        entry = plots.plot_keys_and_values.add()
        entry.key.model_name = model
        entry.value.confusion_matrix_at_thresholds.matrices.add(threshold=0.5, true_positives=true_positives)
        entry.value.calibration_histogram_buckets.buckets.add(upper_threshold_exclusive=0.05)
    per_class = plots.plot_keys_and_values.add()
    per_class.key.model_name = "candidate"
    per_class.key.sub_key.class_id.value = 2
    per_class.value.confusion_matrix_at_thresholds.matrices.add(threshold=0.5, true_positives=7.0)
    with tf.io.TFRecordWriter(str(root / "plots-00000-of-00001.tfrecord")) as writer:
        writer.write(plots.SerializeToString())
    # The Trainer's scalars, as its TensorBoard writers write them (tf.summary in TF 2: rank-0 tensors).
    with tf.summary.create_file_writer(str(root / "model_run" / "validation")).as_default():
        for step, value in enumerate((0.5, 0.25)):
            tf.summary.scalar("epoch_loss", value, step=step)
    return root


def test_metrics_and_validation_are_what_tfma_reads(evaluation):
    ours = [m.SerializeToString() for m in artifact_files.load_metrics(str(evaluation))]
    assert ours == [m.SerializeToString() for m in tfma.load_metrics(str(evaluation))]
    assert (artifact_files.load_validation_result(str(evaluation)).SerializeToString()
            == tfma.load_validation_result(str(evaluation)).SerializeToString())
    assert artifact_files.BASELINE_KEY == tfma.BASELINE_KEY
    assert ([p.SerializeToString() for p in artifact_files.load_plots(str(evaluation))]
            == [p.SerializeToString() for p in tfma.load_plots(str(evaluation))])


_READ = """
import dataclasses, json, sys
from pipeline.metadata import artifact_files
uri = sys.argv[1]
print(json.dumps({
    "candidate": artifact_files.overall_metrics(uri),
    "baseline": artifact_files.overall_metrics(uri, baseline=True),
    "failures": artifact_files.blessing_failures(uri),
    "checks": [dataclasses.asdict(c) for c in artifact_files.threshold_checks(sys.argv[2], uri)],
    "plots": {model: {name: {field: str(type(value).__name__) for field, value in plots.items()}
                      for name, plots in artifact_files.slice_plots(uri, model == "baseline").items()}
              for model in ("candidate", "baseline")},
    "true_positives": [artifact_files.slice_plots(uri, baseline)["overall"]["confusion_matrix_at_thresholds"]
                       .matrices[0].true_positives for baseline in (False, True)],
    "curves": artifact_files.training_curves(uri + "/model_run"),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
                     ("tensorflow", "tensorflow_model_analysis", "tensorflow_data_validation", "tfx")),
}))
"""


def test_a_process_reads_them_without_loading_tensorflow_or_tfma(evaluation):
    (failed,) = artifact_files.load_validation_result(str(evaluation)).metric_validations_per_slice
    failure_threshold = failed.failures[0].metric_threshold
    eval_config = config_pb2.EvalConfig(metrics_specs=[config_pb2.MetricsSpec(metrics=[config_pb2.MetricConfig(
        class_name="AUC", per_slice_thresholds=[config_pb2.PerSliceMetricThreshold(
            slicing_specs=[config_pb2.SlicingSpec()], threshold=failure_threshold)])])])
    result = subprocess.run([sys.executable, "-c", _READ, str(evaluation), json_format.MessageToJson(eval_config)],
                            cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    read = json.loads(result.stdout)
    assert read["candidate"] == {"auc": 0.81, "example_count": 359.0}
    assert read["baseline"] == {"auc": 0.86}
    assert read["failures"] == [
        "auc (overall) 0.8100 against the blessed baseline's 0.8600: a change of -0.0500, the threshold "
        "allows no less than -0.0000"
    ]
    assert read["checks"] == [{"metric": "auc", "slice": "overall", "kind": "change",
                               "bound": "no decrease against the baseline", "value": 0.81, "baseline": 0.86,
                               "passed": False}]
    matrices = {"confusion_matrix_at_thresholds": "ConfusionMatrixAtThresholds"}
    assert read["plots"] == {
        "candidate": {"overall": {**matrices, "calibration_histogram_buckets": "CalibrationHistogramBuckets",
                                  "confusion_matrix_at_thresholds (class 2)": "ConfusionMatrixAtThresholds"}},
        "baseline": {"overall": {**matrices, "calibration_histogram_buckets": "CalibrationHistogramBuckets"}},
    }
    assert read["true_positives"] == [30.0, 20.0]
    assert read["curves"] == {"validation": {"epoch_loss": [[0, 0.5], [1, 0.25]]}}
    # Only TFMA's proto modules, loaded without its package (whose __init__ imports TFMA and TensorFlow).
    assert all(m.startswith("tensorflow_model_analysis.proto.") and m.endswith("_pb2") for m in read["loaded"]), read


# The taxi task's judgment: AUC overall and on Credit Card trips, each with a change bound.
SLICE_CONFIG = dict(blessing_lower_bound=0.7, blessing_max_decrease=0.0,
                    blessing_slice_thresholds='{"payment_type=Credit Card": {"lower_bound": 0.6, "max_decrease": 0.03}}')
CARD = (("payment_type", "Credit Card"),)
CASH = (("payment_type", "Cash"),)


def _judged(tmp_path, candidate, baseline=None) -> tuple[list, list[str]]:
    """(threshold checks as tuples, blessing failures) of an evaluation TFMA judged by the pipeline's config."""
    eval_config = pipeline_definition.create_eval_config(configs.load_config(**SLICE_CONFIG))
    write_evaluation(tmp_path, eval_config, candidate, baseline)
    recorded = json_format.MessageToJson(eval_config, preserving_proto_field_name=True)
    checks = [(c.slice, c.kind, c.value, c.baseline, c.result)
              for c in artifact_files.threshold_checks(recorded, str(tmp_path))]
    return checks, artifact_files.blessing_failures(str(tmp_path))


def test_every_threshold_is_checked_on_its_slice_with_the_values_tfma_compared(tmp_path):
    first = {"overall": {"auc": 0.95}, CARD: {"auc": 0.63}, CASH: {"auc": 0.0}}
    checks, failures = _judged(tmp_path / "first", first)
    # No baseline: TFX drops the change thresholds, which TFMA then does not apply.
    assert checks == [("overall", "value", 0.95, None, "pass"), ("overall", "change", 0.95, None, "not applied"),
                      ("payment_type=Credit Card", "value", 0.63, None, "pass"),
                      ("payment_type=Credit Card", "change", 0.63, None, "not applied")]
    assert failures == []

    # Better overall, worse on card trips: only the slice's thresholds fail, each with its own slice's values.
    worse_on_cards = {"overall": {"auc": 0.96}, CARD: {"auc": 0.58}}
    checks, failures = _judged(tmp_path / "second", worse_on_cards, first)
    assert checks == [("overall", "value", 0.96, 0.95, "pass"), ("overall", "change", 0.96, 0.95, "pass"),
                      ("payment_type=Credit Card", "value", 0.58, 0.63, "FAIL"),
                      ("payment_type=Credit Card", "change", 0.58, 0.63, "FAIL")]
    assert failures == [
        "auc (payment_type=Credit Card) 0.5800 is below the lower bound 0.6",
        "auc (payment_type=Credit Card) 0.5800 against the blessed baseline's 0.6300: a change of -0.0500, the "
        "threshold allows no less than -0.0300",
    ]

    # A decrease within the slice's bound passes.
    checks, failures = _judged(tmp_path / "third", {"overall": {"auc": 0.95}, CARD: {"auc": 0.61}}, first)
    assert [c[-1] for c in checks] == ["pass"] * 4 and failures == []


def test_a_judged_slice_missing_from_the_eval_split_fails_and_says_so(tmp_path):
    checks, failures = _judged(tmp_path, {"overall": {"auc": 0.95}, CASH: {"auc": 0.0}})
    assert checks[2] == ("payment_type=Credit Card", "value", None, None, "FAIL")
    assert failures == ["slice payment_type=Credit Card has no rows in the eval split, so its thresholds could not be met"]


def test_a_damaged_record_is_refused_with_its_path(evaluation, tmp_path):
    damaged = tmp_path / "metrics-00000-of-00001.tfrecord"
    data = bytearray((evaluation / damaged.name).read_bytes())
    data[20] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(artifact_files.UnreadableArtifact, match=f"{damaged}: a TFRecord's checksum is wrong"):
        artifact_files.load_metrics(str(tmp_path))
    damaged.write_bytes(bytes(data[:30]))
    with pytest.raises(artifact_files.UnreadableArtifact, match="truncated TFRecord"):
        artifact_files.load_metrics(str(tmp_path))


def artifact(uri: Path, splits: str | None = None, **custom: str | int) -> metadata_store_pb2.Artifact:
    recorded = metadata_store_pb2.Artifact(uri=str(uri))
    if splits is not None:
        recorded.properties["split_names"].string_value = splits
    for name, value in custom.items():
        if isinstance(value, int):
            recorded.custom_properties[name].int_value = value
        else:
            recorded.custom_properties[name].string_value = value
    return recorded


def write(path: Path, data: bytes = b"payload") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_examples_need_a_non_empty_file_in_every_recorded_split(tmp_path):
    examples = artifact(tmp_path, '["train", "eval"]')
    write(tmp_path / "Split-train" / "data_parquet-00000-of-00001.parquet")
    shard = write(tmp_path / "Split-eval" / "data_parquet-00000-of-00001.parquet")
    assert artifact_files.unusable(examples, "Examples") is None
    shard.write_bytes(b"")
    assert artifact_files.unusable(examples, "Examples") == (
        "Split-eval/data_parquet-00000-of-00001.parquet is empty"
    )
    shard.unlink()
    assert artifact_files.unusable(examples, "Examples") == "Split-eval/* is missing"
    assert artifact_files.unusable(artifact(tmp_path / "gone"), "Examples") == "its folder is gone"


def test_a_model_without_its_saved_model_is_unusable(tmp_path):
    model = artifact(tmp_path)
    write(tmp_path / "Format-Serving" / "variables" / "variables.index")
    assert artifact_files.unusable(model, "Model") == "Format-Serving/saved_model.pb is missing"
    write(tmp_path / "Format-Serving" / "saved_model.pb")
    assert artifact_files.unusable(model, "Model") is None


def test_empty_by_design_outputs_are_usable(tmp_path):
    # The Evaluator's verdict is an empty file; a model the Pusher did not push leaves an empty folder.
    write(tmp_path / "blessing" / "NOT_BLESSED", b"")
    assert artifact_files.unusable(artifact(tmp_path / "blessing"), "ModelBlessing") is None
    (tmp_path / "not_pushed").mkdir()
    assert artifact_files.unusable(artifact(tmp_path / "not_pushed", pushed=0), "PushedModel") is None
    assert artifact_files.unusable(artifact(tmp_path / "not_pushed", pushed=1), "PushedModel") == (
        "saved_model.pb is missing"
    )
    (tmp_path / "blessing" / "NOT_BLESSED").unlink()
    assert artifact_files.unusable(artifact(tmp_path / "blessing"), "ModelBlessing") == (
        "BLESSED or NOT_BLESSED is missing"
    )


def test_a_schema_that_no_longer_has_its_recorded_hash_is_unusable(tmp_path):
    text = b'feature { name: "fare" type: FLOAT }\n'
    schema_file = write(tmp_path / "schema.pbtxt", text)
    schema = artifact(tmp_path, schema_sha256=hashlib.sha256(text).hexdigest())
    assert artifact_files.unusable(schema, "Schema") is None
    schema_file.write_bytes(text.replace(b"FLOAT", b"INT"))
    assert artifact_files.unusable(schema, "Schema") == (
        f"schema.pbtxt changed since it was recorded (sha256 {hashlib.sha256(text).hexdigest()[:12]} then, "
        f"{hashlib.sha256(schema_file.read_bytes()).hexdigest()[:12]} now)"
    )


def test_a_type_without_a_known_payload_needs_only_its_folder(tmp_path):
    (tmp_path / "model_run").mkdir()
    assert artifact_files.unusable(artifact(tmp_path / "model_run"), "ModelRun") is None
