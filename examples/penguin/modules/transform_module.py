"""`preprocessing_fn` for TFX Transform: four measurements to z-scores, and the species as the label."""

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
    # TFX loaded this file by path under a made-up name that Beam's worker processes cannot import: ship
    # its functions, and the features module they read, by value (with --pickle_library=cloudpickle).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(features)


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
