"""Examples grouped by their slices (pipeline/upstream/slice_groups.py): a group adds to every combiner what its
examples add one at a time, to the last bit; combiners without an adder, and groups an adder does not
cover, take the examples one at a time; grouping falls back to single examples wherever a group could be
mistaken for one. The Evaluator's metrics on a real run, against TFMA's own extractors, are compared in
tests/pipeline/runners/test_local_runner.py."""

from __future__ import annotations

import pickle

import apache_beam as beam
import cloudpickle
import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as tfma_evaluator
from tensorflow_model_analysis.metrics import calibration_histogram, metric_specs, metric_types
from tensorflow_model_analysis.slicer import slicer_lib as slicer

from pipeline.upstream import slice_groups
from tests.pipeline.upstream.test_metric_inputs import _eval_config, _plain


def _examples(count: int, baseline: bool, fractional: bool, seed: int = 3) -> list:
    rng = np.random.default_rng(seed)
    if fractional:
        labels = rng.random(count).astype(np.float32)
        labels[::3] = np.round(labels[::3])  # whole labels among the fractional ones
    else:
        labels = (rng.random(count) < 0.25).astype(np.int64)
    # Spread over many binary exponents, so sums of them round and the order of adding them shows.
    predictions = (rng.random((count, 2)) ** 6).astype(np.float32)
    predictions[::97], predictions[::89], predictions[::83] = 0.5, 1.0, 0.0  # a threshold, both ends
    examples = []
    for label, prediction in zip(labels, predictions):
        value = {"candidate": prediction[:1], "baseline": prediction[1:]} if baseline else prediction[:1]
        examples.append(
            metric_types.StandardMetricInputs(labels=np.array([label]), predictions=value, example_weights=None)
        )
    return examples


def _groups(examples: list, seed: int = 5) -> list:
    """The examples in consecutive groups of 1 to 60, each stacked as the grouping stage stacks them."""
    rng = np.random.default_rng(seed)
    groups, start = [], 0
    while start < len(examples):
        members = examples[start : start + int(rng.integers(1, 61))]
        start += len(members)
        groups.append(
            metric_types.StandardMetricInputs(
                {key: slice_groups._stack([member[key] for member in members]) for key in members[0]}
            )
        )
    return groups


def _combiners(eval_config: tfma.EvalConfig) -> list:
    computations = metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config)
    return [computation.combiner for computation in computations if hasattr(computation, "combiner")]


def _outputs(eval_config, inputs, add) -> dict:
    result = {}
    for combiner in _combiners(eval_config):
        accumulator = combiner.create_accumulator()
        for item in inputs:
            accumulator = add(combiner, accumulator, item)
        result.update(combiner.extract_output(accumulator))
    return result


def _one_at_a_time(combiner, accumulator, item):
    return combiner.add_input(accumulator, item)


def _grouped(combiner, accumulator, item):
    """As ComputationsCombineFn adds an item: a group at once where an adder takes it."""
    return slice_groups._add(combiner, accumulator, item, slice_groups.rows(item))


@pytest.mark.parametrize("fractional", [False, True], ids=["0/1 labels", "fractional labels"])
@pytest.mark.parametrize("baseline", [False, True], ids=["one model", "with a baseline"])
def test_a_group_adds_what_its_examples_add_one_at_a_time_to_the_last_bit(baseline, fractional):
    eval_config = _eval_config(baseline)
    examples = _examples(3000, baseline, fractional)
    expected = _outputs(eval_config, examples, _one_at_a_time)

    def grouped(combiner, accumulator, item):
        if not fractional:
            # Every combiner of the task's metrics takes a group at once (no example one at a time).
            combiner.add_input = lambda *_: pytest.fail(f"{type(combiner).__name__} took single examples")
        assert type(combiner) in slice_groups._ADDERS
        return _grouped(combiner, accumulator, item)

    got = _outputs(eval_config, _groups(examples), grouped)
    assert len(expected) >= 4 + 3 * baseline and set(got) == set(expected)
    for key, value in expected.items():
        assert _plain(got[key]) == _plain(value), key


def test_combiners_and_groups_without_an_adder_take_the_examples_one_at_a_time():
    """A combiner without an adder (mean squared error), and a group of two values per example, which no
    adder covers: the results are TFMA's, one example at a time."""
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label")],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name=name) for name in (
            "MeanSquaredError", "AUC", "MeanPrediction", "ExampleCount")])],
    )
    assert not any(type(combiner) in slice_groups._ADDERS for combiner in _combiners(eval_config)[:1])
    rng = np.random.default_rng(11)
    for shape in ((1,), (2,)):
        examples = [
            metric_types.StandardMetricInputs(
                labels=(rng.random(shape) < 0.5).astype(np.float32),
                predictions=rng.random(shape).astype(np.float32),
                example_weights=None,
            )
            for _ in range(400)
        ]
        expected = _outputs(eval_config, examples, _one_at_a_time)
        got = _outputs(eval_config, _groups(examples), _grouped)
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert _plain(got[key]) == _plain(value), (shape, key)


def _sliced(payment_type: str, day: int, label: int, prediction: float, **extra) -> dict:
    keys = [(), (("payment_type", payment_type),), (("trip_start_day", day),)]
    return {
        constants.FEATURES_KEY: {"payment_type": np.array([payment_type.encode()], dtype=object)},
        constants.LABELS_KEY: np.array([label]),
        constants.PREDICTIONS_KEY: {"candidate": np.array([prediction], dtype=np.float32)},
        constants.SLICE_KEY_TYPES_KEY: slicer.slice_keys_to_numpy_array(keys),
        **extra,
    }


def test_examples_are_grouped_by_their_slice_keys_and_give_back_each_example():
    rows = [("Cash", 1), ("Card", 1), ("Cash", 1), ("Cash", 2), ("Card", 1), ("Cash", 1)]
    examples = [_sliced(payment, day, index % 2, index / 10) for index, (payment, day) in enumerate(rows)]
    groups = slice_groups.group(examples)
    assert [slice_groups.rows(group) for group in groups] == [3, 2, 1]
    members = {0: [0, 2, 5], 1: [1, 4], 2: [3]}
    for number, group in enumerate(groups):
        assert set(group) == {constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.SLICE_KEY_TYPES_KEY}
        assert isinstance(group[constants.LABELS_KEY], slice_groups.Rows)
        assert set(group[constants.SLICE_KEY_TYPES_KEY].tolist()) == set(
            examples[members[number][0]][constants.SLICE_KEY_TYPES_KEY].tolist()
        )
        for index, member in enumerate(members[number]):
            for key in (constants.LABELS_KEY, constants.PREDICTIONS_KEY):
                got, want = slice_groups.example(group[key], index), examples[member][key]
                assert _plain(got) == _plain(want)
                assert not isinstance(got, slice_groups.Rows) and not isinstance(
                    got.get("candidate", got) if isinstance(got, dict) else got, slice_groups.Rows
                )


@pytest.mark.parametrize(
    "odd_one",
    [
        {"attributions": {"fare": np.array([0.1])}},  # an extract a group does not carry
        {constants.LABELS_KEY: np.array([1, 0])},  # a label of another shape
        {constants.LABELS_KEY: np.array([1.0])},  # of another dtype
        {constants.LABELS_KEY: None},  # missing
        {constants.PREDICTIONS_KEY: {"baseline": np.array([0.5], dtype=np.float32)}},  # another model
    ],
    ids=["unknown extract", "shape", "dtype", "missing label", "other keys"],
)
def test_a_batch_with_an_example_a_group_cannot_hold_goes_one_example_at_a_time(odd_one):
    examples = [_sliced("Cash", 1, 1, 0.5), _sliced("Cash", 1, 0, 0.25)]
    examples.append({**_sliced("Cash", 1, 1, 0.75), **odd_one})
    assert slice_groups.group(examples) is examples


def test_a_group_without_labels_or_predictions_is_not_formed():
    examples = [{**_sliced("Cash", 1, 1, 0.5), constants.LABELS_KEY: None, constants.PREDICTIONS_KEY: None}] * 2
    assert slice_groups.group(examples) is examples


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_a_group_stays_a_group_through_pickling_between_beam_workers(dumps):
    [group] = slice_groups.group([_sliced("Cash", 1, 1, 0.5), _sliced("Cash", 1, 0, 0.25)])
    copy = pickle.loads(dumps(group))
    assert isinstance(copy[constants.LABELS_KEY], slice_groups.Rows)
    assert isinstance(copy[constants.PREDICTIONS_KEY]["candidate"], slice_groups.Rows)
    assert _plain(copy[constants.LABELS_KEY].view(np.ndarray)) == _plain(group[constants.LABELS_KEY].view(np.ndarray))


def test_histograms_cross_the_wire_as_arrays_and_give_tfmas_results():
    """The combine function's calibration histograms, as state and as output, are Beam-encoded in one pickle
    each (BucketDict, Histogram: Beam's coder pickled a plain dict's or list's Buckets one call each), and
    decode to the same numbers: through add, compact, encode, merge, extract and encode again, the results
    are those of TFMA's own combine function given the examples one at a time, to the last bit."""
    eval_config = _eval_config(True)
    computations = [
        c for c in metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config) if hasattr(c, "combiner")
    ]
    examples = _examples(2000, True, False)

    def element(items):
        return {
            tfma_evaluator._DEFAULT_COMBINER_INPUT_KEY: items,
            tfma_evaluator._COMBINER_INPUTS_KEY: [None] * len(computations),
        }

    stock = slice_groups.ComputationsCombineFn.__bases__[0](computations)
    expected = stock.extract_output(stock.add_input(stock.create_accumulator(), element(examples)))
    ours = slice_groups.ComputationsCombineFn(computations)
    coder = beam.coders.registry.get_coder(object)  # what Beam encodes accumulators and outputs with
    accumulator = ours.add_input(ours.create_accumulator(), element(_groups(examples)))
    wired = coder.decode(coder.encode(ours.compact(accumulator)))
    assert [type(state) for state in wired] == [type(state) for state in accumulator]
    # Candidate and baseline, each with the histogram of AUC and of the plots (the confusion matrix plot's is
    # AUC's: the same key, one output).
    histogram_states = [c for c in computations if type(c.combiner) is calibration_histogram._CalibrationHistogramCombiner]
    assert len(histogram_states) >= 2
    assert sum(type(state) is slice_groups.BucketDict for state in wired) == len(histogram_states)
    merged = ours.merge_accumulators([ours.create_accumulator(), wired])
    assert sum(type(state) is slice_groups.BucketDict for state in merged) == len(histogram_states)
    got = coder.decode(coder.encode(ours.extract_output(merged)))
    histograms = [value for value in got.values() if type(value) is slice_groups.Histogram]
    assert len(histograms) == len({key for c in histogram_states for key in c.keys}) and all(histograms)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert _plain(list(got[key]) if type(got[key]) is slice_groups.Histogram else got[key]) == _plain(value), key


def test_grouping_is_used_only_where_a_group_counts_as_its_examples():
    config = _eval_config(baseline=True)
    assert slice_groups.supported(config)

    def changed(edit) -> tfma.EvalConfig:
        copy = tfma.EvalConfig()
        copy.CopyFrom(config)
        edit(copy)
        return copy

    assert not slice_groups.supported(
        changed(lambda c: setattr(c.options.compute_confidence_intervals, "value", True))
    )
    assert not slice_groups.supported(changed(lambda c: setattr(c.options.min_slice_size, "value", 10)))
    assert not slice_groups.supported(changed(lambda c: setattr(c.metrics_specs[0], "query_key", "trip_id")))
    only_counts = tfma.EvalConfig(metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount")])])
    assert not slice_groups.supported(only_counts)  # no combiner would be given the labels to count
    keras = tfma.types.EvalSharedModel(model_type=tfma.TF_KERAS, include_default_metrics=True)
    assert not slice_groups.supported(config, keras) and slice_groups.supported(config, [keras._replace(model_type=tfma.TF_GENERIC)])


def _batch(count: int, seed: int = 13, baseline: bool = False) -> dict:
    """A batch of extracts as TFMA's extractors give the grouping stage the task's (after the features
    nothing reads are dropped): raw slice features of one value a row, a transformed label, the labels
    and each model's predictions."""
    rng = np.random.default_rng(seed)
    payment = np.array([[value] for value in rng.choice([b"Cash", b"Credit Card", b"No Charge"], count)], dtype=object)
    predictions = rng.random((count, 1)).astype(np.float32)
    return {
        constants.FEATURES_KEY: {"payment_type": payment, "trip_start_day": rng.integers(1, 8, (count, 1))},
        constants.TRANSFORMED_FEATURES_KEY: {"big_tipper": rng.integers(0, 2, count)},
        constants.INPUT_KEY: np.array([b"serialized"] * count, dtype=object),
        constants.LABELS_KEY: rng.integers(0, 2, count),
        constants.PREDICTIONS_KEY: {"candidate": predictions, "baseline": predictions[::-1].copy()}
        if baseline
        else predictions,
    }


def _grouping(baseline: bool) -> slice_groups.GroupBySlices:
    config = _eval_config(baseline)
    return slice_groups.GroupBySlices(config, slice_groups._slice_specs(config))


def _same_groups(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected):
        assert set(mine) == set(theirs)
        assert set(mine[constants.SLICE_KEY_TYPES_KEY].tolist()) == set(theirs[constants.SLICE_KEY_TYPES_KEY].tolist())
        for key in set(mine) - {constants.SLICE_KEY_TYPES_KEY}:
            assert isinstance(mine[key] if not isinstance(mine[key], dict) else mine[key]["candidate"], slice_groups.Rows)
            assert _plain(_arrays(mine[key])) == _plain(_arrays(theirs[key])), key


def _arrays(value):
    if isinstance(value, dict):
        return {key: _arrays(item) for key, item in value.items()}
    return value.view(np.ndarray) if isinstance(value, np.ndarray) else value


@pytest.mark.parametrize("baseline", [False, True], ids=["one model", "with a baseline"])
def test_a_batch_is_grouped_with_numpy_as_tfma_would_group_its_examples(baseline):
    """The groups taken from the batch's arrays are the groups of TFMA's per-example unbatching and
    slicing: the same slices, in the same order, each with the same rows in the same order."""
    grouping = _grouping(baseline)
    batch = _batch(2147, baseline=baseline)
    vectorized = grouping._grouped(batch)
    assert vectorized is not None and 3 * 7 - 3 <= len(vectorized) <= 3 * 7
    _same_groups(vectorized, slice_groups.group(grouping._sliced_examples(batch)))
    assert sum(slice_groups.rows(g) for g in vectorized) == 2147
    _same_groups(list(grouping.process(batch)), vectorized)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b[constants.FEATURES_KEY].update(trip_start_day=b[constants.FEATURES_KEY]["trip_start_day"] * 0.5),
        lambda b: b[constants.FEATURES_KEY].update(payment_type=np.repeat(b[constants.FEATURES_KEY]["payment_type"], 2, 1)),
        lambda b: b[constants.FEATURES_KEY]["payment_type"].__setitem__((3, 0), None),
        lambda b: b.update({constants.LABELS_KEY: list(b[constants.LABELS_KEY])}),
    ],
    ids=["float slice values", "two values a row", "a missing value", "labels in a list"],
)
def test_a_batch_numpy_cannot_take_apart_goes_through_tfmas_per_example_slicing(change):
    grouping = _grouping(baseline=False)
    batch = _batch(300)
    change(batch)
    assert grouping._grouped(batch) is None
    got = list(grouping.process(batch))
    expected = slice_groups.group(grouping._sliced_examples(batch))
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected):
        assert _plain({k: _arrays(v) for k, v in mine.items() if k != constants.SLICE_KEY_TYPES_KEY}) == _plain(
            {k: _arrays(v) for k, v in theirs.items() if k != constants.SLICE_KEY_TYPES_KEY}
        )
