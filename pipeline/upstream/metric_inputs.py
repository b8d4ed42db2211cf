"""TFMA's per-example metric inputs, without its general path's cost where an example is one label and one
prediction.

TFMA's metric combiners (AUC's calibration histogram, the confusion matrices of accuracy, precision and
recall, the label and prediction means) each call `metric_util.to_label_prediction_example_weight` for
every example in every slice. That function serves every model shape TFMA knows (dicts of outputs, top-k,
class ids, sparse and string labels, class weights), and that generality is most of what those
combiners spend on a binary classifier's example (bench/README.md). Here, an example whose label and
prediction are numeric arrays of one value each, without example weights, sub-keys, aggregation or class
weights, is answered directly with exactly what TFMA's function yields for it (the same arrays, dtypes and
fractional-label split; tests/pipeline/upstream/test_metric_inputs.py compares them); anything else goes to
TFMA's function.

It goes in through `pipeline.upstream.install()`: where the runners start, where the Evaluator's
extractors are built (pipeline/components/eval_extractors.py) and, through `--beam_plugins`, in Beam's workers,
which compute the metrics; and on import, so a worker that unpickles a confusion-matrix combiner (which
holds this function) has it too. Workers that have none of these compute the same metrics through TFMA's
function.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
from tensorflow_model_analysis.metrics import binary_confusion_matrices, metric_util

_general = getattr(metric_util.to_label_prediction_example_weight, "general", None) or (
    metric_util.to_label_prediction_example_weight
)
# Label dtypes answered here: TFMA subtracts bool labels from 1, which numpy refuses; strings need the
# label vocabulary.
_NUMERIC = frozenset("iuf")


def _model_value(value: Any, name: str) -> Any:
    """value[name] of a per-model or per-output dict (TFMA's lookup); None where TFMA's own path decides."""
    if not name:
        return value
    if isinstance(value, dict) and name in value:
        return value[name]
    return None


def to_label_prediction_example_weight(
    inputs,
    eval_config=None,
    model_name: str = "",
    output_name: str = "",
    sub_key=None,
    aggregation_type=None,
    class_weights=None,
    example_weighted: bool = False,
    fractional_labels: bool = False,
    flatten: bool = True,
    squeeze: bool = True,
    allow_none: bool = False,
    require_single_example_weight: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """TFMA's metric_util.to_label_prediction_example_weight, same arguments and results."""
    label = inputs.label
    prediction = _model_value(_model_value(inputs.prediction, model_name), output_name)
    if (
        sub_key is None
        and aggregation_type is None
        and not class_weights
        and not example_weighted
        and flatten
        and squeeze
        and type(label) is np.ndarray  # noqa: E721 (a subclass may carry meaning TFMA reads)
        and type(prediction) is np.ndarray  # noqa: E721
        and label.size == 1
        and prediction.size == 1
        and label.dtype.kind in _NUMERIC
        and prediction.dtype.kind in _NUMERIC
    ):
        label = label.reshape((1,))
        prediction = prediction.reshape((1,))
        # TFMA's unweighted example weight: float32 1.0, made a float64 array of one by its flattening.
        weight = np.array([1.0])
        if not fractional_labels:
            return iter(((label, prediction, weight),))
        if metric_util.within_interval(float(label), 0.0, 1.0):
            return iter(
                [
                    (split_label, prediction, split_weight)
                    for split_label, split_weight in (
                        (np.array([0], dtype=label.dtype), weight * (1 - label)),
                        (np.array([1], dtype=label.dtype), weight * label),
                    )
                    if not math.isclose(split_weight, 0.0)
                ]
            )
        # Out of [0, 1]: TFMA's function raises its own error.
    return _general(
        inputs,
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
        fractional_labels=fractional_labels,
        flatten=flatten,
        squeeze=squeeze,
        allow_none=allow_none,
        require_single_example_weight=require_single_example_weight,
    )


to_label_prediction_example_weight.general = _general


def _replace_default(function, old, new) -> None:
    """Swap a default argument that captured TFMA's function when its module was imported."""
    if function.__defaults__:
        function.__defaults__ = tuple(new if value is old else value for value in function.__defaults__)


def install() -> None:
    """Route TFMA's metric combiners in this process through the function above (idempotent)."""
    metric_util.to_label_prediction_example_weight = to_label_prediction_example_weight
    for function in (
        binary_confusion_matrices.binary_confusion_matrices,
        binary_confusion_matrices._binary_confusion_matrix_computation,
    ):
        _replace_default(function, _general, to_label_prediction_example_weight)


# A worker that unpickles a combiner holding the function above imports this module: it installs itself
# there, through the version guard as everywhere else.
from pipeline import upstream  # noqa: E402  (the package is loaded before any of its modules)

upstream.install("metric_inputs")
