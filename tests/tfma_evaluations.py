"""TFMA-shaped evaluation folders for tests of what reads them: metrics per slice as TFMA's writer lays them
out (the candidate's, the baseline's and their differences), and a validation result that TFMA itself
decides from the pipeline's eval config, as the Evaluator does (TFX's defaults, TFMA's validator per slice,
its merge and its missing-slice check). Only the metric values are made up, so that a test can choose a
candidate that passes or fails each threshold.
"""

from __future__ import annotations

import random
from pathlib import Path

import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2
from tensorflow_model_analysis.slicer import slicer_lib

from pipeline import pipeline as pipeline_definition
from pipeline.metadata import run_summary

# Metric values by slice: "overall", or (column, value) pairs such as (("payment_type", "Credit Card"),).
Values = dict[str | tuple, dict[str, float]]


def _slice_key(where: str | tuple) -> tuple:
    return () if where == "overall" else tuple(where)


def write_evaluation(root: Path, eval_config: tfma.EvalConfig, candidate: Values, baseline: Values | None = None,
                     ) -> tfma.EvalConfig:
    """Write `root/metrics-*.tfrecord` and `root/validations.tfrecord` for these values, judged by TFMA against
    `eval_config` as the Evaluator would (without a baseline, its change thresholds are dropped); returns the
    config TFMA judged by."""
    root.mkdir(parents=True, exist_ok=True)
    judged_by = tfma.utils.update_eval_config_with_defaults(
        eval_config, has_baseline=baseline is not None, rubber_stamp=True)
    names = {spec.name for spec in judged_by.model_specs if not spec.is_baseline}
    candidate_name = names.pop()
    result = validation_result_pb2.ValidationResult(validation_ok=True)
    with tf.io.TFRecordWriter(str(root / "metrics-00000-of-00001.tfrecord")) as writer:
        for where, values in candidate.items():
            metrics = {}
            for name, value in values.items():
                metrics[tfma.metrics.MetricKey(name, model_name=candidate_name)] = value
                if baseline is not None and name in baseline.get(where, {}):
                    metrics[tfma.metrics.MetricKey(name, model_name=tfma.BASELINE_KEY)] = baseline[where][name]
                    metrics[tfma.metrics.MetricKey(name, model_name=candidate_name, is_diff=True)] = (
                        value - baseline[where][name])
            key = _slice_key(where)
            found = metrics_for_slice_pb2.MetricsForSlice(slice_key=slicer_lib.serialize_slice_key(key))
            for metric_key, value in metrics.items():
                entry = found.metric_keys_and_values.add(key=metric_key.to_proto())
                entry.value.double_value.value = value
            writer.write(found.SerializeToString())
            # What TFMA's validations combiner does with each slice's result.
            judged = metrics_validator.validate_metrics((key, metrics), judged_by)
            result.validation_ok &= judged.validation_ok
            result.metric_validations_per_slice.extend(judged.metric_validations_per_slice)
            metrics_validator.merge_details(result, judged)
    missing = metrics_validator.get_missing_slices(result.validation_details.slicing_details, judged_by)
    if missing:
        result.validation_ok = False
        result.missing_slices.extend(missing)
    with tf.io.TFRecordWriter(str(root / "validations.tfrecord")) as writer:
        writer.write(result.SerializeToString())
    return judged_by


def evaluator_run(root: Path, config, candidate: Values, baseline: Values | None = None,
                  baseline_model_id: int = 7) -> run_summary.ComponentRun:
    """The Evaluator's execution as ML Metadata records it (the eval config the pipeline builds for `config`,
    as JSON) with its two outputs: this evaluation, and the blessing TFMA's verdict gives (naming the baseline
    model, as TFX does, when there was one)."""
    eval_config = pipeline_definition.create_eval_config(config)
    write_evaluation(root, eval_config, candidate, baseline)
    execution = metadata_store_pb2.Execution()
    execution.custom_properties["eval_config"].string_value = json_format.MessageToJson(
        eval_config, preserving_proto_field_name=True)
    blessing = metadata_store_pb2.Artifact(uri=str(root / "blessing"))
    blessed = tfma.load_validation_result(str(root)).validation_ok
    blessing.custom_properties["blessed"].int_value = int(blessed)
    if baseline is not None:
        blessing.custom_properties["baseline_model_id"].int_value = baseline_model_id
    outputs = {"evaluation": [metadata_store_pb2.Artifact(uri=str(root))], "blessing": [blessing]}
    return run_summary.ComponentRun("Evaluator", "executed", 1.0, execution, outputs=outputs)


def scored_evaluation(root: Path, rows: int = 400, multiclass: bool = False) -> tfma.EvalConfig:
    """A real TFMA evaluation, metrics and plots, of scores written into the examples (TFMA evaluates a
    `prediction_key` without a model): a candidate and a baseline scoring the same labelled rows, overall and
    per `kind` (x or y), with the task's plot metrics (pipeline.plot_metrics). Binary: label 0 or 1, scores
    probabilities; multi-class: label 0, 1 or 2, scores three probabilities. Returns its eval config."""
    rng = random.Random(0)
    path = root / "examples.tfrecord"
    root.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(rows):
            example = tf.train.Example()
            features = example.features.feature
            label = rng.randrange(3) if multiclass else int(rng.random() < 0.3)
            for key, noise in (("candidate", 0.2), ("baseline", 0.3)):
                if multiclass:
                    raw = [max(0.01, (0.6 if c == label else 0.2) + rng.gauss(0, noise)) for c in range(3)]
                    features[key].float_list.value.extend(v / sum(raw) for v in raw)
                else:
                    features[key].float_list.value.append(min(1.0, max(0.0, 0.25 + 0.35 * label + rng.gauss(0, noise))))
            features["label"].int64_list.value.append(label)
            features["kind"].bytes_list.value.append(rng.choice([b"x", b"y"]))
            writer.write(example.SerializeToString())
    if multiclass:
        metrics = [tfma.MetricConfig(class_name="ExampleCount"), tfma.MetricConfig(class_name="SparseCategoricalAccuracy")]
    else:
        metrics = [tfma.MetricConfig(class_name=name)
                   for name in ("ExampleCount", "AUC", "BinaryAccuracy", "Precision", "Recall", "MeanLabel")]
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate", label_key="label", prediction_key="candidate"),
                     tfma.ModelSpec(name=tfma.BASELINE_KEY, label_key="label", prediction_key="baseline",
                                    is_baseline=True)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["kind"])],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics),
                       tfma.MetricsSpec(metrics=pipeline_definition.plot_metrics(multiclass))],
    )
    tfma.run_model_analysis(eval_config=eval_config, data_location=str(path), output_path=str(root / "evaluation"))
    return eval_config
