"""The pipeline as an Airflow DAG: one task per TFX node, dependencies from the compiled pipeline's graph.

Put this file in Airflow's DAGs folder (a symlink keeps it current) in an environment where the project
is installed (`make install-all`); PIPELINE_* variables in Airflow's environment configure it (README).
Under a scheduler with a parallel executor, its tasks run side by side when ML Metadata is on MySQL, and
one at a time on the SQLite store; airflow_local_settings.py saves each task process the import of
TensorFlow.

TFX's own AirflowDagRunner still launches components through the pre-IR launcher, which records runs in
ML Metadata under other context types ("run", "component_run") than every other runner here
("pipeline_run", "node"): its runs would not share the cache with them, and `pipeline runs` and
`lineage` could not read them. This adapter launches each node through TFX's portable launcher instead
(pipeline/runners/node_launch.py), with the Airflow run id as the pipeline run id, inside the run lifecycle
of every runner (pipeline/runners/lifecycle.py): a first task checks the input files and takes the store's
lease for the run, each node's task renews it, and a final task, run whatever happened before it, records
the run and releases the store.
"""

from __future__ import annotations

import datetime

# isort: off
import pipeline  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from airflow import DAG
from airflow.exceptions import AirflowFailException
from airflow.operators.python import PythonOperator
from airflow.utils.trigger_rule import TriggerRule

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.guards import store_lock
from pipeline.runners import lifecycle, node_launch
# isort: on

RUNNER = "airflow"
CHECK_INPUT_TASK_ID = "check_input"
FINISH_TASK_ID = "finish_run"
SQLITE_MAX_ACTIVE_TASKS = 1


def _check_input(config: configs.PipelineConfig, run_id: str) -> None:
    try:
        lifecycle.begin_tasks(config, RUNNER, run_id)
    except (configs.ConfigError, store_lock.LockBusy) as error:
        # Bad input files or settings, or a store another run holds (after waiting run_lock_timeout_s):
        # the task fails at once, saying why, and the final task finds nothing to release.
        raise AirflowFailException(f"error: {error}") from None


def _launch_node(config: configs.PipelineConfig, node_id: str, run_id: str) -> None:
    lifecycle.node_task(config, RUNNER, run_id, node_id)


def _finish_run(config: configs.PipelineConfig, run_id: str) -> None:
    try:
        lifecycle.end_tasks(config, RUNNER, run_id)
    except lifecycle.RunNotFinished as error:
        raise AirflowFailException(f"error: {error}") from None


def _task_limits(config: configs.PipelineConfig) -> dict:
    """A SQLite ML Metadata store is one file meant for one writer: with it, the DAG's tasks run one at a
    time, whatever the executor. On MySQL they run side by side, as many as the executor allows."""
    if config.metadata_mysql_host:
        return {}
    return {"max_active_tasks": SQLITE_MAX_ACTIVE_TASKS}


def create_dag(config: configs.PipelineConfig) -> DAG:
    """The DAG of `config`'s pipeline; its id is the pipeline name."""
    graph = node_launch.upstream_node_ids(node_launch.compile_pipeline(config))
    dag = DAG(
        dag_id=config.pipeline_name,
        schedule=config.airflow_schedule or None,
        start_date=datetime.datetime.fromisoformat(config.airflow_start_date).replace(
            tzinfo=datetime.timezone.utc
        ),
        catchup=False,
        # One run at a time: a run's data gate and Evaluator compare with what the run before it passed.
        max_active_runs=1,
        **_task_limits(config),
        # The same retry settings as the in-process runners, applied per component task.
        default_args={
            "retries": config.retries,
            "retry_delay": datetime.timedelta(seconds=config.retry_backoff_s),
            "retry_exponential_backoff": True,
        },
        tags=["tfx"],
    )
    # The pre-flight check of the input, before every node that waits for no other.
    check = PythonOperator(
        task_id=CHECK_INPUT_TASK_ID, python_callable=_check_input, op_kwargs={"config": config}, dag=dag
    )
    tasks = {}
    for node_id, upstream in graph.items():
        # `run_id` is filled in from the task's Airflow context.
        tasks[node_id] = PythonOperator(
            task_id=node_id,
            python_callable=_launch_node,
            op_kwargs={"config": config, "node_id": node_id},
            dag=dag,
        )
        for upstream_id in upstream:
            tasks[upstream_id] >> tasks[node_id]
        if not upstream:
            check >> tasks[node_id]
    # Run whatever happened before it, so that a failed run releases the store at once; it fails (and
    # with it the DAG run) when a node did not finish.
    finish = PythonOperator(
        task_id=FINISH_TASK_ID, python_callable=_finish_run, op_kwargs={"config": config},
        trigger_rule=TriggerRule.ALL_DONE, retries=0, dag=dag,
    )
    [check, *tasks.values()] >> finish
    return dag


dag = create_dag(configs.load_config())

if __name__ == "__main__":
    # `tfx pipeline create --engine airflow --pipeline_path pipeline/runners/airflow_dag.py` runs this file and
    # registers the pipeline whose DAG runner's run() it sees: hand it the pipeline through TFX's
    # AirflowDagRunner (which only builds a DAG object here); the CLI then copies this file into
    # $AIRFLOW_HOME/dags, where Airflow parses it and finds `dag` above.
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config={"schedule": None})).run(
        pipeline_definition.create_pipeline(configs.load_config())
    )
