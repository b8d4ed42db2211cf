"""TFMA's default extractors, with the features nothing reads dropped before each batch is split.

TFMA splits every batch of extracts into one dict per example before slicing and metrics: every raw
feature, every transformed feature, every model's. What comes after reads the labels, predictions and
weights (already extracted by then) and, of the features, only those the eval config names: slice
features, a ranking metric's query key, a metric's or preprocessor's feature keys. Splitting the rest
cost a sixth of the Evaluator at 100k eval rows. The Evaluator gets these through TFX's `custom_extractors`
hook (its `module_path`), which also brings the fast metric inputs (`metric_inputs`) to wherever the
Evaluator runs, Kubeflow and Vertex included. A feature a custom metric reads without the eval config
naming it would be dropped too: name it in the metric's config.
"""

from __future__ import annotations

import apache_beam as beam
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors import unbatch_extractor

from pipeline.beam import metric_inputs

metric_inputs.install()

STAGE_NAME = "DropUnreadFeatures"
_FEATURE_KEYS = (constants.FEATURES_KEY, constants.TRANSFORMED_FEATURES_KEY)


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config):
    """What the TFX Evaluator calls: TFMA's defaults, unread features dropped just before unbatching."""
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model,
        eval_config=eval_config,
        tensor_adapter_config=tensor_adapter_config,
    )
    stages = [extractor.stage_name for extractor in extractors]
    if unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME not in stages:
        return extractors
    position = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    drop = tfma.extractors.Extractor(
        stage_name=STAGE_NAME,
        ptransform=beam.Map(
            keep_named_features,
            text_format.MessageToString(eval_config),
            {spec.name for spec in eval_config.model_specs},
        ),
    )
    return extractors[:position] + [drop] + extractors[position:]


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
