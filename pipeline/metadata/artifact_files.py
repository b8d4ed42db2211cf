"""What TFX's artifacts hold, read from their files: statistics, anomalies, evaluation metrics and the
Evaluator's reasons; and whether a recorded output's files can still be used (`unusable`). Every reader of
artifact contents (the closing summary, the data gate, the report, the notebook, the `pipeline` command)
goes through here.

What the `pipeline` command reads imports neither TensorFlow, TFDV nor TFMA: the files are protobufs
(TFMA's in TFRecord files), read with protobuf alone, so that a command that only shows them starts in a
second, not ten. Only `unusable`, which a run calls, loads TensorFlow's file systems (for gs:// and such).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import importlib
import importlib.util
import json
import os
import re
import struct
import sys
import types

import google_crc32c
from google.protobuf import json_format
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


# What an artifact of each type cannot be used without, relative to its URI: each entry lists the paths
# (globs) of which one must match, and every file matched must be non-empty. `{split}` stands for each
# split the artifact records (its `split_names`). A type not listed needs its URI to exist, no more.
_PAYLOADS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Examples": (("Split-{split}/*",),),
    "ExampleStatistics": (("Split-{split}/FeatureStats.pb",),),
    "ExampleAnomalies": (("Split-{split}/SchemaDiff.pb",),),
    "Schema": (("schema.pbtxt",),),
    "TransformGraph": (("transform_fn/saved_model.pb",), ("transformed_metadata/schema.pbtxt",)),
    "Model": (("Format-Serving/saved_model.pb",),),
    "ModelEvaluation": (("eval_config.json",),),
    # A model the Pusher pushed is copied here too; one it did not push leaves the folder empty.
    "PushedModel": (("saved_model.pb",),),
    # The Evaluator's verdict is the name of an empty file.
    "ModelBlessing": (("BLESSED", "NOT_BLESSED"),),
}
_EMPTY_BY_DESIGN = {"ModelBlessing"}
# The Schema artifact property CuratedSchemaImporter writes: its file's SHA-256
# (curated_schema.SCHEMA_SHA256_KEY; that module loads TFX, which readers of the store never need).
SCHEMA_SHA256_PROPERTY = "schema_sha256"
_SCHEMA_FILE = "schema.pbtxt"


def unusable(artifact: metadata_store_pb2.Artifact, type_name: str) -> str | None:
    """Why the artifact's files can no longer be used (gone, empty, or not what was recorded), or None.

    Cheap by design, as it runs before every run on every recorded output: the URI exists, the files its
    type needs exist and are non-empty (_PAYLOADS), and where the artifact records a hash (the curated
    schema's `schema_sha256`), the file still has it. A file cut short but not empty, in an artifact with
    no recorded hash, passes: reading every byte of every output before each run would cost more than
    the run.
    """
    from tfx.dsl.io import fileio  # Loads TensorFlow's file systems (gs://...): only runs need it.

    uri = artifact.uri
    if not uri or not fileio.exists(uri):
        return "its folder is gone"
    if type_name == "PushedModel" and int_property(artifact, "pushed") != 1:
        return None
    splits = _split_names(artifact)
    for alternatives in _PAYLOADS.get(type_name, ()):
        for split in splits if any("{split}" in a for a in alternatives) else [None]:
            patterns = [a.format(split=split) if split else a for a in alternatives]
            found = [
                path for pattern in patterns for path in fileio.glob(os.path.join(uri, pattern))
                if not fileio.isdir(path)
            ]
            if not found:
                return f"{' or '.join(patterns)} is missing"
            if type_name not in _EMPTY_BY_DESIGN:
                empty = [path for path in found if fileio.stat(path).length == 0]
                if empty:
                    return f"{os.path.relpath(empty[0], uri)} is empty"
    if SCHEMA_SHA256_PROPERTY in artifact.custom_properties:
        recorded = artifact.custom_properties[SCHEMA_SHA256_PROPERTY].string_value
        with fileio.open(os.path.join(uri, _SCHEMA_FILE), "rb") as f:
            now = hashlib.sha256(f.read()).hexdigest()
        if now != recorded:
            return f"{_SCHEMA_FILE} changed since it was recorded (sha256 {recorded[:12]} then, {now[:12]} now)"
    return None


def _split_names(artifact: metadata_store_pb2.Artifact) -> list[str]:
    """The splits the artifact records (TFX's `split_names`, a JSON list); ["*"] when it records none."""
    for properties in (artifact.properties, artifact.custom_properties):
        if "split_names" in properties:
            names = json.loads(properties["split_names"].string_value or "[]")
            if names:
                return names
    return ["*"]


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


def empty_rows(common) -> tuple[int, bool]:
    """(rows, exact) of a feature whose value list is empty: how TFX writes an empty CSV cell, which TFDV
    counts as present (`num_missing` counts only rows without the feature at all).

    Exact when no row holds more than one value (rows with a value = `tot_num_values`); otherwise
    estimated from the quantiles of values per row.
    """
    if common.min_num_values > 0:
        return 0, True
    if common.max_num_values <= 1:
        return int(common.num_non_missing - common.tot_num_values), True
    zero = sum(b.sample_count for b in common.num_values_histogram.buckets if b.high_value == 0)
    return round(zero), False


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


def load_plots(evaluation_uri: str) -> list:
    """TFMA's PlotsForSlice of each slice in an evaluation (what `tfma.load_plots` reads): the plot metrics
    of the eval config (confusion matrices over thresholds, calibration histograms), the candidate's and,
    with a baseline, the baseline's. An evaluation made without plot metrics has none."""
    message = tfma_protos().metrics_for_slice_pb2.PlotsForSlice
    return [message.FromString(record) for record in _evaluation_records(evaluation_uri, "plots")]


def slice_plots(evaluation_uri: str, baseline: bool = False) -> dict[str, dict[str, object]]:
    """The candidate model's (or the baseline's) plots on each slice, by slice_name, then by the PlotData
    field that holds each ("confusion_matrix_at_thresholds", "calibration_histogram_buckets",
    "multi_class_confusion_matrix_at_thresholds"; a per-class plot's name ends in " (class 1)"): TFMA's
    writer merges a model's plots into one PlotData and leaves their names out of its key."""
    found: dict[str, dict[str, object]] = {}
    for per_slice in load_plots(evaluation_uri):
        for key_and_value in per_slice.plot_keys_and_values:
            key = key_and_value.key
            if (key.model_name == BASELINE_KEY) != baseline:
                continue
            suffix = metric_name(key)[len(key.name):]
            for field, value in key_and_value.value.ListFields():
                if field.name != "debug_message":
                    found.setdefault(slice_name(per_slice.slice_key), {})[field.name + suffix] = value
    return found


def load_validation_result(evaluation_uri: str):
    """TFMA's ValidationResult of an evaluation (what `tfma.load_validation_result` reads)."""
    records = _evaluation_records(evaluation_uri, "validations")
    if len(records) != 1:
        raise UnreadableArtifact(f"{evaluation_uri}: expected one validation result, found {len(records)}")
    return tfma_protos().validation_result_pb2.ValidationResult.FromString(records[0])


def _key_value(key) -> str:
    """A SingleSliceKey's value as text (TFMA's SlicingSpec.feature_values names values as text too)."""
    if key.HasField("bytes_value"):
        return key.bytes_value.decode()
    return str(key.int64_value if key.HasField("int64_value") else key.float_value)


def slice_name(slice_key) -> str:
    """A TFMA slice key as summaries show it: "overall", or "color=red" (several joined by ", ")."""
    return ", ".join(f"{key.column}={_key_value(key)}" for key in slice_key.single_slice_keys) or "overall"


def _spec_name(spec) -> str:
    """A SlicingSpec as slice_name names the slices it matches ("color=*" for every value of a key)."""
    parts = [f"{column}={value}" for column, value in sorted(spec.feature_values.items())]
    return ", ".join(parts + [f"{column}=*" for column in spec.feature_keys]) or "overall"


def _matches(spec, slice_key) -> bool:
    """Whether a TFMA SlicingSpec selects the slice (TFMA's rule: the same columns, and the values it names)."""
    values = {key.column: _key_value(key) for key in slice_key.single_slice_keys}
    if set(values) != set(spec.feature_keys) | set(spec.feature_values):
        return False
    return all(values[column] == value for column, value in spec.feature_values.items())


def slice_metrics(evaluation_uri: str, baseline: bool = False) -> dict[str, dict[str, float]]:
    """The candidate model's (or the blessed baseline's) metrics on each slice, by slice_name."""
    found: dict[str, dict[str, float]] = {}
    for per_slice in load_metrics(evaluation_uri):
        for key_and_value in per_slice.metric_keys_and_values:
            key = key_and_value.key
            # With a baseline, TFMA also records the baseline's metrics and the differences.
            if key.is_diff or (key.model_name == BASELINE_KEY) != baseline:
                continue
            if not key_and_value.value.HasField("double_value"):
                continue
            found.setdefault(slice_name(per_slice.slice_key), {})[metric_name(key)] = (
                key_and_value.value.double_value.value
            )
    return found


def overall_metrics(evaluation_uri: str, baseline: bool = False) -> dict[str, float]:
    """The candidate model's (or the blessed baseline's) metrics on the whole eval split."""
    return slice_metrics(evaluation_uri, baseline).get("overall", {})


def training_curves(model_run_uri: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The Trainer's scalars from its TensorBoard logs under `model_run_uri`, by run (the log folder relative
    to it: "train", "validation") and tag ("epoch_loss"), each a list of (step, value) in step order.

    The event files are TFRecords of TensorBoard's Event protos, read with protobuf alone (TensorBoard's own
    copy of them, no TensorFlow). A scalar is a `simple_value` (Keras's writers before TF 2) or a rank-0
    tensor (tf.summary.scalar in TF 2).
    """
    # TensorBoard's protos load neither TensorFlow nor TensorBoard's server: only the report needs them.
    from tensorboard.compat.proto import event_pb2

    curves: dict[str, dict[str, dict[int, float]]] = {}
    if not os.path.isdir(model_run_uri):
        return {}
    for folder, _, files in sorted(os.walk(model_run_uri)):
        for name in sorted(files):
            if "tfevents" not in name:
                continue
            run = os.path.relpath(folder, model_run_uri)
            for record in tfrecords(os.path.join(folder, name)):
                event = event_pb2.Event.FromString(record)
                for value in event.summary.value:
                    number = _scalar(value)
                    if number is not None:
                        curves.setdefault(run, {}).setdefault(value.tag, {})[event.step] = number
    return {run: {tag: sorted(points.items()) for tag, points in tags.items()} for run, tags in curves.items()}


def _scalar(value) -> float | None:
    """A summary value's number, when it is a scalar."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor") or value.tensor.tensor_shape.dim:
        return None
    tensor = value.tensor
    for field in ("float_val", "double_val", "int_val", "int64_val"):
        if getattr(tensor, field):
            return float(getattr(tensor, field)[0])
    if tensor.tensor_content:
        kinds = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64
        if tensor.dtype in kinds:
            return float(struct.unpack(kinds[tensor.dtype], tensor.tensor_content[:struct.calcsize(kinds[tensor.dtype])])[0])
    return None


# TFMA reads a change threshold of 0 as none; the pipeline passes "no decrease allowed" as a tiny negative
# number (pipeline.create_eval_config), which is shown as 0.
_NO_CHANGE = 1e-9


@dataclasses.dataclass(frozen=True)
class ThresholdCheck:
    """One threshold of the Evaluator's config on one slice, and how the candidate fared against it."""

    metric: str
    slice: str  # slice_name: "overall", "color=red"
    kind: str  # "value" or "change"
    bound: str  # "at least 0.7", "no decrease against the baseline", ...
    value: float | None  # the candidate's on the slice; None when the slice had no rows
    baseline: float | None  # the baseline's on the slice; None without a baseline
    passed: bool | None  # None: a change threshold without a baseline, which TFMA does not apply

    @property
    def change(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        return self.value - self.baseline

    @property
    def result(self) -> str:
        return {True: "pass", False: "FAIL", None: "not applied"}[self.passed]


def _bound_text(threshold) -> list[tuple[str, str]]:
    """("value" or "change", its bound in words) of each part of a TFMA MetricThreshold."""
    parts = []
    if threshold.HasField("value_threshold"):
        value = threshold.value_threshold
        bounds = [f"at least {value.lower_bound.value:g}"] if value.HasField("lower_bound") else []
        bounds += [f"at most {value.upper_bound.value:g}"] if value.HasField("upper_bound") else []
        parts.append(("value", " and ".join(bounds) or "any value"))
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        worse = "increase" if change.direction == tfma_protos().config_pb2.MetricDirection.LOWER_IS_BETTER else "decrease"
        article = "an" if worse == "increase" else "a"
        texts = []
        for kind in ("absolute", "relative"):
            if change.HasField(kind):
                allowed = abs(getattr(change, kind).value)
                unit = " (relative)" if kind == "relative" else ""
                texts.append(f"no {worse}{unit}" if allowed <= _NO_CHANGE else f"{article} {worse} of at most {allowed:g}{unit}")
        parts.append(("change", " and ".join(texts or [f"no {worse}"]) + " against the baseline"))
    return parts


def _configured_thresholds(eval_config) -> list[tuple[str, object, object]]:
    """(metric name, SlicingSpec, MetricThreshold) of every threshold the eval config sets on a slice:
    on a metric's config (as the pipeline sets them) or, in runs made before, by metric name."""
    found, overall = [], tfma_protos().config_pb2.SlicingSpec()
    for spec in eval_config.metrics_specs:
        for name, per_slice in sorted(spec.per_slice_thresholds.items()):
            found += [(name, s, t.threshold) for t in per_slice.thresholds for s in (t.slicing_specs or [overall])]
        for metric in spec.metrics:
            name = json.loads(metric.config or "{}").get("name") or _snake_case(metric.class_name)
            if metric.HasField("threshold"):
                found.append((name, overall, metric.threshold))
            found += [(name, s, t.threshold) for t in metric.per_slice_thresholds for s in (t.slicing_specs or [overall])]
    return found


def _snake_case(class_name: str) -> str:
    # configs.metric_name's rule; artifact_files sits below configs and does not import it.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


def threshold_checks(eval_config_json: str, evaluation_uri: str) -> list[ThresholdCheck]:
    """Every threshold of the Evaluator's recorded eval config (its `eval_config` property, JSON), on every
    slice it selects, with the candidate's and baseline's values and TFMA's verdict (its validation result).

    The recorded config is the one the pipeline asked for: TFX drops the change thresholds from what TFMA
    is given when there is no baseline, so they show here as not applied.
    """
    eval_config = tfma_protos().config_pb2.EvalConfig()
    if eval_config_json:
        json_format.Parse(eval_config_json, eval_config, ignore_unknown_fields=True)
    slice_keys = {slice_name(m.slice_key): m.slice_key for m in load_metrics(evaluation_uri)}
    candidate = slice_metrics(evaluation_uri)
    baseline = slice_metrics(evaluation_uri, baseline=True)
    result = load_validation_result(evaluation_uri)
    failed = set()
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            kind = "change" if failure.metric_threshold.HasField("change_threshold") else "value"
            failed.add((metric_name(failure.metric_key), kind, slice_name(per_slice.slice_key)))
    missing = {_spec_name(spec) for spec in result.missing_slices}
    checks = []
    for name, spec, threshold in _configured_thresholds(eval_config):
        slices = [n for n, key in slice_keys.items() if _matches(spec, key)] or [_spec_name(spec)]
        for where in slices:
            for kind, bound in _bound_text(threshold):
                value = candidate.get(where, {}).get(name)
                base = baseline.get(where, {}).get(name) if baseline else None
                if kind == "change" and not baseline:
                    passed = None
                else:
                    passed = not ((name, kind, where) in failed or where in missing or value is None)
                checks.append(ThresholdCheck(name, where, kind, bound, value, base, passed))
    return checks


def blessing_failures(evaluation_uri: str) -> list[str]:
    """Each threshold the candidate missed, from TFMA's validation result: metric, value, threshold, baseline."""
    result = load_validation_result(evaluation_uri)
    if result.validation_ok:
        return []
    candidate = slice_metrics(evaluation_uri)
    baseline = slice_metrics(evaluation_uri, baseline=True)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        where = slice_name(per_slice.slice_key)
        for failure in per_slice.failures:
            name = metric_name(failure.metric_key)
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if not failure.HasField("metric_value"):
                lines.append(f"{name} ({where}): {failure.message or 'failed its threshold'}")
            elif threshold.HasField("change_threshold"):
                change = threshold.change_threshold
                higher_is_better = tfma_protos().config_pb2.MetricDirection.HIGHER_IS_BETTER
                bound = "no less" if change.direction == higher_is_better else "no more"
                lines.append(
                    f"{name} ({where}) {candidate.get(where, {}).get(name, float('nan')):.4f} against the blessed "
                    f"baseline's {baseline.get(where, {}).get(name, float('nan')):.4f}: a change of {value:+.4f}, the "
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
    for spec in result.missing_slices:
        lines.append(f"slice {_spec_name(spec)} has no rows in the eval split, so its thresholds could not be met")
    return lines or ["TFMA's validation failed without a metric failure (see the evaluation artifact)"]
