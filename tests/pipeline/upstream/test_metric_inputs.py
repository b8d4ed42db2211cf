"""TFMA's per-example metric inputs through pipeline/upstream/metric_inputs.py are exactly what TFMA's own
function gives (arrays, dtypes, the fractional-label split, its errors), the pipeline's metrics come out
the same to the last bit, and Beam's local workers install it once they import TFMA."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import binary_confusion_matrices, metric_specs, metric_types, metric_util
from tensorflow_model_analysis.utils import config_util

from pipeline import configs, upstream
from pipeline import pipeline as pipeline_definition
from pipeline.upstream import metric_inputs
from pipeline.configs import PROJECT_ROOT

general = metric_inputs.to_label_prediction_example_weight.general
fast = metric_inputs.to_label_prediction_example_weight


def _inputs(label, prediction, weight=None):
    return metric_types.StandardMetricInputs(labels=label, predictions=prediction, example_weights=weight)


def _results(function, inputs, **kwargs):
    """The function's yields, or the error it raises (type and message), for comparison."""
    try:
        return [tuple(result) for result in function(inputs, **kwargs)]
    except Exception as error:  # noqa: BLE001 (the error itself is what is compared)
        return (type(error), str(error))


def _assert_same(expected, got):
    if isinstance(expected, tuple):
        assert got == expected
        return
    assert len(got) == len(expected)
    for expected_row, got_row in zip(expected, got):
        for want, have in zip(expected_row, got_row):
            assert isinstance(have, np.ndarray)
            assert (have.dtype, have.shape) == (want.dtype, want.shape)
            np.testing.assert_array_equal(have, want)


LABELS = [
    np.array([1.0]), np.array([0.0], dtype=np.float32), np.array(1), np.array([[0]]), np.array([1], dtype=np.int32),
    np.array([0.25]), np.array([1.5]), np.array([-0.5]), np.array([np.nan]), np.array([True]), np.array([b"x"]),
    np.array([0.0, 1.0]), np.array([], dtype=np.float32), [1.0], None, {"label": np.array([1.0])},
]
PREDICTIONS = [
    np.array([0.7], dtype=np.float32), np.array(0.2), np.array([[0.5]], dtype=np.float32), np.array([1]),
    np.array([0.1, 0.9], dtype=np.float32), {"logistic": np.array([0.3])}, None,
]


@pytest.mark.parametrize("fractional", [False, True])
def test_same_results_as_tfma_for_every_shape_of_input(fractional):
    for label, prediction in itertools.product(LABELS, PREDICTIONS):
        inputs = _inputs(label, prediction)
        expected = _results(general, inputs, fractional_labels=fractional)
        _assert_same(expected, _results(fast, inputs, fractional_labels=fractional))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_name": "candidate"},
        {"model_name": "baseline"},
        {"model_name": "missing"},
        {"output_name": "out"},
        {"example_weighted": True},
        {"sub_key": metric_types.SubKey(class_id=0)},
        {"class_weights": {0: 0.5}},
        {"flatten": False},
        {"squeeze": False},
        {"fractional_labels": True, "model_name": "candidate"},
    ],
    ids=repr,
)
def test_same_results_as_tfma_for_every_option(kwargs):
    per_model = {"candidate": np.array([0.8], dtype=np.float32), "baseline": np.array([0.4], dtype=np.float32)}
    cases = [
        _inputs(np.array([1.0]), per_model),
        _inputs(np.array([0.0]), {"candidate": {"out": np.array([0.6])}}),
        _inputs(np.array([1.0]), {"out": np.array([0.6])}),
        _inputs(np.array([1.0]), np.array([0.6], dtype=np.float32), np.array([2.0], dtype=np.float32)),
        _inputs(np.array([1.0]), np.array([0.6], dtype=np.float32)),
    ]
    for inputs in cases:
        _assert_same(_results(general, inputs, **kwargs), _results(fast, inputs, **kwargs))


def _eval_config(baseline: bool) -> tfma.EvalConfig:
    """The pipeline's, as TFX's Evaluator completes it (with a baseline: models named, metrics for each)."""
    return config_util.update_eval_config_with_defaults(
        pipeline_definition.create_eval_config(configs.load_config()),
        has_baseline=baseline,
        rubber_stamp=not baseline,
    )


def _plain(value):
    """A metric's value or a combiner's output as comparable data, to the last bit."""
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_plain(item) for item in value]
    if isinstance(value, dict):
        return sorted((repr(key), _plain(item)) for key, item in value.items())
    if hasattr(value, "__dict__"):
        return type(value).__name__, _plain(vars(value))
    if hasattr(value, "__slots__"):
        return type(value).__name__, [(name, _plain(getattr(value, name))) for name in value.__slots__]
    return repr(value)


@pytest.mark.parametrize("baseline", [False, True], ids=["one model", "with a baseline"])
def test_the_pipelines_metrics_are_the_same_to_the_last_bit(baseline, monkeypatch):
    """Every combiner of the task's metrics, fed the same examples with TFMA's function and with ours."""
    eval_config = _eval_config(baseline)
    rng = np.random.default_rng(7)
    labels = (rng.random(3000) < 0.25).astype(np.int64)
    predictions = rng.random((3000, 2)).astype(np.float32)
    predictions[::97] = 0.5  # on the confusion matrices' threshold
    examples = []
    for label, prediction in zip(labels, predictions):
        if baseline:
            values = {"candidate": prediction[:1], "baseline": prediction[1:]}
        else:
            values = prediction[:1]
        examples.append(_inputs(np.array([label]), values))

    def outputs(function):
        monkeypatch.setattr(metric_util, "to_label_prediction_example_weight", function)
        computations = metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config)
        result = {}
        for computation in computations:
            combiner = getattr(computation, "combiner", None)
            if combiner is None:
                continue
            if getattr(combiner, "_extract_label_prediction_and_weight", None) is not None:
                combiner._extract_label_prediction_and_weight = function
            accumulator = combiner.create_accumulator()
            for example in examples:
                accumulator = combiner.add_input(accumulator, example)
            result.update(combiner.extract_output(accumulator))
        return result

    expected, got = outputs(general), outputs(fast)
    assert len(expected) >= 4 + 3 * baseline
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert _plain(got[key]) == _plain(value), key


def test_installed_through_pipeline_upstream_as_every_runner_installs_it():
    assert upstream.install("metric_inputs") == ["metric_inputs"]
    assert metric_util.to_label_prediction_example_weight is fast
    for function in (
        binary_confusion_matrices.binary_confusion_matrices,
        binary_confusion_matrices._binary_confusion_matrix_computation,
    ):
        assert fast in function.__defaults__ and general not in function.__defaults__


def test_beam_workers_install_it_once_they_import_tfma():
    """The multi_processing profile's plugin: TFMA is not imported by the plugin, and is patched once the
    worker imports any part of it (the Evaluator's combiners unpickle from its submodules)."""
    (plugin,) = [arg.split("=", 1)[1] for arg in configs.BEAM_PROFILES["multi_processing"] if "beam_plugins" in arg]
    script = (
        f"import importlib, sys; importlib.import_module({plugin!r}); "
        "assert 'tensorflow_model_analysis' not in sys.modules; "
        "from tensorflow_model_analysis.metrics import calibration_histogram, metric_util; "
        "print(metric_util.to_label_prediction_example_weight.__module__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["pipeline.upstream.metric_inputs"]
