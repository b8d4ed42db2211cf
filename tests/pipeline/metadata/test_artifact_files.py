"""TFMA's metrics and validation result, read without TFMA: what TFMA's own loaders read, from files written by
TensorFlow's TFRecord writer, in a process that never loads TensorFlow.

The evaluation is TFMA-shaped (a candidate, a baseline and their differences, overall and on a slice, a
failed change threshold); the report and `pipeline blessing` read the same functions on real evaluations in
tests/pipeline/governance/test_cli.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2, validation_result_pb2

from pipeline.metadata import artifact_files
from tests.conftest import PROJECT_ROOT


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
    return root


def test_metrics_and_validation_are_what_tfma_reads(evaluation):
    ours = [m.SerializeToString() for m in artifact_files.load_metrics(str(evaluation))]
    assert ours == [m.SerializeToString() for m in tfma.load_metrics(str(evaluation))]
    assert (artifact_files.load_validation_result(str(evaluation)).SerializeToString()
            == tfma.load_validation_result(str(evaluation)).SerializeToString())
    assert artifact_files.BASELINE_KEY == tfma.BASELINE_KEY


_READ = """
import json, sys
from pipeline.metadata import artifact_files
uri = sys.argv[1]
print(json.dumps({
    "candidate": artifact_files.overall_metrics(uri),
    "baseline": artifact_files.overall_metrics(uri, baseline=True),
    "failures": artifact_files.blessing_failures(uri),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
                     ("tensorflow", "tensorflow_model_analysis", "tensorflow_data_validation", "tfx")),
}))
"""


def test_a_process_reads_them_without_loading_tensorflow_or_tfma(evaluation):
    result = subprocess.run([sys.executable, "-c", _READ, str(evaluation)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    read = json.loads(result.stdout)
    assert read["candidate"] == {"auc": 0.81, "example_count": 359.0}
    assert read["baseline"] == {"auc": 0.86}
    assert read["failures"] == [
        "auc (overall) 0.8100 against the blessed baseline's 0.8600: a change of -0.0500, the threshold "
        "allows no less than -0.0000"
    ]
    # Only TFMA's proto modules, loaded without its package (whose __init__ imports TFMA and TensorFlow).
    assert all(m.startswith("tensorflow_model_analysis.proto.") and m.endswith("_pb2") for m in read["loaded"]), read


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
