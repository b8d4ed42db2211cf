"""What TFX's artifacts hold, read from their files: statistics, anomalies, evaluation metrics and the
Evaluator's reasons. Every reader of artifact contents (the closing summary, the data gate, the report,
the notebook, the `pipeline` command) goes through here.

Nothing here imports TensorFlow, TFDV or TFMA: the files are protobufs (TFMA's in TFRecord files), read
with protobuf alone, so that a command that only shows them starts in a second, not ten.
"""

from __future__ import annotations

import functools
import glob
import importlib
import importlib.util
import os
import struct
import sys
import types

import google_crc32c
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

# TFMA's name for the baseline model's metrics in an evaluation with a baseline (tfma.BASELINE_KEY).
BASELINE_KEY = "baseline"
_TFMA = "tensorflow_model_analysis"


class UnreadableArtifact(ValueError):
    """An artifact file that is not what its producer writes (truncated, corrupted, or missing)."""


def int_property(artifact: metadata_store_pb2.Artifact, name: str) -> int | None:
    """An integer property of an artifact, declared or custom (TFX 1.16 writes an Examples artifact's
    span and version as custom properties; reading `Artifact.span` then answers 0 whatever the span)."""
    for properties in (artifact.properties, artifact.custom_properties):
        if name in properties:
            return properties[name].int_value
    return None


def _per_split(uri: str, file_name: str, message_type):
    """The binary proto `file_name` of each `Split-<name>` folder of an artifact, by split name."""
    if not os.path.isdir(uri):
        return {}
    protos = {}
    for name in sorted(os.listdir(uri)):
        if name.startswith("Split-"):
            proto = message_type()
            with open(os.path.join(uri, name, file_name), "rb") as f:
                proto.ParseFromString(f.read())
            protos[name.removeprefix("Split-")] = proto
    return protos


def load_statistics(statistics_uri: str) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    """StatisticsGen's statistics of each split."""
    return _per_split(statistics_uri, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList)


def load_anomalies(anomalies_uri: str) -> dict[str, anomalies_pb2.Anomalies]:
    """ExampleValidator's anomalies of each split."""
    return _per_split(anomalies_uri, "SchemaDiff.pb", anomalies_pb2.Anomalies)


def rows_per_split(statistics_uri: str) -> dict[str, int]:
    """Rows counted by StatisticsGen in each split."""
    return {
        split: sum(dataset.num_examples for dataset in stats.datasets)
        for split, stats in load_statistics(statistics_uri).items()
    }


def anomalies_per_split(anomalies_uri: str) -> dict[str, list[str]]:
    """ExampleValidator's findings per split, one line per feature."""
    found = {}
    for split, anomalies in load_anomalies(anomalies_uri).items():
        lines = [
            f"{feature}: {info.short_description or info.description}"
            for feature, info in sorted(anomalies.anomaly_info.items())
        ]
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"(dataset): {anomalies.dataset_anomaly_info.description}")
        found[split] = lines
    return found


def metric_name(key) -> str:
    """A TFMA metric's name as summaries show it: a per-class value (one-vs-rest) carries its class id,
    so that the values of different classes never overwrite each other."""
    if key.HasField("sub_key"):
        sub_key = key.sub_key
        if sub_key.HasField("class_id"):
            return f"{key.name} (class {sub_key.class_id.value})"
        if sub_key.HasField("top_k"):
            return f"{key.name} (top {sub_key.top_k.value})"
        if sub_key.HasField("k"):
            return f"{key.name} (k {sub_key.k.value})"
    return key.name


@functools.cache
def tfma_protos() -> types.SimpleNamespace:
    """TFMA's config, metrics and validation-result proto modules, without importing TFMA.

    `import tensorflow_model_analysis.proto.x_pb2` runs TFMA's package `__init__`, which imports all of TFMA
    and TensorFlow; the `*_pb2` modules need protobuf only. When TFMA is not loaded, they are loaded
    under stand-ins for its two packages, which are dropped again, so a later real import of TFMA runs
    as usual (protobuf accepts the same file descriptor twice).
    """
    names = ("config_pb2", "metrics_for_slice_pb2", "validation_result_pb2")
    if _TFMA in sys.modules:
        return types.SimpleNamespace(**{n: importlib.import_module(f"{_TFMA}.proto.{n}") for n in names})
    package_dir = os.path.dirname(importlib.util.find_spec(_TFMA).origin)
    for name, path in ((_TFMA, package_dir), (f"{_TFMA}.proto", os.path.join(package_dir, "proto"))):
        stand_in = types.ModuleType(name)
        stand_in.__path__ = [path]
        sys.modules[name] = stand_in
    try:
        return types.SimpleNamespace(**{n: importlib.import_module(f"{_TFMA}.proto.{n}") for n in names})
    finally:
        for name in [m for m in sys.modules if m == _TFMA or m.startswith(_TFMA + ".")]:
            del sys.modules[name]


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecords(path: str):
    """The records of an uncompressed TFRecord file (as TFMA writes them), each checked against its CRCs.

    The framing is a little-endian uint64 length, the length's masked CRC-32C, the data, the data's masked
    CRC-32C (TensorFlow's record_writer).
    """
    with open(path, "rb") as f:
        while header := f.read(12):
            if len(header) < 12:
                raise UnreadableArtifact(f"{path}: truncated TFRecord header")
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                raise UnreadableArtifact(f"{path}: not a TFRecord file (the length's checksum is wrong)")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise UnreadableArtifact(f"{path}: truncated TFRecord")
            if _masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise UnreadableArtifact(f"{path}: a TFRecord's checksum is wrong")
            yield data


def _evaluation_records(evaluation_uri: str, kind: str) -> list[bytes]:
    """The records of TFMA's `kind` files (metrics, validations) in an evaluation, as its loaders find
    them: `<kind>*.tfrecord`, else `<kind>*` (files written without the suffix)."""
    prefix = os.path.join(glob.escape(evaluation_uri), kind)
    paths = sorted(glob.glob(prefix + "*.tfrecord")) or sorted(glob.glob(prefix + "*"))
    return [record for path in paths for record in tfrecords(path)]


def load_metrics(evaluation_uri: str) -> list:
    """TFMA's MetricsForSlice of each slice in an evaluation (what `tfma.load_metrics` reads)."""
    message = tfma_protos().metrics_for_slice_pb2.MetricsForSlice
    return [message.FromString(record) for record in _evaluation_records(evaluation_uri, "metrics")]


def load_validation_result(evaluation_uri: str):
    """TFMA's ValidationResult of an evaluation (what `tfma.load_validation_result` reads)."""
    records = _evaluation_records(evaluation_uri, "validations")
    if len(records) != 1:
        raise UnreadableArtifact(f"{evaluation_uri}: expected one validation result, found {len(records)}")
    return tfma_protos().validation_result_pb2.ValidationResult.FromString(records[0])


def overall_metrics(evaluation_uri: str, baseline: bool = False) -> dict[str, float]:
    """The candidate model's (or the blessed baseline's) metrics on the whole eval split."""
    metrics = {}
    for slice_metrics in load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for key_and_value in slice_metrics.metric_keys_and_values:
            key = key_and_value.key
            # With a baseline, TFMA also records the baseline's metrics and the differences.
            if key.is_diff or (key.model_name == BASELINE_KEY) != baseline:
                continue
            if not key_and_value.value.HasField("double_value"):
                continue
            metrics[metric_name(key)] = key_and_value.value.double_value.value
    return metrics


def blessing_failures(evaluation_uri: str) -> list[str]:
    """Each threshold the candidate missed, from TFMA's validation result: metric, value, threshold, baseline."""
    result = load_validation_result(evaluation_uri)
    if result.validation_ok:
        return []
    candidate = overall_metrics(evaluation_uri)
    baseline = overall_metrics(evaluation_uri, baseline=True)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        where = ", ".join(
            f"{key.column}={key.bytes_value.decode() if key.HasField('bytes_value') else key.int64_value}"
            for key in per_slice.slice_key.single_slice_keys
        ) or "overall"
        for failure in per_slice.failures:
            name = metric_name(failure.metric_key)
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if threshold.HasField("change_threshold"):
                change = threshold.change_threshold
                higher_is_better = tfma_protos().config_pb2.MetricDirection.HIGHER_IS_BETTER
                bound = "no less" if change.direction == higher_is_better else "no more"
                lines.append(
                    f"{name} ({where}) {candidate.get(name, float('nan')):.4f} against the blessed "
                    f"baseline's {baseline.get(name, float('nan')):.4f}: a change of {value:+.4f}, the "
                    f"threshold allows {bound} than {change.absolute.value:+.4f}"
                )
            elif threshold.HasField("value_threshold"):
                bounds = threshold.value_threshold
                limit = (
                    f"below the lower bound {bounds.lower_bound.value:g}"
                    if bounds.HasField("lower_bound") and value < bounds.lower_bound.value
                    else f"above the upper bound {bounds.upper_bound.value:g}"
                )
                lines.append(f"{name} ({where}) {value:.4f} is {limit}")
            else:
                lines.append(f"{name} ({where}): {failure.message or 'failed its threshold'}")
    return lines or ["TFMA's validation failed without a metric failure (see the evaluation artifact)"]
