"""The Airflow DAG as teams deploy it: `airflow scheduler` with the LocalExecutor over PostgreSQL, tasks side
by side in their own processes, ML Metadata on MariaDB, docs/runners.md's recipe step by step (its commands
and settings taken from the doc, with the test's servers, folders and delays in place of the doc's).

One deployment for the module (tests/servers.py starts a private PostgreSQL for Airflow and a MariaDB for
ML Metadata). `tfx pipeline create --engine airflow` puts the DAG in the DAGs folder, a scheduler starts,
and `tfx run create --engine airflow` unpauses and triggers it. That one triggered run carries the failures:
1. while its Trainer runs, the scheduler is stopped with SIGTERM to its processes (as systemd stops a
   service); the killed task is marked for retry;
2. a new scheduler starts, now with a one-minute schedule, and the run resumes at the Trainer: the
   components that finished before the kill are not run again;
3. the Trainer then fails once (the test's copy of the trainer module raises in the task process), Airflow
   retries it after the configured delay, and the run completes and pushes a model;
4. the schedule then starts a run of its own, in which TFX's cache serves every component up to the
   Trainer (nothing changed);
5. with the scheduler stopped and the DAG paused, `airflow dags unpause` and `airflow dags trigger` (the
   doc's other way to start a run) unpause it and queue a run for the next scheduler.
The test waits on Airflow's database (each Airflow CLI call costs seconds of CPU), reads the runs' states
through `airflow dags list-runs` and their tasks, tries and the registered DAG from Airflow's tables, and
what the runs did from ML Metadata and the `pipeline` command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

# Airflow is not imported here: importing it configures logging and writes ~/airflow.
if importlib.util.find_spec("airflow") is None:
    pytest.skip("Airflow is an optional orchestrator: make install-all", allow_module_level=True)

import psutil  # noqa: E402  (installed with Airflow)
import psycopg2  # noqa: E402  (installed with Airflow, for its PostgreSQL database)

from pipeline import configs  # noqa: E402
from pipeline.runners import node_launch  # noqa: E402
from tests import servers  # noqa: E402
from tests.conftest import (  # noqa: E402
    FAIL_ONCE,
    FAIL_ONCE_ENV,
    PROJECT_ROOT,
    copy_modules,
    small_run_env,
)
from tests.docs.commands import documented, run_together  # noqa: E402
from tests.orchestrator_checks import ALL_NODES, CACHED_WHEN_UNCHANGED, cli_json, states_of_run  # noqa: E402

pytestmark = pytest.mark.e2e

TASKS = ALL_NODES | {"check_input", "finish_run"}
SCHEDULE = "* * * * *"
RETRIES = 2
RETRY_DELAY_S = 1
WAIT_S = 900


class AirflowDatabase:
    """Airflow's own tables, read to wait on it cheaply (each Airflow CLI call starts a Python process)."""

    def __init__(self, postgres: servers.PostgreSQL) -> None:
        self.connection = psycopg2.connect(
            host="127.0.0.1", port=postgres.port, user=postgres.user, password=postgres.password,
            dbname=postgres.database,
        )
        self.connection.autocommit = True

    def rows(self, sql: str, *args) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def runs(self, dag_id: str) -> dict[str, tuple[str, str]]:
        """run_id: (run_type, state)."""
        return {r[0]: (r[1], r[2]) for r in self.rows(
            "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s", dag_id)}

    def task(self, dag_id: str, run_id: str, task_id: str) -> tuple[str | None, int]:
        """(state, try_number) of a task instance."""
        found = self.rows("SELECT state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s "
                          "AND task_id = %s", dag_id, run_id, task_id)
        return found[0] if found else (None, 0)


# The lines of the recipe that export its settings.
RECIPE_SETTINGS = (
    documented("docs/runners.md", "export AIRFLOW_HOME=/srv/airflow"),
    documented("docs/runners.md", "export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:PASSWORD"
                                  "@db.example:5432/airflow"),
    documented("docs/runners.md", "export AIRFLOW__CORE__EXECUTOR=LocalExecutor"),
    documented("docs/runners.md", "export AIRFLOW__CORE__LOAD_EXAMPLES=False"),
    documented("docs/runners.md", "export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=300"),
    documented("docs/runners.md", "export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=300"),
    documented("docs/runners.md", "export PIPELINE_DATA_ROOT=/data/taxi PIPELINE_OUTPUT_ROOT=/data/taxi-output"),
    documented("docs/runners.md", "export PIPELINE_METADATA_MYSQL_URL=mysql://taxi@db.example:3306/mlmd "
                                  "PIPELINE_METADATA_MYSQL_PASSWORD_FILE=/etc/taxi/mlmd-password"),
    documented("docs/runners.md", "export PIPELINE_RETRIES=2 PIPELINE_RETRY_BACKOFF_S=30 "
                                  "PIPELINE_AIRFLOW_SCHEDULE='0 6 * * *'"),
)
SCHEDULER = documented("docs/runners.md", "airflow scheduler &")


class Scheduler:
    """`airflow scheduler` as its own process group, as a service manager runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = SCHEDULER.start(env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the scheduler exited ({self.process.returncode}):\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def loaded(self, library: str) -> bool:
        """Whether the scheduler process has `library`'s shared objects mapped (it imported it)."""
        return library in Path(f"/proc/{self.process.pid}/maps").read_text()

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM to every process of the group, as `systemctl stop` does; then wait for each process the
        scheduler started (task processes lead their own groups) and kill, by pid, any still there."""
        if self.process.poll() is not None:
            return self.process.returncode
        try:
            family = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for leftover in alive:
            leftover.kill()
        psutil.wait_procs(alive, timeout=30)
        return self.process.returncode


def _wait(condition, what: str, scheduler: Scheduler, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        scheduler.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout}s; the scheduler's log ends:\n{scheduler.tail()}")
        time.sleep(1)


def _upstream_of(config: configs.PipelineConfig, node_id: str) -> set[str]:
    """Every node `node_id` waits for, directly or not: those that finished before it started."""
    graph = node_launch.upstream_node_ids(node_launch.compile_pipeline(config))
    found, stack = set(), list(graph[node_id])
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(graph[node])
    return found


def _airflow_json(command, env: dict[str, str]):
    """A documented Airflow CLI command's JSON answer (its last line: log lines may come first)."""
    return json.loads(command.run(env).stdout.strip().splitlines()[-1])


@dataclasses.dataclass
class Deployment:
    config: configs.PipelineConfig
    env: dict[str, str]
    home: Path
    tfx_pipeline_create: str
    tfx_run_create: str
    triggered: str  # run ids
    scheduled: str
    list_runs: list[dict]
    task_states: dict[str, dict[str, str]]  # run id: task id: state
    dag_row: tuple[int, int, str]  # the DAG as Airflow registered it: max_active_tasks, max_active_runs, fileloc
    scheduler_preloaded: bool
    stopped_at: datetime.datetime  # the SIGTERM
    scheduler_exit: int
    trainer_after_kill: tuple[str | None, int]
    before_trainer: set[str]  # the nodes the Trainer waits for
    tries: dict[str, list[tuple[int, str, datetime.datetime, datetime.datetime]]]  # task: (try, state, start, end)
    serialized_tasks: dict[str, dict]
    executed_before_kill: dict[str, list[str]]  # the triggered run's MLMD states when the SIGTERM came
    unpaused_and_triggered: tuple[bool, dict[str, str]]  # is_paused after, and the manual run it queued: state


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, sample_data_dir):
    # Everything started here is stopped when the module ends, or at once if the set-up fails.
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(servers.postgresql("airflow-pw"))
        mariadb = stack.enter_context(servers.mariadb(tmp_path_factory.mktemp("mariadb"), "mlmd-pw"))
        root = tmp_path_factory.mktemp("airflow_local_executor")
        yield _deploy_and_run(stack, root, _environment(root, sample_data_dir, postgres, mariadb), postgres)


def _environment(root: Path, sample_data_dir: Path, postgres, mariadb) -> dict[str, str]:
    """The recipe's settings on the test's servers and folders, with a 1 s retry delay and no schedule (the
    second scheduler gets one), and the test's Trainer that fails once."""
    in_place_of_the_docs = {
        "/srv/airflow": str(root / "airflow_home"),
        "postgresql+psycopg2://airflow:PASSWORD@db.example:5432/airflow": postgres.sqlalchemy_url(),
        "/data/taxi-output": str(root / "output"),
        "/data/taxi": str(sample_data_dir),
        "mysql://taxi@db.example:3306/mlmd": mariadb.url(),
        "/etc/taxi/mlmd-password": str(mariadb.password_file),
        "PIPELINE_RETRY_BACKOFF_S=30": f"PIPELINE_RETRY_BACKOFF_S={RETRY_DELAY_S}",
        "0 6 * * *": "",
    }
    recipe = {}
    for command in RECIPE_SETTINGS:
        for old, new in in_place_of_the_docs.items():
            if old in command.text:
                command = command.replace(old, new)
        recipe.update(command.env)
    assert int(recipe["PIPELINE_RETRIES"]) == RETRIES, "the story needs two retries: a kill, then a failure"
    modules_dir = copy_modules(root / "modules")
    trainer_file = modules_dir / "trainer_module.py"
    trainer_file.write_text(trainer_file.read_text() + FAIL_ONCE)
    env = {
        **small_run_env(sample_data_dir, root / "output", modules_dir),
        **recipe,
        FAIL_ONCE_ENV: str(root / "trainer-failed-once"),
    }
    env.pop(configs.METADATA_MYSQL_PASSWORD_ENV, None)
    return env


def _deploy_and_run(stack: contextlib.ExitStack, root: Path, env: dict[str, str], postgres) -> Deployment:
    config = configs.load_config(**configs.env_overrides(env))
    dag_id = config.pipeline_name
    documented("docs/runners.md", "airflow db migrate").run(env)
    run_together([
        documented("docs/runners.md", 'mkdir -p "$AIRFLOW_HOME/config"'),
        documented("docs/runners.md", 'ln -s "$PWD/pipeline/runners/airflow_local_settings.py" '
                                      '"$AIRFLOW_HOME/config/airflow_local_settings.py"'),
    ], env)
    created = documented(
        "docs/runners.md", "tfx pipeline create --engine airflow --pipeline_path pipeline/runners/airflow_dag.py"
    ).run(env).stdout
    database = AirflowDatabase(postgres)
    stack.callback(database.connection.close)

    first = Scheduler(env, root / "scheduler-1.log")
    stack.callback(first.stop)
    # `tfx run create` unpauses the DAG, which needs the scheduler to have registered it.
    _wait(lambda: database.rows("SELECT 1 FROM dag WHERE dag_id = %s AND is_active", dag_id),
          "DAG registered by the scheduler", first)
    triggered_output = documented("docs/runners.md", "tfx run create --engine airflow --pipeline_name chicago-taxi"
                                  ).run(env).stdout
    [triggered] = [run for run, (kind, _) in database.runs(dag_id).items() if kind == "manual"]

    def trainer_running():
        if database.runs(dag_id)[triggered][1] == "failed":
            pytest.fail(f"run {triggered} failed before its Trainer:\n{first.tail()}")
        if database.task(dag_id, triggered, "Trainer")[0] != "running":
            return None
        states = states_of_run(config, triggered)
        return states if states.get("Trainer") == ["running"] else None

    # The test's Trainer holds in run_fn until "<marker>.release" exists: the SIGTERM comes mid-task.
    executed_before_kill = _wait(trainer_running, "Trainer running in the triggered run", first)
    preloaded = first.loaded("libtensorflow_framework")
    stopped_at = datetime.datetime.now(datetime.timezone.utc)
    scheduler_exit = first.stop()
    trainer_after_kill = database.task(dag_id, triggered, "Trainer")
    # From now on the Trainer's first run_fn fails once (and makes the marker), then it trains.
    Path(f"{env[FAIL_ONCE_ENV]}.release").touch()

    # Airflow creates the scheduled run only when it parses the DAG file after the triggered run has ended
    # (one run at a time): with the recipe's 300 s between parses, that run started up to 5 minutes late.
    second = Scheduler(
        {**env, "PIPELINE_AIRFLOW_SCHEDULE": SCHEDULE, "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "15"},
        root / "scheduler-2.log",
    )
    stack.callback(second.stop)

    def scheduled_run_done():
        runs = database.runs(dag_id)
        failed = [run for run, (_, state) in runs.items() if state == "failed"]
        if failed:
            pytest.fail(f"runs {failed} failed:\n{second.tail()}")
        done = [run for run, (kind, state) in runs.items() if kind == "scheduled" and state == "success"]
        return done[0] if done else None

    scheduled = _wait(scheduled_run_done, "scheduled run finished", second)
    # Stopped at once: the schedule would start another run every minute.
    second.stop()

    before_trainer = _upstream_of(config, "Trainer")
    tries = {}
    for task_id in ("Trainer", *before_trainer):
        # Airflow keeps each earlier try in task_instance_history, the last in task_instance.
        tries[task_id] = sorted(
            row
            for table in ("task_instance_history", "task_instance")
            for row in database.rows(f"SELECT try_number, state, start_date, end_date FROM {table} "
                                     "WHERE dag_id = %s AND run_id = %s AND task_id = %s", dag_id, triggered, task_id)
        )
    [(serialized,)] = database.rows("SELECT data FROM serialized_dag WHERE dag_id = %s", dag_id)
    serialized = json.loads(serialized) if isinstance(serialized, str) else serialized
    [dag_row] = database.rows("SELECT max_active_tasks, max_active_runs, fileloc FROM dag WHERE dag_id = %s", dag_id)
    list_runs = _airflow_json(documented("docs/runners.md", "airflow dags list-runs -d chicago-taxi -o json"), env)
    task_states = {
        run: dict(database.rows("SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
                                dag_id, run))
        for run in (triggered, scheduled)
    }

    # The doc's other way to start a run, which needs a scheduler to carry it out: on the paused DAG (as
    # `tfx pipeline create` leaves it), with no scheduler running, it unpauses it and queues the run.
    with database.connection.cursor() as cursor:
        cursor.execute("UPDATE dag SET is_paused = true WHERE dag_id = %s", (dag_id,))
    documented("docs/runners.md", "airflow dags unpause chicago-taxi && airflow dags trigger chicago-taxi").run(env)
    [(paused,)] = database.rows("SELECT is_paused FROM dag WHERE dag_id = %s", dag_id)
    queued = {run: state for run, (kind, state) in database.runs(dag_id).items()
              if kind == "manual" and run != triggered}
    return Deployment(
        config=config,
        env=env,
        home=Path(env["AIRFLOW_HOME"]),
        tfx_pipeline_create=created,
        tfx_run_create=triggered_output,
        triggered=triggered,
        scheduled=scheduled,
        list_runs=list_runs,
        task_states=task_states,
        dag_row=dag_row,
        scheduler_preloaded=preloaded,
        stopped_at=stopped_at,
        scheduler_exit=scheduler_exit,
        trainer_after_kill=trainer_after_kill,
        before_trainer=before_trainer,
        tries=tries,
        serialized_tasks={t["__var"]["task_id"]: t["__var"] for t in serialized["dag"]["tasks"]},
        executed_before_kill=executed_before_kill,
        unpaused_and_triggered=(paused, queued),
    )


def test_tfx_cli_deploys_and_triggers_the_dag(deployment):
    assert f'Pipeline "{deployment.config.pipeline_name}" created successfully.' in deployment.tfx_pipeline_create
    # The CLI copies the DAG file into Airflow's DAGs folder, where the scheduler found it.
    copied = deployment.home / "dags" / deployment.config.pipeline_name / "airflow_dag.py"
    assert copied.read_text() == (PROJECT_ROOT / "pipeline" / "runners" / "airflow_dag.py").read_text()
    assert deployment.dag_row[2] == str(copied)
    assert f"Run created for pipeline: {deployment.config.pipeline_name}" in deployment.tfx_run_create


def test_both_runs_succeed_every_task_one_triggered_one_from_the_schedule(deployment):
    runs = {r["run_id"]: r for r in deployment.list_runs}
    assert set(runs) >= {deployment.triggered, deployment.scheduled}
    assert deployment.triggered.startswith("manual__") and deployment.scheduled.startswith("scheduled__")
    assert runs[deployment.triggered]["state"] == runs[deployment.scheduled]["state"] == "success"
    # The scheduled run came after the triggered one (one run at a time).
    assert runs[deployment.scheduled]["start_date"] >= runs[deployment.triggered]["end_date"]
    for run in (deployment.triggered, deployment.scheduled):
        assert deployment.task_states[run] == {task: "success" for task in TASKS}, run


def test_tasks_ran_side_by_side_in_separate_processes(deployment):
    # ML Metadata on MySQL: no one-task-at-a-time limit, Airflow's default of 16 applies.
    assert deployment.dag_row[:2] == (16, 1)
    spans = [(start, end) for task in deployment.before_trainer for _, _, start, end in deployment.tries[task]]
    overlapping = [(a, b) for a in spans for b in spans if a is not b and a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two tasks of the triggered run ran at once: {sorted(spans)}"
    # The scheduler imported TensorFlow at start (airflow_local_settings.py), for its forked tasks.
    assert deployment.scheduler_preloaded


def test_sigterm_mid_task_stops_the_scheduler_and_marks_the_task_for_retry(deployment):
    assert deployment.scheduler_exit == 0
    assert deployment.trainer_after_kill == ("up_for_retry", 1)
    # Everything before the Trainer had finished; the Trainer was executing in TFX when the SIGTERM came.
    before = deployment.executed_before_kill
    upstream = deployment.before_trainer
    assert {node: before.get(node) for node in upstream} == {node: ["executed"] for node in upstream}
    assert before["Trainer"] == ["running"]
    log = _task_log(deployment, "Trainer", 1)
    assert "Task received SIGTERM signal" in log


def test_the_run_resumes_at_the_killed_task_and_a_failure_is_retried_until_it_completes(deployment):
    trainer = deployment.tries["Trainer"]
    assert [(number, state) for number, state, _, _ in trainer] == [(1, "failed"), (2, "failed"), (3, "success")]
    assert "RuntimeError: simulated transient failure" in _task_log(deployment, "Trainer", 2)
    # Retried after the delay from PIPELINE_RETRY_BACKOFF_S (doubling), as many times as PIPELINE_RETRIES.
    settings = deployment.serialized_tasks["Trainer"]
    assert (settings["retries"], settings["retry_delay"]) == (RETRIES, RETRY_DELAY_S)
    assert settings["retry_exponential_backoff"] is True
    assert trainer[2][2] - trainer[1][3] >= datetime.timedelta(seconds=RETRY_DELAY_S)
    # The components that had finished before the kill ran once, before it, and were not run again.
    for task in deployment.before_trainer:
        [(number, state, _, end)] = deployment.tries[task]
        assert (number, state) == (1, "success") and end < deployment.stopped_at, task
    # ML Metadata: one execution per component in the run; TFX resumed the Trainer's own execution.
    assert states_of_run(deployment.config, deployment.triggered) == {node: ["executed"] for node in ALL_NODES}


def test_unpause_and_trigger_queue_a_run_for_the_scheduler(deployment):
    paused, queued = deployment.unpaused_and_triggered
    assert paused is False
    assert list(queued.values()) == ["queued"] and next(iter(queued)).startswith("manual__")


def test_the_scheduled_run_is_served_from_cache(deployment):
    states = states_of_run(deployment.config, deployment.scheduled)
    assert {node: states[node] for node in CACHED_WHEN_UNCHANGED} == {node: ["cached"] for node in CACHED_WHEN_UNCHANGED}


def test_mlmd_holds_both_runs_and_the_triggered_run_pushed_the_model(deployment, capsys, monkeypatch):
    serving = Path(deployment.config.serving_model_dir)
    [version] = serving.glob("*/saved_model.pb")
    for name in ("PIPELINE_METADATA_MYSQL_URL", "PIPELINE_METADATA_MYSQL_PASSWORD_FILE"):
        monkeypatch.setenv(name, deployment.env[name])
    runs = {r["run"]: r for r in cli_json(capsys, deployment.config, "runs")["runs"]}
    assert {deployment.triggered, deployment.scheduled} <= set(runs)
    for run in (deployment.triggered, deployment.scheduled):
        assert runs[run]["status"] == "complete" and runs[run]["record"]["runner"] == "airflow", runs[run]
    assert runs[deployment.triggered]["pushed_version"] == version.parent.name
    # Nothing went to a SQLite store.
    assert not Path(deployment.config.metadata_path).exists()


def _task_log(deployment: Deployment, task_id: str, attempt: int) -> str:
    path = (deployment.home / "logs" / f"dag_id={deployment.config.pipeline_name}"
            / f"run_id={deployment.triggered}" / f"task_id={task_id}" / f"attempt={attempt}.log")
    return path.read_text(errors="replace")
