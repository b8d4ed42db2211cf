"""The one definition of the pipeline, a pure function from configuration to a TFX `Pipeline`.

Every runner (local, Beam, Airflow, Kubeflow/Vertex, Luigi) and the notebook build their components
here; none of them knows the pipeline's shape.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import importlib.util
import os
from pathlib import Path
from typing import Iterator

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

# TFX's modules one by one, not `from tfx import v1`: that also imports tfx.v1.extensions and with it
# the Vertex AI client, seconds of every run's start-up for nothing this pipeline uses (bench/README.md).
from tfx.components.evaluator.component import Evaluator
from tfx.components.example_validator.component import ExampleValidator
from tfx.components.schema_gen.component import SchemaGen
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.dsl.compiler import compiler
from tfx.dsl.compiler import constants as compiler_constants
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import (
    LatestArtifactStrategy,
)
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.portable import runtime_parameter_utils
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.proto.orchestration import pipeline_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from pipeline import configs, inputs
from pipeline.beam import profiles
from pipeline.components import (
    atomic_pusher,
    baseline_model,
    csv_example_gen,
    curated_schema,
    data_gate,
    eval_extractors,
    parquet_components,
)
from pipeline.configs import PipelineConfig
from pipeline.guards import numeric_drift
from pipeline.metadata import store

EXAMPLE_GEN_ID = "CsvExampleGen"
RESOLVER_ID = baseline_model.RESOLVER_ID
CURATED_SCHEMA_ID = curated_schema.CURATED_SCHEMA_ID
# TFX reads this variable when a Transform or Trainer is constructed.
_NO_PACKAGING_ENV = "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES"


# How a task's module files load the modules beside them (`features = _sibling("features")`): TFX loads a
# module file by path or from a wheel of its folder, never as part of its package, so a relative import
# cannot reach them (examples/taxi_fare/modules/transform_module.py).
SIBLING_LOADER = "_sibling"


def _sibling_files(path: Path) -> list[Path]:
    """The files beside `path` that it loads with SIBLING_LOADER and a literal name."""
    found = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == SIBLING_LOADER
                and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            sibling = path.with_name(f"{node.args[0].value}.py")
            found += [sibling] if sibling.is_file() else []
    return found


def _imported_names(path: Path) -> list[str]:
    """Every module name an `import` or `from ... import` in the file may refer to."""
    names = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _project_file(name: str, package: str) -> Path | None:
    """The source file of module `name` as Python would import it now, if it is the user's: in the
    module files' own package (`modules`, wherever it is installed) or elsewhere in this project; None
    for the standard library, installed packages and names that are attributes."""
    top = name.split(".")[0]
    try:
        if top != package and not _in_project(importlib.util.find_spec(top)):
            return None
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _in_project(spec) -> bool:
    if spec is None or not spec.origin:
        return False
    origin = Path(spec.origin).resolve()
    return configs.PROJECT_ROOT in origin.parents and "site-packages" not in origin.parts


def module_sources(module_file: str) -> list[Path]:
    """The user module and every project module it imports or loads beside it (SIBLING_LOADER), directly or
    not, sorted: what `module_fingerprint` hashes (and `pipeline plan` names when the hash changed)."""
    package = Path(module_file).resolve().parent.name
    seen: set[Path] = set()
    todo = [Path(module_file).resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        found = [_project_file(name, package) for name in _imported_names(path)] + _sibling_files(path)
        todo += [file.resolve() for file in found if file]
    return sorted(seen)


def module_fingerprint(module_file: str) -> str:
    """Content hash of a user module and of every project module it imports or loads, directly or not.

    It goes into the component's `custom_config`, so editing exactly the code a component runs
    (features.py, or any helper module a fork adds beside it) invalidates its cache, and nothing else's.
    """
    digest = hashlib.sha256()
    for path in module_sources(module_file):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _user_module_packaging(enabled: bool) -> Iterator[None]:
    """Whether TFX packages module files into wheels under pipeline_root.

    Remote workers (Kubeflow, Vertex, Dataflow) need the wheels; in-process runners import the files
    directly, which saves a wheel build per component at compile time and a pip install per use.
    """
    previous = os.environ.pop(_NO_PACKAGING_ENV, None)
    if not enabled:
        os.environ[_NO_PACKAGING_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(_NO_PACKAGING_ENV, None)
        if previous is not None:
            os.environ[_NO_PACKAGING_ENV] = previous


def _blessing_threshold(bound: float, max_change: float, higher_is_better: bool) -> tfma.MetricThreshold:
    """The blessing metric reaches its bound (at least a lower bound, or at most an upper bound where lower
    is better) and is not worse than the baseline's by more than the allowed change (TFMA reads a change of 0
    as no threshold, hence the tiny number)."""
    allowed = max(max_change, 1e-10)
    if higher_is_better:
        value = tfma.GenericValueThreshold(lower_bound={"value": bound})
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -allowed}
        )
    else:
        value = tfma.GenericValueThreshold(upper_bound={"value": bound})
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.LOWER_IS_BETTER, absolute={"value": allowed}
        )
    # The change threshold is ignored on the first run, when there is no blessed baseline yet.
    return tfma.MetricThreshold(value_threshold=value, change_threshold=change)


# The calibration plot's buckets of predicted probability: as many as a chart of it can show apart.
CALIBRATION_BUCKETS = 20
# The confusion matrix plot's thresholds, i / PLOT_THRESHOLDS for i in 0..PLOT_THRESHOLDS (0.5 among them):
# enough points for a smooth ROC curve; TFMA's default, 1,000, wrote 5 times the protos for no visible gain.
PLOT_THRESHOLDS = 200


def plot_metrics(multiclass: bool, regression: bool = False) -> list[tfma.MetricConfig]:
    """TFMA's plots the report draws (pipeline/governance/views.py), per slice: for a binary task the
    confusion matrices at PLOT_THRESHOLDS thresholds (the ROC and precision-recall curves, and the matrix at
    the decision threshold, 0.5, one of them) and the calibration histogram; for a multi-class task the
    confusion matrix of the predicted class (the most probable); none for a regression, whose label has no
    classes to confuse or calibrate against."""
    if regression:
        return []
    if multiclass:
        return [tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot")]
    return [
        tfma.MetricConfig(class_name="ConfusionMatrixPlot", config=json.dumps({"num_thresholds": PLOT_THRESHOLDS})),
        tfma.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": CALIBRATION_BUCKETS})),
    ]


def create_eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA settings from the task: its metrics overall and per slice (and per class, for a multi-class
    task), and the blessing: the task's metric on the whole eval split, and on each slice the task names
    (blessing_slice_thresholds), reaches its bound and is not worse than the baseline's on the same rows by
    more than the allowed change (a lower bound and decrease, or, for a metric where lower is better such
    as a regression's error, an upper bound and increase). A slice that decides is judged on its own because
    an overall number can hide it: rows that are trivial to predict lift the whole split's metric (the default
    task's BLESSING_SLICE_THRESHOLDS says where)."""
    task = config.task_spec
    slice_thresholds = [
        tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec(feature_values={bound.feature: bound.value})],
            threshold=_blessing_threshold(bound.bound, bound.max_change, task.blessing_higher_is_better),
        )
        for bound in config.slice_thresholds
    ]
    metrics = []
    for class_name in task.metrics:
        metric = tfma.MetricConfig(class_name=class_name)
        if configs.metric_name(class_name) == task.blessing_metric:
            # The whole eval split, and only the slices the task chose: a small slice's metric is noise.
            metric.per_slice_thresholds.append(
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=_blessing_threshold(
                        config.blessing_bound, config.blessing_max_change, task.blessing_higher_is_better
                    ),
                )
            )
            metric.per_slice_thresholds.extend(slice_thresholds)
        metrics.append(metric)
    metrics_specs = [tfma.MetricsSpec(metrics=metrics)]
    if task.per_class_metrics:
        metrics_specs.append(
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name=name) for name in task.per_class_metrics],
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(len(task.classes)))}),
            )
        )
    plots = plot_metrics(task.multiclass, task.regression)
    if plots:
        metrics_specs.append(tfma.MetricsSpec(metrics=plots))
    # TFMA computes metrics only on the slices it is asked for: a judged slice whose feature is not sliced
    # by already gets its own spec.
    judged_apart = sorted({(bound.feature, bound.value) for bound in config.slice_thresholds
                           if bound.feature not in config.slice_feature_keys})
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Evaluate through the exported signatures (every task's run_fn exports these two).
                # Left unset, TFMA probes whether the model loads as Keras first, a full second load.
                model_type=tfma.TF_GENERIC,
                signature_name="serving_default",
                label_key=task.label_key,
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in config.slice_feature_keys]
        + [tfma.SlicingSpec(feature_values={feature: value}) for feature, value in judged_apart],
        metrics_specs=metrics_specs,
    )


def create_components(
    config: PipelineConfig, run_input: inputs.RunInput | None = None, tfx_strategies_only: bool = False
) -> list:
    """All components in topological order, wired to each other.

    `run_input`, the input a runner's pre-flight check resolved, sizes the eval split; without it (a
    compiled pipeline runs later) the input is resolved now. `tfx_strategies_only` is for TFX's Kubeflow
    V2 compiler, which turns only TFX's own resolver strategies into Vertex queries (a query over an
    empty channel resolves nothing, as LatestIfAnyStrategy does); the Evaluator's baseline is then the
    newest blessed model, so an unchanged re-run evaluates the model against itself again.
    """
    train_buckets, eval_buckets = inputs.split_hash_buckets(config, run_input)
    # TFX's CsvExampleGen with a batched executor (pipeline/components/csv_example_gen.py), writing the
    # examples as Parquet: StatisticsGen and Transform read its columns without decoding tf.Examples.
    example_gen = csv_example_gen.CsvExampleGen(
        input_base=config.data_root,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=inputs.SPLIT_NAME, pattern=config.input_pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
                ]
            )
        ),
        output_data_format=example_gen_pb2.FORMAT_PARQUET,
        output_file_format=example_gen_pb2.FILE_FORMAT_PARQUET,
    ).with_id(EXAMPLE_GEN_ID)
    # Finer quantiles than TFDV's default ten: what the gate's numeric drift check compares.
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=numeric_drift.stats_options()
    )
    # The inferred schema is a candidate for review (scripts/update_schema.py), not what the
    # pipeline trusts: validation and training use the curated, committed one.
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    schema_importer = curated_schema.CuratedSchemaImporter(schema_file=config.schema_path).with_id(
        CURATED_SCHEMA_ID
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
    )
    # The statistics of the last data that passed the gate: the baseline its drift check compares with.
    validated_statistics_resolver = Resolver(
        strategy_class=LatestArtifactStrategy if tfx_strategies_only else data_gate.LatestIfAnyStrategy,
        statistics=Channel(
            type=standard_artifacts.ExampleStatistics,
            producer_component_id=data_gate.DATA_GATE_ID,
            output_key=data_gate.VALIDATED_STATISTICS_KEY,
        ),
    ).with_id(data_gate.BASELINE_RESOLVER_ID)
    gate = data_gate.DataGate(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        baseline_statistics=validated_statistics_resolver.outputs["statistics"],
        input_base=config.data_root,
        input_pattern=config.input_pattern,
        min_rows={"train": config.min_train_rows, "eval": config.min_eval_rows},
        numeric_drift_min_distance=config.numeric_drift_min_distance,
        numeric_drift_overrides=list(config.numeric_drift_overrides),
    ).with_id(data_gate.DATA_GATE_ID)
    with _user_module_packaging(config.package_user_modules):
        # TFX's Transform and Trainer, their executors reading Parquet (pipeline/components/parquet_components.py).
        transform = parquet_components.Transform(
            examples=example_gen.outputs["examples"],
            schema=schema_importer.outputs["schema"],
            module_file=config.transform_module_file,
            custom_config={
                "module_fingerprint": module_fingerprint(config.transform_module_file)
            },
            disable_statistics=not config.transform_statistics,
            # No transformed copy of every example: the Trainer transforms the batches it reads with
            # the same graph (modules/trainer_module.py), which on 10M rows saves a pass that encodes
            # and writes them all, for the tens of thousands of rows training reads.
            materialize=False,
            # The analyzer cache only pays off when fed back in as `analyzer_cache`, which this
            # pipeline does not do; writing it costs a pass over the analyzers' accumulators.
            disable_analyzer_cache=True,
        )
        trainer = parquet_components.Trainer(
            module_file=config.trainer_module_file,
            examples=example_gen.outputs["examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_importer.outputs["schema"],
            # No steps at the full scale: the module makes whole passes (fn_args.train_steps is None).
            train_args=trainer_pb2.TrainArgs(num_steps=config.train_steps or 0),
            eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
            custom_config={
                **config.hyperparameters,
                "module_fingerprint": module_fingerprint(config.trainer_module_file),
            },
        )
    # Rejected data stops the run at the gate: everything from Transform on waits for it.
    transform.add_upstream_node(gate)
    if tfx_strategies_only:
        model_resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(RESOLVER_ID)
    else:
        # The model the candidate would replace (pipeline/components/baseline_model.py).
        model_resolver = Resolver(
            strategy_class=baseline_model.BaselineModelStrategy,
            candidate=trainer.outputs["model"],
            model=Channel(type=standard_artifacts.Model),
            pushed_model=Channel(type=standard_artifacts.PushedModel),
        ).with_id(RESOLVER_ID)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=create_eval_config(config),
        # TFMA's extractors without splitting features nothing reads (pipeline/components/eval_extractors.py).
        module_path=eval_extractors.__name__,
    )
    # In one process where the eval split is small though the input is large (pipeline/beam/profiles.py).
    evaluator_args = profiles.evaluator_beam_args(config, run_input)
    if evaluator_args:
        evaluator.with_beam_pipeline_args(evaluator_args)
    # TFX's Pusher with an executor that publishes each version atomically (pipeline/components/atomic_pusher.py).
    pusher = atomic_pusher.AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=config.serving_model_dir
            )
        ),
        custom_config={atomic_pusher.KEEP_VERSIONS_KEY: config.serving_versions_to_keep},
    ).with_id("Pusher")
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        schema_importer,
        example_validator,
        validated_statistics_resolver,
        gate,
        transform,
        trainer,
        model_resolver,
        evaluator,
        pusher,
    ]
    # On an engine with a job list (Flink, Spark), each component's Beam job named after it.
    for component in components:
        if isinstance(component, BaseBeamComponent) and profiles.job_name_args(config, component.id):
            component.with_beam_pipeline_args(profiles.job_name_args(config, component.id))
    return components


def create_pipeline(
    config: PipelineConfig,
    metadata_connection: metadata_store_pb2.ConnectionConfig | None = None,
    run_input: inputs.RunInput | None = None,
    tfx_strategies_only: bool = False,
) -> tfx_pipeline.Pipeline:
    """The pipeline for `config`; runners that manage their own store pass its connection, and
    runners that checked the input before the run pass what they checked."""
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config, run_input, tfx_strategies_only),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection or store.connection_config(config),
        beam_pipeline_args=profiles.beam_args(config, run_input),
    )


def compile_pipeline(
    config: PipelineConfig, metadata_connection: metadata_store_pb2.ConnectionConfig | None = None
) -> pipeline_pb2.Pipeline:
    """The pipeline's IR, as TFX's runners receive it, with its run id still a runtime parameter (see
    `for_run`): what the task-per-node runners launch and `pipeline plan` reads the cache keys from."""
    return compiler.Compiler().compile(create_pipeline(config, metadata_connection))


def for_run(ir: pipeline_pb2.Pipeline, run_id: str) -> pipeline_pb2.Pipeline:
    """A copy of the IR bound to `run_id`: the name of the run's `pipeline_run` context in MLMD."""
    bound = pipeline_pb2.Pipeline()
    bound.CopyFrom(ir)
    runtime_parameter_utils.substitute_runtime_parameter(
        bound, {compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    return bound
