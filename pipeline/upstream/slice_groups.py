"""TFMA's metrics computed over groups of examples that share their slices, not one example at a time.

TFMA unbatches the Evaluator's extracts into one per example, then slices, preprocesses, shuffles and
combines each example on its own: each step is Python per example, and its metric combiners (AUC's
calibration histogram, the confusion matrix of accuracy, precision and recall, the label and prediction
means, the example count) each turn every example into a label, a prediction and a weight one call at a
time. That Python per example was most of the Evaluator's time (bench/README.md).

Here each batch becomes one extract per set of slice keys: a group of the examples with the same slices
(a `Rows` array holds their values along its first axis). The rows are grouped by the values of the
features the slice specs name, TFMA's slicer runs on one row of each group, and the labels, predictions
and weights are taken from the batch's arrays (`GroupBySlices`). Everything up to the combiners handles
a group as TFMA handles an example. The combiners get it through `ComputationsCombineFn`, TFMA's combine
function with one change: the combiners named in
`_ADDERS` take a group's labels and predictions as arrays, adding exactly what TFMA's per-example loops add
for the group's examples, in their order, to the last bit (tests/pipeline/upstream/test_slice_groups.py);
every other combiner, and any group these do not cover (example weights, top-k, class weights, sub keys,
dicts of outputs, labels outside [0, 1]...), gets the group's examples one at a time, as before. And the
calibration histograms it passes on, as accumulators and as outputs, are pickled as arrays (`BucketDict`,
`Histogram`): Beam's coder pickled their Buckets one call each.

What differs from TFMA's own path is the order in which a slice meets its examples: group by group
within a batch, instead of row by row. Counts, confusion matrices and AUC (sums of whole numbers) are the
same to the last bit; a sum of float predictions (the mean prediction) can differ in its last bits, as it
does in TFMA between runners that bundle the examples differently.

Grouping is only used where nothing else in TFMA sees a group as one example (`supported`): no query key,
no confidence intervals (they resample examples), no minimum slice size (it counts them), no preprocessor
beyond the standard inputs. Otherwise the Evaluator runs TFMA's extractors unchanged.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterator, Mapping

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as tfma_evaluator
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration,
    calibration_histogram,
    example_count,
    metric_specs,
    metric_types,
    metric_util,
)
from tensorflow_model_analysis.slicer import slicer_lib as slicer

# TFMA's metrics evaluator runs after the stage of this name, which it expects to have sliced the examples.
STAGE_NAME = slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME
# What a group carries: what the metrics read. A batch with any other extract (attributions, a custom
# extractor's output) is passed on one example at a time.
_STACKED = (constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.EXAMPLE_WEIGHTS_KEY)
_DROPPED = (
    constants.FEATURES_KEY,
    constants.TRANSFORMED_FEATURES_KEY,
    constants.SLICE_KEYS_KEY,
    constants.INPUT_KEY,
    constants.ARROW_RECORD_BATCH_KEY,
)
_KNOWN = frozenset(_STACKED + _DROPPED + (constants.SLICE_KEY_TYPES_KEY,))
# Standard inputs a group carries; a preprocessor asking for others (features) rules grouping out.
_STANDARD_INPUTS = frozenset(_STACKED)


class Rows(np.ndarray):
    """The values of a group's examples, stacked along the first axis (row i is example i's value)."""


def supported(eval_config: tfma.EvalConfig, eval_shared_model: Any = None) -> bool:
    """Whether TFMA computes the same metrics from groups as from examples, for this config."""
    options = eval_config.options
    if options.compute_confidence_intervals.value or options.min_slice_size.value > 1:
        return False
    if any(spec.query_key for spec in eval_config.metrics_specs):
        return False
    # One model, a list of them, or a dict by name (an EvalSharedModel is itself a named tuple).
    if isinstance(eval_shared_model, dict):
        models = list(eval_shared_model.values())
    elif isinstance(eval_shared_model, list):
        models = eval_shared_model
    else:
        models = [eval_shared_model]
    if any(
        model is not None and model.include_default_metrics and model.model_type == tfma.TF_KERAS
        for model in models
    ):
        return False  # a Keras model's compiled metrics bring their own preprocessors
    computations = [
        computation
        for computation in metric_specs.to_computations(list(eval_config.metrics_specs), eval_config=eval_config)
        if hasattr(computation, "combiner")
    ]
    if all(computation.preprocessors for computation in computations):
        # Only a computation without preprocessors has TFMA pass every combiner the labels and
        # predictions, which tell how many examples a group holds.
        return False
    for computation in computations:
        for preprocessor in getattr(computation, "preprocessors", None) or ():
            if type(preprocessor) is not metric_types.StandardMetricInputsPreprocessor:  # noqa: E721
                return False
            if not set(preprocessor.include_filter) <= _STANDARD_INPUTS:
                return False
    return True


def install() -> None:
    """Have TFMA's metrics evaluator, built after this in this process, combine with ComputationsCombineFn.

    The evaluator pickles its combine function into the Beam pipeline; by class, so each worker runs this
    module's, wherever it runs (a worker of a remote runner imports the installed project)."""
    tfma_evaluator._ComputationsCombineFn = ComputationsCombineFn


def extractor(eval_config: tfma.EvalConfig) -> tfma.extractors.Extractor:
    """The stage that replaces TFMA's unbatching and slicing: each batch split into groups (GroupBySlices)."""
    return tfma.extractors.Extractor(
        stage_name=STAGE_NAME, ptransform=beam.ParDo(GroupBySlices(eval_config, _slice_specs(eval_config)))
    )


def _slice_specs(eval_config: tfma.EvalConfig) -> list:
    """The slice specs TFMA's SliceKeyExtractor derives from an eval config, as it derives them."""
    specs = [slicer.SingleSliceSpec(spec=spec) for spec in eval_config.slicing_specs]
    for cross_slice_spec in eval_config.cross_slicing_specs:
        for spec in [cross_slice_spec.baseline_spec, *cross_slice_spec.slicing_specs]:
            single = slicer.SingleSliceSpec(spec=spec)
            if single not in specs:
                specs.append(single)
    return specs or [slicer.SingleSliceSpec()]


class GroupBySlices(beam.DoFn):
    """A batch of extracts in, one extract per set of slice keys out (or one per example).

    TFMA's slice keys of an example depend only on the values of the features its slice specs name. The
    batch's rows are grouped by those values with numpy, TFMA's unbatching and slicing run on one row of
    each group, and each group's labels, predictions and weights are taken from the batch's arrays: no
    Python per example. A batch this cannot take apart that way (a feature of several values per row,
    sparse or ragged values, a NaN among them, slice keys from SQL) goes through TFMA's unbatching and
    slicing example by example, then `group`; both give the same groups (tests compare)."""

    def __init__(self, eval_config: tfma.EvalConfig, slice_specs: list):
        self._slicer = slice_key_extractor.ExtractSliceKeysFn(eval_config, materialize=False)
        self._slice_specs = slice_specs
        self._model_names = [spec.name for spec in eval_config.model_specs]
        self._columns = sorted(
            {column for spec in slice_specs for column in spec.to_proto().feature_keys}
            | {column for spec in slice_specs for column in spec.to_proto().feature_values}
        )

    def process(self, batch: dict) -> Iterator[dict]:
        groups = self._grouped(batch)
        if groups is None:
            groups = group(self._sliced_examples(batch))
        yield from groups

    def _sliced_examples(self, batch: dict) -> list[dict]:
        return [
            sliced
            for example in unbatch_extractor._extract_unbatched_inputs(batch)
            for sliced in self._slicer.process(example, self._slice_specs)
        ]

    def _grouped(self, batch: dict) -> list[dict] | None:
        """The batch's groups, taken apart with numpy; None where only TFMA's per-example path can."""
        if not _KNOWN.issuperset(batch) or constants.SLICE_KEY_TYPES_KEY in batch:
            return None
        count = _batch_rows(batch)
        if count is None:
            return None
        codes = [np.zeros(count, dtype=np.int64)]
        for values in self._slicing_values(batch):
            if values is None:
                return None
            codes.append(np.unique(values, return_inverse=True)[1].reshape(count))
        _, first_rows, group_of_row = np.unique(
            np.stack(codes, axis=1), axis=0, return_index=True, return_inverse=True
        )
        group_of_row = group_of_row.reshape(count)
        # Groups in the order their first rows come, as `group` orders them.
        order = np.argsort(first_rows, kind="stable")
        representatives = first_rows[order]
        features = {
            key: batch[key] for key in (constants.FEATURES_KEY, constants.TRANSFORMED_FEATURES_KEY) if key in batch
        }
        sample = _take(features, representatives, count)
        if sample is _UNSTACKABLE:
            return None
        sliced = self._sliced_examples(sample)
        if len(sliced) != len(representatives):
            return None
        # Rows whose values differ but whose slices do not (a value no feature_values spec names) are
        # one group, as `group` makes them.
        merged: dict[frozenset, int] = {}
        merged_of_group = np.empty(len(order), dtype=np.int64)
        firsts = []
        for number, example in enumerate(sliced):
            key = frozenset(example[constants.SLICE_KEY_TYPES_KEY].tolist())
            if key not in merged:
                merged[key] = len(merged)
                firsts.append(example)
            merged_of_group[number] = merged[key]
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        row_group = merged_of_group[rank[group_of_row]]
        members = np.argsort(row_group, kind="stable")
        bounds = np.searchsorted(row_group[members], np.arange(len(merged) + 1))
        groups = []
        for number, example in enumerate(firsts):
            rows_of_group = members[bounds[number] : bounds[number + 1]]
            stacked = {constants.SLICE_KEY_TYPES_KEY: example[constants.SLICE_KEY_TYPES_KEY]}
            for key in _STACKED:
                value = _take(batch.get(key), rows_of_group, count, as_rows=True)
                if value is _UNSTACKABLE:
                    return None
                if value is not None:
                    stacked[key] = value
            if rows(stacked) is None:
                return None
            groups.append(stacked)
        return groups

    def _slicing_values(self, batch: dict) -> Iterator[np.ndarray | None]:
        """Each batched column the slicer may read for the spec's columns: raw features, and transformed
        ones (per model when there are several); None for one numpy cannot group rows by."""
        dicts = [batch.get(constants.FEATURES_KEY)]
        transformed = batch.get(constants.TRANSFORMED_FEATURES_KEY)
        if isinstance(transformed, Mapping):
            if len(self._model_names) > 1:
                dicts += [transformed.get(name) for name in self._model_names]
            else:
                dicts.append(transformed)
        for features in dicts:
            if features is None:
                continue
            if not isinstance(features, Mapping):
                yield None
                return
            for column in self._columns:
                if column not in features:
                    continue
                values = features[column]
                if (
                    type(values) is not np.ndarray  # noqa: E721
                    or values.ndim not in (1, 2)
                    or (values.ndim == 2 and values.shape[1] != 1)
                    or values.dtype.kind not in "biuOSU"
                ):
                    yield None  # several values a row, floats (NaN), sparse or ragged: per example
                    return
                if values.dtype.kind == "O" and not all(isinstance(value, (bytes, str)) for value in values.ravel()):
                    yield None
                    return
                yield values.reshape(len(values))


def _batch_rows(batch: dict) -> int | None:
    """The batch's number of rows, from its labels or predictions (the first array found)."""
    for key in (constants.LABELS_KEY, constants.PREDICTIONS_KEY):
        value = batch.get(key)
        while isinstance(value, Mapping) and value:
            value = next(iter(value.values()))
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            return value.shape[0]
    return None


def _take(value: Any, rows_taken: np.ndarray, count: int, as_rows: bool = False) -> Any:
    """The given rows of a batched value (dicts key by key), each row as TFMA's unbatching gives it; as
    Rows for a group. _UNSTACKABLE for a value that is not a numpy array of the batch's rows."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        taken = {}
        for key, item in value.items():
            taken[key] = _take(item, rows_taken, count, as_rows)
            if taken[key] is _UNSTACKABLE:
                return _UNSTACKABLE
        return taken
    if type(value) is not np.ndarray or value.ndim < 1 or value.shape[0] != count:  # noqa: E721
        return _UNSTACKABLE
    if not as_rows:
        return value[rows_taken]
    if value.dtype == object:
        return _UNSTACKABLE
    # TFMA's unbatching gives each row of a one-dimensional array as an array of one value.
    taken = value[rows_taken] if value.ndim > 1 else value[rows_taken][:, None]
    return np.ascontiguousarray(taken).view(Rows)


def group(examples: list[dict]) -> list[dict]:
    """Sliced per-example extracts grouped by their slice keys, each group one extract; the examples as
    they are if any carries something a group does not (then nothing in the batch is grouped)."""
    if any(not _KNOWN.issuperset(example) for example in examples):
        return examples
    by_slices: dict[frozenset, list[dict]] = collections.defaultdict(list)
    for example in examples:
        by_slices[frozenset(example[constants.SLICE_KEY_TYPES_KEY].tolist())].append(example)
    groups = []
    for members in by_slices.values():
        stacked = {constants.SLICE_KEY_TYPES_KEY: members[0][constants.SLICE_KEY_TYPES_KEY]}
        for key in _STACKED:
            values = [member.get(key) for member in members]
            value = _stack(values)
            if value is _UNSTACKABLE:
                return examples
            if value is not None:
                stacked[key] = value
        if rows(stacked) is None:
            return examples  # neither labels nor predictions: nothing would tell how many it holds
        groups.append(stacked)
    return groups


_UNSTACKABLE = object()


def _stack(values: list) -> Any:
    """One value holding each example's: dicts key by key, arrays as Rows; _UNSTACKABLE if they differ
    in structure, shape or dtype (a label missing in one example, a ragged prediction)."""
    first = values[0]
    if first is None:
        return None if all(value is None for value in values) else _UNSTACKABLE
    if isinstance(first, Mapping):
        if any(not isinstance(value, Mapping) or value.keys() != first.keys() for value in values):
            return _UNSTACKABLE
        stacked = {}
        for key in first:
            stacked[key] = _stack([value[key] for value in values])
            if stacked[key] is _UNSTACKABLE:
                return _UNSTACKABLE
        return stacked
    if type(first) is not np.ndarray or first.dtype == object:  # noqa: E721
        return _UNSTACKABLE
    if any(
        type(value) is not np.ndarray or value.shape != first.shape or value.dtype != first.dtype  # noqa: E721
        for value in values
    ):
        return _UNSTACKABLE
    return np.stack(values).view(Rows)


def rows(element: Any) -> int | None:
    """How many examples a group's extract (or standard metric inputs) holds; None for one example."""
    if isinstance(element, Rows):
        return element.shape[0]
    if isinstance(element, Mapping):
        for value in element.values():
            count = rows(value)
            if count is not None:
                return count
    return None


def example(element: Any, index: int) -> Any:
    """Example `index` of a group, as TFMA's unbatching gave it (plain arrays, same shapes and dtypes)."""
    if isinstance(element, Rows):
        return element.view(np.ndarray)[index]
    if isinstance(element, metric_types.StandardMetricInputs):
        return metric_types.StandardMetricInputs({key: example(value, index) for key, value in element.items()})
    if isinstance(element, Mapping):
        return {key: example(value, index) for key, value in element.items()}
    return element


@beam.typehints.with_input_types(tfma.types.Extracts)
@beam.typehints.with_output_types(metric_types.MetricsDict)
class ComputationsCombineFn(tfma_evaluator._ComputationsCombineFn):
    """TFMA's combine function, taking a group's examples in one call where a combiner allows it.

    Every method TFMA's class defines is defined here too: Beam pickles them (bound, by value, for its
    hot-key fan-out) and a method of TFMA's class would bring that class, which install() has made
    unreachable by name, by value with it."""

    # Every accumulator and output leaving these methods has its calibration histograms in classes that
    # Beam's coder pickles in one call (BucketDict, Histogram): Beam's hot-key fan-out passes accumulators
    # on without compact().

    def compact(self, accumulator: Any) -> Any:
        return _packed(super().compact(accumulator))

    def merge_accumulators(self, accumulators, *args, **kwargs):
        return _packed(super().merge_accumulators(accumulators, *args, **kwargs))

    def extract_output(self, accumulator: Any) -> metric_types.MetricsDict:
        output = super().extract_output(accumulator)
        for key, value in output.items():
            if type(value) is list and value and all(type(b) is calibration_histogram.Bucket for b in value):
                output[key] = Histogram(value)
        return output

    def add_input(self, accumulator: Any, element: dict):
        return _packed(self._add_input(accumulator, element))

    def _add_input(self, accumulator: Any, element: dict):
        inputs = element.get(tfma_evaluator._DEFAULT_COMBINER_INPUT_KEY) or ()
        counts = [rows(item) for item in inputs]
        if all(count is None for count in counts):
            return super().add_input(accumulator, element)
        results = []
        for index, (combiner, state) in enumerate(zip(self._combiners, accumulator)):
            if element[tfma_evaluator._COMBINER_INPUTS_KEY][index] is not None:
                raise ValueError(
                    f"{combiner} has a preprocessor of its own, which examples grouped by slice do not "
                    "support (slice_groups.supported decides whether to group)"
                )
            try:
                for item, count in zip(inputs, counts):
                    state = _add(combiner, state, item, count)
            except Exception as error:
                raise RuntimeError(f'add_input failed on "{combiner}" with inputs:\n{inputs}') from error
            results.append(state)
        return tuple(results)


def _bucket_arrays(buckets: list) -> tuple[np.ndarray, np.ndarray]:
    """Buckets' ids (int64) and sums (float64: weighted labels, predictions, examples): the same numbers."""
    return (
        np.fromiter((b.bucket_id for b in buckets), dtype=np.int64, count=len(buckets)),
        np.array(
            [(b.weighted_labels, b.weighted_predictions, b.weighted_examples) for b in buckets], dtype=np.float64
        ).reshape(len(buckets), 3),
    )


def _buckets(ids: np.ndarray, sums: np.ndarray) -> list:
    return [
        calibration_histogram.Bucket(bucket_id, labels, predictions, examples)
        for bucket_id, (labels, predictions, examples) in zip(ids.tolist(), sums.tolist())
    ]


class BucketDict(dict):
    """A calibration histogram's state (TFMA's dict of bucket id to Bucket), pickled as two arrays.

    Beam's coder pickles a plain dict's values one call each (a dataclass it has no coder for), for
    every slice's histogram of up to 10,000 buckets, and again for Beam's size estimate of each output
    (bench/README.md). Everything else reads it as the dict it is."""

    def __reduce__(self):
        return _bucket_dict, _bucket_arrays(list(self.values()))


def _bucket_dict(ids: np.ndarray, sums: np.ndarray) -> BucketDict:
    return BucketDict((bucket.bucket_id, bucket) for bucket in _buckets(ids, sums))


class Histogram(list):
    """A calibration histogram as TFMA's combiner outputs it (its Buckets in a list), pickled as two
    arrays: the slices' metrics cross several stages after the combine."""

    def __reduce__(self):
        return _histogram, _bucket_arrays(self)


def _histogram(ids: np.ndarray, sums: np.ndarray) -> Histogram:
    return Histogram(_buckets(ids, sums))


def _is_histogram_state(state: Any) -> bool:
    if type(state) is not dict or not state:
        return False
    return all(type(b) is calibration_histogram.Bucket and b.bucket_id == key for key, b in state.items())


def _packed(accumulator: tuple) -> tuple:
    """The combine function's accumulator with its calibration histograms' states as BucketDicts."""
    return tuple(BucketDict(state) if _is_histogram_state(state) else state for state in accumulator)


def _add(combiner: Any, state: Any, item: metric_types.StandardMetricInputs, count: int | None) -> Any:
    """A combiner's state with one example or a group of `count` added: a group at once where an adder
    takes it."""
    if count is None:
        return combiner.add_input(state, item)
    add = _ADDERS.get(type(combiner))
    added = add(combiner, state, item, count) if add else None
    if added is not None:
        return added
    for index in range(count):
        state = combiner.add_input(state, example(item, index))
    return state


# A group's labels and predictions, as TFMA's per-example function would yield them, one row per example.


def _columns(
    combiner: Any,
    inputs: metric_types.StandardMetricInputs,
    fractional_labels: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(labels, predictions, weights) of every tuple TFMA's to_label_prediction_example_weight yields for
    the group's examples in turn, as float64 arrays; None where that function does more than read one
    number each (then the combiner takes the examples one at a time)."""
    key = combiner._key
    if key.sub_key is not None or combiner._aggregation_type is not None or combiner._class_weights:
        return None
    if combiner._example_weighted:
        return None
    label, prediction = _lookup(inputs, combiner._eval_config, key.model_name, key.output_name)
    if not (isinstance(label, Rows) and isinstance(prediction, Rows)):
        return None
    if label.dtype.kind not in "iuf" or prediction.dtype.kind not in "iuf":
        return None
    count = label.shape[0]
    if label.size != count or prediction.size != count:
        return None  # not one value per example
    label = label.view(np.ndarray).reshape(count)
    prediction = prediction.view(np.ndarray).reshape(count)
    if np.isnan(prediction).any():
        return None  # TFMA's loops raise their own errors
    # TFMA's unweighted example weight, made a float64 array by its flattening.
    weights = np.ones(count)
    if not fractional_labels:
        return label.astype(np.float64), prediction.astype(np.float64), weights
    if ((label < 0) | (label > 1)).any() or np.isnan(label).any():
        return None
    # Each example splits into (0, p, w * (1 - l)) and (1, p, w * l), tuples of weight 0 left out; in
    # the label's dtype, as TFMA computes them.
    split_labels = np.stack([np.zeros(count), np.ones(count)], axis=1)
    split_weights = np.stack([weights * (1 - label), weights * label], axis=1)
    split_predictions = np.stack([prediction, prediction], axis=1)
    kept = split_weights != 0.0
    return (
        split_labels[kept],
        split_predictions[kept].astype(np.float64),
        split_weights[kept].astype(np.float64),
    )


def _lookup(inputs, eval_config, model_name: str, output_name: str) -> tuple[Any, Any]:
    """The label and prediction TFMA's function finds for a model and output (its lookups, in order)."""
    label_key = ""
    if eval_config and eval_config.model_specs:
        for spec in eval_config.model_specs:
            if (spec.name if len(eval_config.model_specs) > 1 else "") == model_name:
                label_key = spec.label_key
                break
    label, prediction = inputs.label, inputs.prediction
    if label_key:
        label = _optional(label, label_key)
    for name in filter(None, (model_name, output_name)):
        if prediction is not None:
            if not isinstance(prediction, Mapping) or name not in prediction:
                return None, None
            prediction = prediction[name]
        label = _optional(label, name)
    return label, prediction


def _optional(value: Any, key: str) -> Any:
    if isinstance(value, Mapping) and key in value:
        return value[key]
    return value


def _sequential_sum(start: float, values: np.ndarray) -> float:
    """start + values[0] + values[1] + ..., added left to right as TFMA's loops add them (np.cumsum
    accumulates in order; np.sum would add pairwise and round differently)."""
    if not len(values):
        return start
    return float(np.cumsum(np.concatenate([[start], values]))[-1])


def _add_example_count(combiner, accumulator, inputs, count):
    if combiner._example_weighted and inputs.example_weight is not None:
        return None
    # TFMA adds np.sum(np.array(1.0)) per example: whole numbers, exact in any order.
    return accumulator + np.float64(count)


def _add_calibration_histogram(combiner, accumulator, inputs, count):
    columns = _columns(combiner, inputs, combiner._fractional_labels)
    if columns is None:
        return None
    labels, predictions, weights = columns
    bucketed = predictions if combiner._prediction_based_bucketing else labels
    if np.isnan(bucketed).any():
        return None
    # TFMA's _bucket_index, element-wise: the same float operations, then truncation.
    position = (bucketed - combiner._left) / combiner._range * combiner._num_buckets + 1
    buckets = np.where(
        position < 0, 0, np.where(position >= combiner._num_buckets + 1, combiner._num_buckets + 1, position)
    ).astype(np.int64)
    ids, slots = np.unique(buckets, return_inverse=True)
    # Each bucket's existing sums first, then its examples' in order: bincount adds in input order, so
    # every sum is the one TFMA's loop reaches.
    existing = [accumulator.get(int(bucket_id)) for bucket_id in ids]
    held = np.array([slot for slot, bucket in enumerate(existing) if bucket is not None], dtype=np.int64)
    order = np.concatenate([held, slots])

    def sums(attribute: str, values: np.ndarray) -> np.ndarray:
        start = np.array([getattr(existing[slot], attribute) for slot in held], dtype=np.float64)
        return np.bincount(order, weights=np.concatenate([start, values]), minlength=len(ids))

    weighted_labels = sums("weighted_labels", labels * weights)
    weighted_predictions = sums("weighted_predictions", predictions * weights)
    weighted_examples = sums("weighted_examples", weights)
    for slot, bucket_id in enumerate(ids.tolist()):
        bucket = existing[slot]
        if bucket is None:
            accumulator[bucket_id] = calibration_histogram.Bucket(
                bucket_id,
                float(weighted_labels[slot]),
                float(weighted_predictions[slot]),
                float(weighted_examples[slot]),
            )
        else:
            bucket.weighted_labels = float(weighted_labels[slot])
            bucket.weighted_predictions = float(weighted_predictions[slot])
            bucket.weighted_examples = float(weighted_examples[slot])
    return accumulator


def _add_confusion_matrices(combiner, accumulator, inputs, count):
    if combiner._example_id_key or not _is_tfma_function(combiner._extract_label_prediction_and_weight):
        return None
    columns = _columns(combiner, inputs, combiner._enable_fractional_labels)
    if columns is None:
        return None
    labels, predictions, weights = columns
    if (weights != np.floor(weights)).any():
        return None  # fractional weights: their sums would round differently grouped
    # TFMA's loop over thresholds and tuples, given the group's tuples at once. Its sums are of the
    # weights, here whole numbers: exact in any grouping.
    return combiner._binary_confusion_matrices.add_input(
        accumulator=accumulator,
        labels=labels.tolist(),
        predictions=predictions.tolist(),
        example_weights=weights.tolist(),
        example_id=None,
    )


def _add_weighted_labels_predictions(combiner, accumulator, inputs, count):
    columns = _columns(combiner, inputs, fractional_labels=False)
    if columns is None:
        return None
    labels, predictions, weights = columns
    accumulator.total_weighted_examples = _sequential_sum(accumulator.total_weighted_examples, weights)
    accumulator.total_weighted_labels = _sequential_sum(accumulator.total_weighted_labels, labels * weights)
    accumulator.total_weighted_predictions = _sequential_sum(
        accumulator.total_weighted_predictions, predictions * weights
    )
    return accumulator


def _is_tfma_function(function: Callable) -> bool:
    """TFMA's to_label_prediction_example_weight, or metric_inputs' equivalent of it."""
    return function is metric_util.to_label_prediction_example_weight or getattr(function, "general", None) in (
        metric_util.to_label_prediction_example_weight,
        getattr(metric_util.to_label_prediction_example_weight, "general", None),
    )


_ADDERS: dict[type, Callable] = {
    example_count._ExampleCountCombiner: _add_example_count,
    calibration_histogram._CalibrationHistogramCombiner: _add_calibration_histogram,
    binary_confusion_matrices._BinaryConfusionMatrixCombiner: _add_confusion_matrices,
    calibration._WeightedLabelsPredictionsExamplesCombiner: _add_weighted_labels_predictions,
}

