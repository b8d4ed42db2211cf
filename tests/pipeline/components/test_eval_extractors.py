"""The Evaluator's extractors: TFMA's own, with features the eval config does not name dropped right before
TFMA splits each batch; what TFX's Evaluator finds through the pipeline's module_path. That the pipeline's
metrics come out the same, with a baseline model, is checked on a real run in
tests/pipeline/runners/test_local_runner.py."""

from __future__ import annotations

import numpy as np
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tensorflow_model_analysis.extractors import unbatch_extractor
from tfx.components.util import udf_utils

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.components import eval_extractors


def _config_text(config: tfma.EvalConfig) -> str:
    return text_format.MessageToString(config)


def test_the_serializing_stage_comes_first_and_the_drop_stage_right_before_unbatching():
    config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["company"])])
    default = [e.stage_name for e in tfma.default_extractors(eval_config=config)]
    ours = [e.stage_name for e in eval_extractors.custom_extractors(None, config, None)]
    position = default.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    assert ours == (
        [eval_extractors.SERIALIZE_STAGE_NAME] + default[:position] + [eval_extractors.STAGE_NAME] + default[position:]
    )


def test_the_pipelines_metrics_group_examples_by_slice_instead_of_unbatching_and_slicing():
    """The task's eval config, as TFX's Evaluator completes it: slice_groups' stage in place of TFMA's
    unbatching and slicing, and its combine function in TFMA's metrics evaluator (slice_groups.py)."""
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as evaluator
    from tensorflow_model_analysis.extractors import slice_key_extractor

    from pipeline.upstream import slice_groups
    from tests.pipeline.upstream.test_metric_inputs import _eval_config

    config = _eval_config(baseline=False)
    default = [e.stage_name for e in tfma.default_extractors(eval_config=config)]
    extractors = eval_extractors.custom_extractors(None, config, None)
    position = default.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    assert default[position + 1] == slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME
    assert [e.stage_name for e in extractors] == (
        [eval_extractors.SERIALIZE_STAGE_NAME]
        + default[:position]
        + [eval_extractors.STAGE_NAME, slice_groups.STAGE_NAME]
        + default[position + 2 :]
    )
    assert isinstance(extractors[position + 2].ptransform.fn, slice_groups.GroupBySlices)
    assert evaluator._ComputationsCombineFn is slice_groups.ComputationsCombineFn


def test_tfx_finds_the_extractors_through_the_pipelines_module_path():
    config = configs.load_config()
    [evaluator] = [c for c in pipeline_definition.create_components(config) if c.id == "Evaluator"]
    properties = evaluator.exec_properties
    assert udf_utils.try_get_fn(properties, "custom_extractors") is eval_extractors.custom_extractors


def test_features_named_in_the_config_are_kept_the_rest_dropped():
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate"), tfma.ModelSpec(name="baseline", is_baseline=True)],
        slicing_specs=[tfma.SlicingSpec(feature_keys=["payment_type"])],
        cross_slicing_specs=[
            tfma.CrossSlicingSpec(
                baseline_spec=tfma.SlicingSpec(feature_values={"company": "x"}),
                slicing_specs=[tfma.SlicingSpec()],
            )
        ],
        metrics_specs=[
            tfma.MetricsSpec(
                query_key="trip_id",
                metrics=[tfma.MetricConfig(class_name="NDCG", config='{"gain_key": "fare_gain"}')],
            )
        ],
    )
    column = np.arange(3)
    raw = {name: column for name in ("payment_type", "company", "trip_id", "fare_gain", "fare", "tips")}
    transformed = {"payment_type_xf": column, "fare_gain": column, "tips_xf": column}
    extracts = {
        "features": raw,
        "transformed_features": {"candidate": transformed, "baseline": dict(transformed)},
        "labels": column,
        "predictions": {"candidate": column, "baseline": column},
    }
    kept = eval_extractors.keep_named_features(extracts, _config_text(config), {"candidate", "baseline"})
    # fare only as part of fare_gain: kept, a name occurring anywhere keeps its feature.
    assert sorted(kept["features"]) == ["company", "fare", "fare_gain", "payment_type", "trip_id"]
    # Per model, and a name inside a longer one (payment_type_xf) is not named by its prefix.
    assert {model: sorted(features) for model, features in kept["transformed_features"].items()} == {
        "candidate": ["fare_gain"],
        "baseline": ["fare_gain"],
    }
    assert kept["labels"] is column and kept["predictions"] is extracts["predictions"]
    assert sorted(extracts["features"]) == sorted(raw)  # The input batch is left as it was.
