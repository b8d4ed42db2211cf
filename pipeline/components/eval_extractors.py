"""TFMA's default extractors, with the features nothing reads dropped before each batch is split.

TFMA splits every batch of extracts into one dict per example before slicing and metrics: every raw
feature, every transformed feature, every model's. What comes after reads the labels, predictions and
weights (already extracted by then) and, of the features, only those the eval config names: slice
features, a ranking metric's query key, a metric's or preprocessor's feature keys. Splitting the rest
is Python per example for nothing, a sizeable share of the Evaluator's time (bench/README.md). The
Evaluator gets these through TFX's `custom_extractors` hook (its `module_path`), which also installs the
fast metric inputs (pipeline/upstream/metric_inputs.py) wherever the Evaluator runs, Kubeflow and Vertex
included. A
feature a custom metric reads without the eval config naming it would be dropped too: name it in the
metric's config.

Examples stored as Parquet come without the serialized tf.Examples TFMA feeds a model's
`serving_default` signature (tfx_bsl's ParquetTFXIO attaches no raw record column): a first stage
encodes each batch's rows into them, with tfx_bsl's C++ encoder, so every model, the baseline trained on
tf.Examples included, is called as it would be served.

Where the eval config allows it, TFMA's unbatching and slicing give way to one stage that splits each
batch into groups of examples with the same slices, which TFMA's metrics then take a group at a time
(`slice_groups`).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor

from pipeline import upstream
from pipeline.components import csv_ranges

STAGE_NAME = "DropUnreadFeatures"
SERIALIZE_STAGE_NAME = "SerializeParquetRows"
_FEATURE_KEYS = (constants.FEATURES_KEY, constants.TRANSFORMED_FEATURES_KEY)


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config):
    """What the TFX Evaluator calls: TFMA's defaults, unread features dropped just before unbatching, and
    the unbatching and slicing done by slice groups where the eval config allows it."""
    upstream.install("metric_inputs")
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model,
        eval_config=eval_config,
        tensor_adapter_config=tensor_adapter_config,
    )
    serialize = tfma.extractors.Extractor(
        stage_name=SERIALIZE_STAGE_NAME, ptransform=beam.Map(with_serialized_examples)
    )
    extractors = [serialize] + extractors
    stages = [extractor.stage_name for extractor in extractors]
    if unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME not in stages:
        return extractors
    position = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    if stages[position + 1 : position + 2] == [
        slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME
    ] and upstream.usable("slice_groups"):
        # Only on the TFMA it was verified on: it reaches into TFMA's internals as it is imported.
        from pipeline.upstream import slice_groups

        if slice_groups.supported(eval_config, eval_shared_model):
            # In place of TFMA's unbatching and slicing: groups of examples with the same slices.
            upstream.install("slice_groups")
            extractors[position : position + 2] = [slice_groups.extractor(eval_config)]
    drop = tfma.extractors.Extractor(
        stage_name=STAGE_NAME,
        ptransform=beam.Map(
            keep_named_features,
            text_format.MessageToString(eval_config),
            {spec.name for spec in eval_config.model_specs},
        ),
    )
    return extractors[:position] + [drop] + extractors[position:]


def with_serialized_examples(extracts: dict) -> dict:
    """The batch with its rows as serialized tf.Examples in TFMA's raw input column, where TFXIO puts
    them when the examples are tf.Examples (then the batch is left as it is)."""
    batch = extracts.get(constants.ARROW_RECORD_BATCH_KEY)
    if batch is None or constants.ARROW_INPUT_COLUMN in batch.schema.names:
        return extracts
    serialized = csv_ranges.serialize_rows(batch)
    offsets = pa.array(np.arange(len(serialized) + 1, dtype=np.int32))
    raw = pa.ListArray.from_arrays(offsets, pa.array(serialized, pa.binary()))
    with_raw = pa.RecordBatch.from_arrays(
        batch.columns + [raw], batch.schema.names + [constants.ARROW_INPUT_COLUMN]
    )
    return {**extracts, constants.ARROW_RECORD_BATCH_KEY: with_raw}


def keep_named_features(extracts: dict, config_text: str, model_names: set[str]) -> dict:
    """The batch with only the features whose name occurs in the eval config's text, in each model's
    features where they are keyed by model name. A name occurring anywhere keeps its feature, as part
    of a longer name or a metric's JSON config too: keeping one too many costs time, not results."""
    kept = dict(extracts)
    for key in _FEATURE_KEYS:
        if isinstance(kept.get(key), dict):
            kept[key] = _named(kept[key], config_text, model_names)
    return kept


def _named(features: dict, config_text: str, model_names: set[str]) -> dict:
    kept = {}
    for name, value in features.items():
        if name in model_names and isinstance(value, dict):
            kept[name] = _named(value, config_text, set())
        elif name in config_text:
            kept[name] = value
    return kept
