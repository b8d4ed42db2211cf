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
from pathlib import Path

import pytest

# Airflow is not imported here: importing it configures logging and writes ~/airflow.
if importlib.util.find_spec("airflow") is None:
    pytest.skip("Airflow is an optional orchestrator: make install-all", allow_module_level=True)

from pipeline import configs  # noqa: E402
from tests.conftest import small_run_env  # noqa: E402
from tests.docs.commands import documented, run_together  # noqa: E402
from tests.orchestrator_checks import (  # noqa: E402
    ALL_NODES,
    cli_json,
    states_of_run,
)

pytestmark = pytest.mark.e2e

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
    return AirflowRuns(
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
    assert states == {task: "success" for task in ALL_NODES | {"check_input", "record_run"}}


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
        max_tries = {row[0] for row in db.execute("SELECT max_tries FROM task_instance")}
    # PIPELINE_RETRIES=2 in the fixture; the default is 0.
    assert max_tries == {airflow_runs.config.retries} == {2}


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
    [bad_run] = [r for r in _dag_run_ids(airflow_runs.airflow_db, airflow_runs.config.pipeline_name)
                 if r not in airflow_runs.run_ids]
    states = _task_states(airflow_runs.airflow_db, airflow_runs.config.pipeline_name, bad_run)
    assert states == {"check_input": "failed", **{task: "upstream_failed" for task in ALL_NODES | {"record_run"}}}
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
