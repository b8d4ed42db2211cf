"""The penguin task: which of three species a penguin is, from four body measurements.

A second task through the same pipeline (the taxi task is in modules/): multi-class, judged by accuracy
and by each class's precision and recall. Run it with `PIPELINE_TASK=examples.penguin.modules`.
"""

from pathlib import Path

from . import features

_HERE = Path(__file__).resolve().parent

NAME = "penguin"
DATA_ROOT = str(_HERE.parent / "data")
SCHEMA_FILE = str(_HERE.parent / "schema" / "schema.pbtxt")
TRANSFORM_MODULE_FILE = str(_HERE / "transform_module.py")
TRAINER_MODULE_FILE = str(_HERE / "trainer_module.py")

LABEL_KEY = features.LABEL_KEY
LABEL_SOURCE_KEYS = tuple(features.LABEL_SOURCE_KEYS)
CLASSES = features.CLASS_NAMES

METRICS = ("ExampleCount", "SparseCategoricalAccuracy")
# One-vs-rest for each species.
PER_CLASS_METRICS = ("Precision", "Recall")
SLICE_FEATURE_KEYS = ()
BLESSING_METRIC = "sparse_categorical_accuracy"
BLESSING_LOWER_BOUND = 0.6
BLESSING_MAX_DECREASE = 0.0
