"""TFX's Transform and Trainer, with executors that run with tfx_bsl's ParquetTFXIO completed
(pipeline/upstream/parquet_source.py) and TFT's vocabularies counted a batch at a time
(pipeline/upstream/vocabulary_counts.py).

TFX runs a component's executor wherever the component runs (in-process, an Airflow or Luigi task, a
Kubeflow or Vertex container), so the executors install both (through pipeline/upstream's version guard)
before they run: Transform reads the Parquet examples with the schema's types, and the trainer module's
`data_accessor` reads them as a tf.data.Dataset. Components, parameters, outputs and executors are
otherwise TFX's own; the classes keep TFX's names, and so the nodes' ids.
"""

from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.components.transform import component as transform_component
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec

from pipeline import upstream


class TransformExecutor(transform_executor.Executor):
    """TFX's Transform executor."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802  (TFX's name)
        upstream.install("parquet_source", "vocabulary_counts")
        return super().Do(input_dict, output_dict, exec_properties)


class TrainerExecutor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor, the Trainer's for a module's `run_fn`."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802  (TFX's name)
        upstream.install("parquet_source")
        return super().Do(input_dict, output_dict, exec_properties)


class Transform(transform_component.Transform):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(TransformExecutor)


class Trainer(trainer_component.Trainer):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TrainerExecutor)
