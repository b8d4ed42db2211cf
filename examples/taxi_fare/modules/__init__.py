"""The taxi fare task's code run inside TFX components: its definition, features, preprocessing and model."""

import os

# TFX 1.16's Trainer breaks under Keras 3; tf-keras is the Keras 2 it was built for. Set before anything
# touches tf.keras, in whatever process loads this code.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
