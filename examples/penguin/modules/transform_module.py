"""`preprocessing_fn` for TFX Transform: four measurements to z-scores, and the species as the label."""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import cloudpickle  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from examples.penguin.modules import features  # noqa: E402

if __name__.startswith("user_module_"):
    # TFX loaded this file by path under a made-up name that Beam's worker processes cannot import: ship
    # its functions by value (with --pickle_library=cloudpickle).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _dense(tensor: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A rank-1 tensor of the column: every value is present (the curated schema requires it)."""
    if isinstance(tensor, tf.sparse.SparseTensor):
        tensor = tf.sparse.to_dense(tensor)
    return tf.reshape(tensor, [-1])


def preprocessing_fn(inputs: dict) -> dict:
    outputs = {
        features.transformed_name(key): tft.scale_to_z_score(tf.cast(_dense(inputs[key]), tf.float32))
        for key in features.FEATURE_KEYS
    }
    # A serving request has no species; TFT's serving layer drops outputs whose inputs are absent.
    outputs[features.LABEL_KEY] = tf.cast(_dense(inputs[features.SPECIES_KEY]), tf.int64)
    return outputs
