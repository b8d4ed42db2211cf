"""The Airflow DAG on a real Airflow: temporary AIRFLOW_HOME and SQLite, parsed by `airflow dags list`,
executed by `airflow dags test` on the small sample, its tasks' Beam work on the Flink cluster the cluster
tests run (`flink_cluster`, the `flink` profile's settings). (An unchanged second run served from TFX's
cache, on Beam's default engine, is tested on Airflow as deployed, in test_airflow_local_executor.py.)

Airflow is initialised once for the module, with the commands of docs/runners.md's quick local Airflow:
the DAG file reaches Airflow as a symlink in its DAGs folder, and its configuration as PIPELINE_* variables.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

# Airflow is not imported here: importing it configures logging and writes ~/airflow.
if importlib.util.find_spec("airflow") is None:
    pytest.skip("Airflow is an optional orchestrator: make install-all", allow_module_level=True)

from pipeline import configs  # noqa: E402
from pipeline.guards import store_lock  # noqa: E402
from tests.conftest import LOCAL_RUNNER, PROJECT_ROOT, small_run_env  # noqa: E402
from tests.docs.commands import documented, run_together  # noqa: E402
from tests.orchestrator_checks import (  # noqa: E402
    ALL_NODES,
    cli_json,
    states_of_run,
    store_held_by_another_run,
)

pytestmark = pytest.mark.e2e

AIRFLOW = str(Path(sys.executable).parent / "airflow")


@dataclasses.dataclass
class AirflowRuns:
    config: configs.PipelineConfig
    airflow_db: Path
    dags_list: dict[str, tuple[str, str]]  # dag id: (max_active_tasks, max_active_runs), as `dags list` shows them
    dags_list_stderr: str
    run_ids: list[str]
    bad_span_file: Path
    bad_output: str
    executions: tuple[int, int]  # in the store before and after the run on the bad span
    flink_jobs: list[dict]  # the jobs the Flink cluster ran during the good run
    taskmanagers: set[str]
    bad_run_id: str
    refused_run_id: str
    free_after_runs: bool  # nothing held the store once the runs above had ended
    refused: subprocess.CompletedProcess  # a run started while another process held the store
    holder_pid: int
    claimed_by: str  # who held the store after an Airflow run's first task alone had run
    local_refused: subprocess.CompletedProcess  # a local run started then


def _executions(config: configs.PipelineConfig) -> int:
    with sqlite3.connect(config.metadata_path) as db:
        return db.execute("SELECT COUNT(*) FROM Execution").fetchone()[0]


def _dag_run_ids(airflow_db: Path, dag_id: str) -> list[str]:
    with sqlite3.connect(airflow_db) as db:
        rows = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY execution_date", (dag_id,)
        ).fetchall()
    return [row[0] for row in rows]


def _task_states(airflow_db: Path, dag_id: str, run_id: str) -> dict[str, str]:
    with sqlite3.connect(airflow_db) as db:
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def airflow_runs(tmp_path_factory, sample_data_dir, flink_cluster) -> AirflowRuns:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **small_run_env(sample_data_dir, tmp_path_factory.mktemp("airflow_output")),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # Parsing imports TensorFlow and compiles the pipeline: beyond Airflow's 30 s default.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        # A failing task fails the test at once instead of waiting for a retry.
        "PIPELINE_RETRIES": "2",
        **flink_cluster.settings(),
    }
    config = configs.load_config(**configs.env_overrides(env))
    documented("docs/runners.md", "airflow db migrate").run(env)
    run_together([
        documented("docs/runners.md", 'mkdir -p "$AIRFLOW_HOME/dags"'),
        documented("docs/runners.md",
                   'ln -s "$PWD/pipeline/runners/airflow_dag.py" "$AIRFLOW_HOME/dags/chicago_taxi_dag.py"'),
    ], env)
    listed = documented("docs/runners.md",
                        "airflow dags list --columns dag_id,max_active_tasks,max_active_runs").run(env)
    jobs_before = flink_cluster.job_ids()
    dags_test = documented("docs/runners.md", "airflow dags test chicago-taxi")
    dags_test.run(env)
    flink_jobs = flink_cluster.jobs(since=jobs_before)
    airflow_db = home / "airflow.db"
    run_ids = _dag_run_ids(airflow_db, config.pipeline_name)
    # A second run on a span holding an empty file, against the same store.
    spans = tmp_path_factory.mktemp("airflow_spans")
    (spans / "span-1").mkdir()
    (spans / "span-1" / "data.csv").write_bytes(b"")
    before = _executions(config)
    bad = dags_test.run({**env, "PIPELINE_DATA_ROOT": str(spans), "PIPELINE_INPUT_PATTERN": "span-{SPAN}/*.csv"},
                        check=False)
    [bad_run_id] = [r for r in _dag_run_ids(airflow_db, config.pipeline_name) if r not in run_ids]
    free_after_runs = store_lock.busy(config) is None
    busy_env = {**env, "PIPELINE_RUN_LOCK_TIMEOUT_S": "0"}
    with store_held_by_another_run(busy_env) as holder:
        refused = dags_test.run(busy_env, check=False)
    [refused_run_id] = [r for r in _dag_run_ids(airflow_db, config.pipeline_name) if r not in {*run_ids, bad_run_id}]
    # The other way round: a run whose first task took the store holds it between its tasks.
    subprocess.run([AIRFLOW, "tasks", "test", config.pipeline_name, "check_input"], cwd=PROJECT_ROOT, env=env,
                   capture_output=True, text=True, timeout=900, check=True)
    claimed_by = store_lock.busy(config)
    local_refused = subprocess.run(LOCAL_RUNNER, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
                                   env=busy_env)
    store_lock.release(config, re.search(r"airflow run (\S+) ", claimed_by or "airflow run ? ").group(1))
    return AirflowRuns(
        bad_run_id=bad_run_id,
        refused_run_id=refused_run_id,
        free_after_runs=free_after_runs,
        refused=refused,
        holder_pid=holder.pid,
        claimed_by=claimed_by,
        local_refused=local_refused,
        config=config,
        airflow_db=airflow_db,
        dags_list=_table(listed.stdout),
        dags_list_stderr=listed.stderr,
        run_ids=run_ids,
        bad_span_file=spans / "span-1" / "data.csv",
        bad_output=bad.stdout + bad.stderr,
        executions=(before, _executions(config)),
        flink_jobs=flink_jobs,
        taskmanagers={tm["id"] for tm in flink_cluster.rest("/taskmanagers")["taskmanagers"]},
    )


def _table(output: str) -> dict[str, tuple[str, ...]]:
    """The rows of the table an Airflow CLI command prints (`a | b` under a `===+===` rule), by first cell."""
    lines = output.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"=+(\+=+)*", line.strip()))
    rows = [tuple(cell.strip() for cell in line.split("|")) for line in lines[rule + 1:] if "|" in line]
    return {row[0]: row[1:] for row in rows}


def test_airflow_parses_the_dag_without_import_errors(airflow_runs):
    assert list(airflow_runs.dags_list) == [airflow_runs.config.pipeline_name]
    # `dags list` reports import errors on stderr, pointing at `airflow dags list-import-errors`.
    assert "Failed to load all files" not in airflow_runs.dags_list_stderr
    assert "list-import-errors" not in airflow_runs.dags_list_stderr


def test_with_sqlite_mlmd_the_dag_runs_one_task_at_a_time(airflow_runs):
    # SQLite is one file meant for one writer: whatever the executor, one task (and one run) at a time.
    # (tests/pipeline/runners/test_airflow_local_executor.py runs the tasks side by side on MySQL.)
    assert airflow_runs.dags_list[airflow_runs.config.pipeline_name] == ("1", "1")


def test_every_task_succeeds(airflow_runs):
    # A node launched before its upstream nodes finished fails ("its inputs are missing"), so this also
    # shows the DAG's dependencies follow the pipeline graph.
    [run_id] = airflow_runs.run_ids
    states = _task_states(airflow_runs.airflow_db, airflow_runs.config.pipeline_name, run_id)
    assert states == {task: "success" for task in ALL_NODES | {"check_input", "finish_run"}}


def test_the_tasks_beam_work_ran_on_the_flink_cluster(airflow_runs):
    """Each Beam component's task sent its job to Flink: one job each, finished, on both TaskManagers."""
    from pipeline.beam import profiles

    expected = [profiles.job_name_args(airflow_runs.config, c)[0].split("=", 1)[1]
                for c in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")]
    assert [job["name"] for job in airflow_runs.flink_jobs] == expected
    for job in airflow_runs.flink_jobs:
        assert job["state"] == "FINISHED" and set(job["taskmanagers"]) == airflow_runs.taskmanagers, job


def test_tasks_take_their_retries_from_config(airflow_runs):
    with sqlite3.connect(airflow_runs.airflow_db) as db:
        max_tries = dict(db.execute("SELECT task_id, MAX(max_tries) FROM task_instance GROUP BY task_id"))
    # PIPELINE_RETRIES=2 in the fixture; the default is 0. The final task, which only records and releases,
    # is never retried: a run that did not finish stays failed.
    assert max_tries.pop("finish_run") == 0
    assert set(max_tries.values()) == {airflow_runs.config.retries} == {2}


def test_first_run_executes_every_node_and_pushes_a_model(airflow_runs):
    first = states_of_run(airflow_runs.config, airflow_runs.run_ids[0])
    assert first == {node: ["executed"] for node in ALL_NODES}
    serving = Path(airflow_runs.config.serving_model_dir)
    assert list(serving.glob("*/saved_model.pb")), f"no model pushed under {serving}"


def test_runs_and_lineage_commands_read_the_airflow_runs(airflow_runs, capsys):
    runs = cli_json(capsys, airflow_runs.config, "runs")["runs"]
    assert [r["run"] for r in runs] == airflow_runs.run_ids
    assert all(r["status"] == "complete" and r["record"]["runner"] == "airflow" for r in runs)
    story = cli_json(capsys, airflow_runs.config, "lineage", "serving")
    assert story["run"] == airflow_runs.run_ids[0]
    assert story["record"]["runner"] == "airflow"


def test_a_bad_span_fails_the_input_check_and_nothing_runs(airflow_runs):
    bad_run = airflow_runs.bad_run_id
    states = _task_states(airflow_runs.airflow_db, airflow_runs.config.pipeline_name, bad_run)
    # The final task runs whatever came before it: it releases the store, and fails the DAG run.
    assert states == {"check_input": "failed", "finish_run": "failed", **{task: "upstream_failed" for task in ALL_NODES}}
    assert (
        f"error: input file {airflow_runs.bad_span_file} (span 1) is empty: expected a header line and rows"
        in airflow_runs.bad_output
    )
    # Not retried (PIPELINE_RETRIES=2 here): a retry cannot fix the file. Nothing reached ML Metadata.
    with sqlite3.connect(airflow_runs.airflow_db) as db:
        [(tries,)] = db.execute(
            "SELECT try_number FROM task_instance WHERE run_id = ? AND task_id = 'check_input'", (bad_run,)
        ).fetchall()
    assert tries == 1
    assert airflow_runs.executions[1] == airflow_runs.executions[0]


def test_the_store_is_released_when_a_run_ends_whatever_its_outcome(airflow_runs):
    assert airflow_runs.free_after_runs


def test_a_second_run_is_refused_at_its_first_task_naming_the_run_that_holds_the_store(airflow_runs):
    states = _task_states(airflow_runs.airflow_db, airflow_runs.config.pipeline_name, airflow_runs.refused_run_id)
    assert states["check_input"] == "failed" and {states[node] for node in ALL_NODES} == {"upstream_failed"}
    output = airflow_runs.refused.stdout + airflow_runs.refused.stderr
    assert (f"error: another pipeline run is using the ML Metadata store {airflow_runs.config.metadata_path}: "
            f"a local run (pid {airflow_runs.holder_pid} ") in output


def test_between_its_tasks_an_airflow_run_holds_the_store_against_other_runners(airflow_runs):
    assert airflow_runs.claimed_by and airflow_runs.claimed_by.startswith("airflow run __airflow_temporary_run_")
    assert airflow_runs.local_refused.returncode == store_lock.EXIT_BUSY, airflow_runs.local_refused.stderr[-3000:]
    [error] = [line for line in airflow_runs.local_refused.stderr.splitlines() if line.startswith("error: ")]
    assert airflow_runs.claimed_by.split(" (pid")[0] in error
