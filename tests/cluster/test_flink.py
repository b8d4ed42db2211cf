"""The whole pipeline on a real Flink session cluster (a JobManager, two TaskManagers and Beam's Flink job
server, each its own process, started by cluster/ from the pinned artifacts), proven from Flink's own REST
API: through the local runner, and through the span scheduler (the Beam runner) while a TaskManager is
killed in the middle of Transform. The statistics and metrics are those Beam's DirectRunner computes from
the same inputs; a cluster that does not answer stops a run in seconds. (Airflow's tasks on the same
cluster: tests/pipeline/runners/test_airflow_dag.py; `tfx run create --engine beam` on Spark:
test_spark.py.)"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench import measure
from cluster import processes
from cluster.engine import STATE_ROOT_ENV
from pipeline import configs
from pipeline.beam import profiles
from pipeline.metadata import run_summary
from pipeline.metadata.store import connection_config, open_store
from scripts.add_span import add_span
from tests.conftest import LOCAL_RUNNER, PROJECT_ROOT, run_command, small_run_env
from tests.docs.commands import documented, run_together
from tests.orchestrator_checks import (
    ALL_NODES,
    FLOAT_SUM_METRICS,
    evaluation_metrics,
    execution_artifacts,
    float_sum_approx,
    node_execution,
)

pytestmark = pytest.mark.e2e

# The components whose work is a Beam job: each one a Flink job per run; the Trainer stays local.
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


def job_name(config: configs.PipelineConfig, component: str) -> str:
    [arg] = profiles.job_name_args(config, component)
    return arg.split("=", 1)[1]


@dataclasses.dataclass
class ClusterRun:
    config: configs.PipelineConfig
    output: str
    summary: run_summary.RunSummary
    rows: dict
    jobs: list[dict]  # The Flink jobs that ran during the run, oldest first.

    def component_jobs(self, component: str) -> list[dict]:
        return [job for job in self.jobs if job["name"] == job_name(self.config, component)]


def run_on(cluster, args: list[str], env: dict[str, str], settings: dict[str, str] | None = None) -> ClusterRun:
    """Run a command as a user would (`args`: a command line, or documented commands run in one shell), and
    read what it did from ML Metadata and from Flink; `settings`: those the command itself sets, if any."""
    before = cluster.job_ids()
    output = run_together(args, env).stdout if args and not isinstance(args[0], str) else run_command(args, env)
    config = configs.load_config(**configs.env_overrides({**env, **(settings or {})}))
    summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
    rows = measure.count_rows(config.data_root, config.metadata_path, config.pipeline_name)
    return ClusterRun(config, output, summary, rows, cluster.jobs(since=before))


def assert_ran_on_the_cluster(run: ClusterRun, cluster, rows_in: int) -> None:
    """Every node ran, every row arrived, the model was blessed and pushed, and each Beam component's job
    finished on the cluster with subtasks on every TaskManager."""
    assert {c.node_id: c.state for c in run.summary.components} == {node: "executed" for node in ALL_NODES}
    assert run.rows["rows_intact"] and run.rows["csv_rows"] == rows_in, run.rows
    assert run.summary.blessed is True
    assert Path(run.summary.pushed_to, "saved_model.pb").is_file()
    taskmanagers = {tm["id"] for tm in cluster.rest("/taskmanagers")["taskmanagers"]}
    assert len(taskmanagers) == 2
    for component in BEAM_COMPONENTS:
        jobs = run.component_jobs(component)
        assert [job["state"] for job in jobs] == ["FINISHED"], (component, jobs)
        assert set(jobs[0]["taskmanagers"]) == taskmanagers, component
    assert len(run.jobs) == len(BEAM_COMPONENTS), [job["name"] for job in run.jobs]


@pytest.fixture(scope="module")
def local_run(flink_cluster, tmp_path_factory, sample_data_dir) -> ClusterRun:
    """The recipe of docs/distributed-engines.md on the cluster `make cluster-up` started: the settings it
    printed, read again with `cluster env`, then `make run`."""
    env = {**small_run_env(sample_data_dir, tmp_path_factory.mktemp("flink_local")),
           STATE_ROOT_ENV: str(flink_cluster.state_dir.parent)}
    recipe = [documented("docs/distributed-engines.md", 'eval "$(.venv/bin/python -m cluster env flink)"'),
              documented("docs/distributed-engines.md", "make run")]
    return run_on(flink_cluster, recipe, env, flink_cluster.settings())


def test_the_local_runner_runs_every_beam_component_on_flink(local_run, flink_cluster, sample_rows):
    assert_ran_on_the_cluster(local_run, flink_cluster, len(sample_rows))
    assert "Blessed: yes" in local_run.output


def test_the_engine_computes_the_direct_runners_statistics_and_metrics(local_run, tmp_path):
    """StatisticsGen's and the Evaluator's executors again, on the run's own inputs, with Beam's
    DirectRunner in this process: the same statistics and metrics, bit for bit but for sums of floats
    (TFDV's means and standard deviations, TFMA's mean_prediction: their last bits depend on the order
    the rows are added in), and the same blessing."""
    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.components.statistics_gen import executor as statistics_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts

    from pipeline.metadata import artifact_files

    config, run_id = local_run.config, local_run.summary.run_id
    store = open_store(connection_config(config), readonly=True)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=[], tmp_dir=str(tmp_path / "tmp"))

    execution = node_execution(store, config.pipeline_name, run_id, "StatisticsGen")
    inputs, outputs = execution_artifacts(store, execution)
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    properties = {key: value.string_value for key, value in execution.custom_properties.items()
                  if key in ("stats_options_json", "exclude_splits")}
    statistics_executor.Executor(context).Do(inputs, {"statistics": [statistics]}, properties)
    on_flink = artifact_files.load_statistics(outputs["statistics"][0].uri)
    direct = artifact_files.load_statistics(statistics.uri)
    assert set(on_flink) == set(direct) == {"train", "eval"}
    for split, statistics_list in direct.items():
        [first], [second] = on_flink[split].datasets, statistics_list.datasets
        assert first.num_examples == second.num_examples > 0
        assert_same_statistics(first, second)

    execution = node_execution(store, config.pipeline_name, run_id, "Evaluator")
    inputs, outputs = execution_artifacts(store, execution)
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    for artifact, folder in ((evaluation, "evaluation"), (blessing, "blessing")):
        artifact.uri = str(tmp_path / folder)
        Path(artifact.uri).mkdir()
    properties = {key: value.string_value for key, value in execution.custom_properties.items() if key in (
        "eval_config", "example_splits", "fairness_indicator_thresholds", "module_path")}
    evaluator_executor.Executor(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    on_flink, direct = evaluation_metrics(outputs["evaluation"][0].uri), evaluation_metrics(evaluation.uri)
    assert len(on_flink) > 30 and set(on_flink) == set(direct)
    for key, value in direct.items():
        if key[1] in FLOAT_SUM_METRICS:
            expected = float_sum_approx(on_flink[key].double_value.value)
            assert value.double_value.value == expected, key
        else:
            assert value.SerializeToString() == on_flink[key].SerializeToString(), key
    assert sorted(p.name for p in Path(blessing.uri).iterdir()) == ["BLESSED"]


def assert_same_statistics(first, second) -> None:
    """Two TFDV datasets of the same rows: counts, missing values, minima, maxima, zeros, histograms of
    exact bounds and every string statistic equal; means and standard deviations to 1e-12."""
    features = {tuple(f.path.step): f for f in first.features}
    assert set(features) == {tuple(f.path.step) for f in second.features}
    for other in second.features:
        mine = features[tuple(other.path.step)]
        if mine.HasField("num_stats"):
            a, b = mine.num_stats, other.num_stats
            assert a.common_stats == b.common_stats, mine.path
            assert (a.min, a.max, a.num_zeros, a.median) == (b.min, b.max, b.num_zeros, b.median), mine.path
            assert a.mean == pytest.approx(b.mean, rel=1e-12, abs=1e-12), mine.path
            assert a.std_dev == pytest.approx(b.std_dev, rel=1e-9, abs=1e-12), mine.path
        else:
            assert mine == other, mine.path


@dataclasses.dataclass
class ScheduledRun:
    config: configs.PipelineConfig
    triggers: list[dict]
    killed: dict  # the TaskManager killed: its name, and the Transform job's state then
    jobs: list[dict]
    rows: dict
    store_state: dict


def _kill_a_taskmanager_mid_transform(cluster, transform_job: str, killed: dict, give_up: threading.Event) -> None:
    """SIGKILL the second TaskManager once Transform's Flink job has subtasks running, as a lost machine
    would end it."""
    while not give_up.wait(0.3):
        for job in (cluster.rest("/jobs/overview") or {"jobs": []})["jobs"]:
            if job["name"] == transform_job and job["state"] == "RUNNING" and job["tasks"]["running"] >= 2:
                victim = cluster.process("taskmanager-2")
                processes.kill(victim)
                killed.update(name=victim.name, pid=victim.pid, job=job["jid"], tasks=job["tasks"])
                return


@pytest.fixture(scope="module")
def scheduled_run(flink_cluster, tmp_path_factory) -> ScheduledRun:
    """The span scheduler (`make schedule`) running the Beam runner on a new span, while a TaskManager is
    killed in the middle of Transform; it is started again after the run (the tests that follow expect
    two)."""
    env = {
        **small_run_env(tmp_path_factory.mktemp("flink_spans"), tmp_path_factory.mktemp("flink_scheduled")),
        **flink_cluster.settings(),
        "PIPELINE_INPUT_PATTERN": "span-{SPAN}/*.csv",
    }
    config = configs.load_config(**configs.env_overrides(env))
    add_span(config, 1500)
    before = flink_cluster.job_ids()
    killed, give_up = {}, threading.Event()
    killer = threading.Thread(target=_kill_a_taskmanager_mid_transform,
                              args=(flink_cluster, job_name(config, "Transform"), killed, give_up))
    killer.start()
    log = Path(config.output_root) / "scheduler" / config.pipeline_name / "triggers.jsonl"
    # The first trigger fires at once; the next not before the test is done.
    scheduler = subprocess.Popen([sys.executable, "-m", "pipeline.runners.scheduler", "--interval-s", "3600"],
                                 cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not any(e.get("span") == 1 and e.get("outcome") for e in _entries(log)):
            assert scheduler.poll() is None, "the scheduler exited"
            time.sleep(1)
    finally:
        give_up.set()
        killer.join()
        scheduler.terminate()
        scheduler.wait(timeout=120)
        flink_cluster.start_taskmanager(2)
    store = open_store(connection_config(config), readonly=True)
    serving = Path(config.serving_model_dir)
    store_state = {
        "executions": {e.id: e.last_known_state for e in store.get_executions()},
        "serving_versions": sorted(p.name for p in serving.iterdir()) if serving.is_dir() else [],
    }
    rows = measure.count_rows(config.data_root, config.metadata_path, config.pipeline_name)
    return ScheduledRun(config, _entries(log), killed, flink_cluster.jobs(since=before), rows, store_state)


def _entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_taskmanager_killed_mid_transform_is_ridden_out_by_flinks_restart(scheduled_run, flink_cluster):
    """Flink's restart strategy (cluster/flink.py) runs Transform's job again on the TaskManager left;
    the scheduled run completes with every row, one push, and no execution left failed or running."""
    from ml_metadata.proto import metadata_store_pb2

    assert scheduled_run.killed["name"] == "taskmanager-2", "Transform never ran on both TaskManagers"
    assert [(e["span"], e["outcome"]) for e in scheduled_run.triggers if e.get("outcome")][:1] == [(1, "ran")]
    [transform] = [job for job in scheduled_run.jobs if job["jid"] == scheduled_run.killed["job"]]
    assert transform["state"] == "FINISHED"
    history = flink_cluster.rest(f"/jobs/{transform['jid']}/exceptions")["exceptionHistory"]["entries"]
    assert history, "Flink recorded no failure: the TaskManager was not lost mid-job"
    # The span's 1,500 rows (measure counts the CSV files of a plain layout only) in ExampleGen's splits
    # and in StatisticsGen's counts.
    assert scheduled_run.rows["examples_rows"] == scheduled_run.rows["statistics_rows"] == 1500, scheduled_run.rows
    run_logs = [e["log"] for e in scheduled_run.triggers if e.get("outcome")]
    assert len(scheduled_run.store_state["serving_versions"]) == 1, f"not one push; the run's log: {run_logs}"
    states = set(scheduled_run.store_state["executions"].values())
    assert states <= {metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED}, states
    # The other Beam components ran as usual, one job each.
    for component in ("CsvExampleGen", "StatisticsGen", "Evaluator"):
        name = job_name(scheduled_run.config, component)
        assert [job["state"] for job in scheduled_run.jobs if job["name"] == name] == ["FINISHED"], component


def test_a_jobmanager_that_is_down_stops_a_run_in_seconds(flink_cluster, tmp_path, sample_data_dir):
    """The JobManager's process stopped (its TaskManagers and the job server still up), then started again:
    the run refuses to start within seconds, in one line naming the address, and writes nothing; the
    TaskManagers register with the new JobManager. (A wrong address, a host that does not resolve and a job
    server that does not answer: tests/pipeline/beam/test_profiles.py.)"""
    env = {**small_run_env(sample_data_dir, tmp_path / "out"), **flink_cluster.settings()}
    processes.stop(flink_cluster.state_dir, ["jobmanager"])
    try:
        started = time.monotonic()
        result = subprocess.run(LOCAL_RUNNER, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        seconds = time.monotonic() - started
    finally:
        flink_cluster.start_jobmanager()
    assert result.returncode == configs.EXIT_CONFIG_ERROR, result.stderr[-3000:]
    [error] = [line for line in result.stderr.splitlines() if line.strip()]
    assert error.startswith(f"error: the Flink JobManager at {env['PIPELINE_BEAM_CLUSTER_MASTER']} "), error
    assert "does not answer" in error
    assert seconds < 60, seconds  # Python's start-up and imports; the refused connection itself is instant
    assert not (tmp_path / "out" / "metadata").exists()  # nothing ran, nothing was written
    assert flink_cluster.rest("/overview")["taskmanagers"] == 2
