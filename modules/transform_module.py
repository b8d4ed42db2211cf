"""`preprocessing_fn` for TFX Transform: raw taxi trips to model-ready features and the label.

Transform runs this once over the training data to compute its statistics (means, quantiles,
vocabularies) and embeds the resulting graph in the served model, so serving applies exactly the
transformation that training saw.
"""

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import cloudpickle  # noqa: E402

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402


def _sibling(name: str):
    """The module `name`.py beside this file. TFX loads this file by path, or from a wheel of its folder,
    never as part of its package: a relative import cannot reach a sibling, and an absolute one would name
    the package a second time (PIPELINE_TASK names it once). The pipeline fingerprints what `_sibling` loads."""
    spec = importlib.util.spec_from_file_location(f"{__name__}_{name}", Path(__file__).with_name(f"{name}.py"))
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


features = _sibling("features")

if __name__.startswith("user_module_"):
    # TFX loaded this file by path under a made-up name that Beam's worker processes (multi_processing,
    # remote engines) cannot import: ship its functions, and the features module they read, by value (with
    # --pickle_library=cloudpickle).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(features)


def _fill_in_missing(tensor: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A rank-1 dense tensor with an empty cell replaced by '' or 0.

    Columns that may be empty arrive as SparseTensors of shape [batch, 1]; columns the schema marks as
    always present arrive dense, as [batch] or [batch, 1].
    """
    if isinstance(tensor, tf.sparse.SparseTensor):
        default = "" if tensor.dtype == tf.string else tf.zeros([], tensor.dtype)
        tensor = tf.sparse.to_dense(
            tf.SparseTensor(tensor.indices, tensor.values, [tensor.dense_shape[0], 1]), default
        )
    if tensor.shape.rank == 2:
        tensor = tf.squeeze(tensor, axis=1)
    return tensor


def _as_string(tensor: tf.Tensor) -> tf.Tensor:
    """Integer ids (census tracts) become strings so they can share the vocabulary path."""
    if tensor.dtype == tf.string:
        return tensor
    return tf.strings.as_string(tensor)


def preprocessing_fn(inputs: dict) -> dict:
    """Map raw features to transformed features and the label.

    The label needs `tips`, which a serving request never has; TFT's serving layer drops outputs whose
    inputs are absent, so the same function serves both.
    """
    outputs = {}
    for key in features.DENSE_FLOAT_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key]), tf.float32)
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(value)

    for key in features.BUCKET_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key]), tf.float32)
        outputs[features.transformed_name(key)] = tft.bucketize(
            value, features.FEATURE_BUCKET_COUNT
        )

    for key in features.CATEGORICAL_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key]), tf.int64)
        # An id outside the known range goes to 0 instead of breaking the one-hot encoding.
        in_range = tf.logical_and(
            value >= 0, value < features.CATEGORICAL_FEATURE_MAX_VALUES[key]
        )
        outputs[features.transformed_name(key)] = tf.where(in_range, value, tf.zeros_like(value))

    for key in features.VOCAB_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            _as_string(_fill_in_missing(inputs[key])),
            top_k=features.VOCAB_SIZE,
            num_oov_buckets=features.OOV_SIZE,
            vocab_filename=features.vocabulary_name(key),
        )

    fare = tf.cast(_fill_in_missing(inputs[features.FARE_KEY]), tf.float32)
    tips = tf.cast(_fill_in_missing(inputs[features.TIPS_KEY]), tf.float32)
    outputs[features.LABEL_KEY] = tf.cast(
        tf.greater(tips, fare * features.BIG_TIPPER_FRACTION), tf.int64
    )
    return outputs
