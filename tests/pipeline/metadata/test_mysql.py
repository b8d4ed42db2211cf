"""ML Metadata on a real MariaDB server on loopback: a pipeline run, then lineage read back through the CLI;
the server stopped in the middle of a run and started again.

The server is the Debian `mariadb-server` package (scripts/install_os_packages.sh installs it), started
by tests/servers.py in a temporary folder on a free port; the test skips only when it is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.guards import recovery
from pipeline.metadata import artifact_files, mysql, run_record, run_summary
from pipeline.metadata.store import StoreUnreachable, connection_config, open_store, reached
from tests import servers
from tests.conftest import LOCAL_RUNNER, run_command_result, small_run_env
from tests.orchestrator_checks import CACHED_WHEN_UNCHANGED
from tests.pipeline.guards.test_recovery import PipelineProcess, wait_for_execution_dir

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).parent / "pipeline")
# Characters a naive URL or shell quoting would trip on.
PASSWORD = "s3cret;pw:@/x"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    with servers.mariadb(tmp_path_factory.mktemp("mariadb"), PASSWORD) as server:
        yield server


def test_url_fills_the_fields_and_refuses_a_password():
    config = configs.load_config(metadata_mysql_url="mysql://taxi@db.example:3307/mlmd")
    assert (config.metadata_mysql_host, config.metadata_mysql_port) == ("db.example", 3307)
    assert (config.metadata_mysql_database, config.metadata_mysql_user) == ("mlmd", "taxi")
    with pytest.raises(configs.ConfigError, match="may not contain a password"):
        configs.load_config(metadata_mysql_url="mysql://taxi:hunter2@db.example/mlmd")
    with pytest.raises(configs.ConfigError, match="needs a host and a database"):
        configs.load_config(metadata_mysql_url="mysql://taxi@db.example")
    # There is no password setting, so the environment variable never reaches the config.
    assert "metadata_mysql_password" not in {f.name for f in dataclasses.fields(configs.PipelineConfig)}


def test_password_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    config = configs.load_config(metadata_mysql_host="h", metadata_mysql_database="d",
                                 metadata_mysql_password_file=str(secret))
    monkeypatch.delenv(configs.METADATA_MYSQL_PASSWORD_ENV, raising=False)
    assert mysql.connection_config(config).mysql.password == "from-file"
    monkeypatch.setenv(configs.METADATA_MYSQL_PASSWORD_ENV, "from-env")
    assert mysql.connection_config(config).mysql.password == "from-env"
    missing = configs.load_config(metadata_mysql_host="h", metadata_mysql_database="d",
                                  metadata_mysql_password_file=str(tmp_path / "nope"))
    monkeypatch.delenv(configs.METADATA_MYSQL_PASSWORD_ENV)
    with pytest.raises(configs.ConfigError, match="cannot read metadata_mysql_password_file"):
        mysql.connection_config(missing)


@pytest.fixture(scope="module")
def mysql_run(mariadb, tmp_path_factory, sample_data_dir):
    env = {
        **small_run_env(sample_data_dir, tmp_path_factory.mktemp("mysql_output")),
        "PIPELINE_METADATA_MYSQL_URL": mariadb.url(),
        "PIPELINE_METADATA_MYSQL_PASSWORD_FILE": str(mariadb.password_file),
        # TFX logs its connection config at INFO: the password must be masked there.
        "PIPELINE_LOG_LEVEL": "INFO",
    }
    env.pop(configs.METADATA_MYSQL_PASSWORD_ENV, None)
    result = subprocess.run(
        [sys.executable, str(configs.PROJECT_ROOT / "pipeline" / "runners" / "local_runner.py")],
        env=env, capture_output=True, text=True, timeout=900, cwd=configs.PROJECT_ROOT,
    )
    if result.returncode != 0:
        pytest.fail(f"pipeline run on MariaDB failed\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return env, result


def test_pipeline_runs_against_mariadb_and_the_cli_reads_lineage_there(mysql_run):
    env, result = mysql_run
    config = configs.load_config(**configs.env_overrides(env))
    assert "Pushed to: " in result.stdout
    # Nothing went to a SQLite file.
    assert not Path(config.metadata_path).exists()
    lineage = subprocess.run([CLI, "lineage", "serving", "--format", "json"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert lineage.returncode == 0, lineage.stderr
    story = json.loads(lineage.stdout)
    assert story["live"] is True and story["blessed"] is True
    assert story["examples"] and story["model"]["id"]
    runs = subprocess.run([CLI, "runs", "--format", "json"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert runs.returncode == 0, runs.stderr
    [run] = json.loads(runs.stdout)["runs"]
    assert run["blessed"] is True and run["pushed_version"]


def test_the_password_is_in_no_log_and_no_record(mysql_run):
    env, result = mysql_run
    assert "Using connection config" in result.stdout + result.stderr  # TFX did log it, masked.
    assert PASSWORD not in result.stdout + result.stderr
    config = configs.load_config(**configs.env_overrides(env))
    # Nor in the run's full log, which holds everything TFX logged.
    (log_file,) = Path(config.output_root, "logs", config.pipeline_name).glob("*.log")
    assert "Using connection config" in log_file.read_text() and PASSWORD not in log_file.read_text()
    store = open_store(config)
    contexts = store.get_contexts_by_type("pipeline_run")
    assert contexts
    for context in contexts:
        record = run_record.read_record(context)
        assert record["config"] and PASSWORD not in json.dumps(record)
        assert record["config"]["metadata_mysql_host"] == "127.0.0.1"


def test_an_sqlite_path_given_with_a_mysql_store_configured_is_refused(mysql_run, tmp_path):
    """Which store the command reads must not be a guess: SQLite named on the command line, MySQL configured."""
    env, _ = mysql_run
    sqlite = tmp_path / "metadata.db"
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(sqlite)
    metadata_store.MetadataStore(connection)  # An SQLite store of its own (an empty file is not one).
    refused = subprocess.run([CLI, "runs", "--metadata-path", str(sqlite)], env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: --metadata-path names an SQLite store, but ML Metadata is configured on MySQL (127.0.0.1, "
        "from PIPELINE_METADATA_MYSQL_*): give one or the other"
    ]
    assert refused.stdout == ""


# What the console must not show when the server goes away: a traceback, ML Metadata's C++ log lines
# (glog: "E1207 11:54:48.754151 16728 mysql_metadata_source.cc:174] MySQL database was not initialized..."),
# MySQL's or TFX's raw errors.
NOT_ON_THE_CONSOLE = re.compile(
    r"Traceback|InitGoogleLogging|^[EWF]\d{4} |mysql_real_connect|Lost connection|Failed to establish", re.M
)


def test_only_the_loss_of_a_mysql_store_becomes_one_line_naming_it():
    mysql_config = configs.load_config(metadata_mysql_url="mysql://taxi@db.example:3307/mlmd")
    lost = RuntimeError("Failed to establish connection to Metadata storage with error: mysql_real_connect failed: "
                        "errno: , error: ")
    with pytest.raises(StoreUnreachable) as raised, reached(mysql_config):
        try:
            raise lost
        except RuntimeError:  # Found behind another error too (a clean-up that failed on the dead server).
            raise OSError("cleaning up") from None
    assert str(raised.value).startswith(
        "lost the ML Metadata store mysql://taxi@db.example:3307/mlmd during the run (the server refuses connections)."
    )
    assert raised.value.__cause__.__context__ is lost  # Everything behind it stays, for the log file.
    with pytest.raises(RuntimeError, match="mysql_real_connect"), reached(configs.load_config()):
        raise lost  # An SQLite store's error is not a MySQL server's.
    with pytest.raises(ValueError, match="^a bug$"), reached(mysql_config):
        raise ValueError("a bug")


def _unusable_live_artifacts(store: metadata_store.MetadataStore) -> list[str]:
    """Every artifact the store records LIVE whose files are gone or empty (artifact_files.unusable)."""
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    return [
        f"{artifact.uri}: {why}" for artifact in store.get_artifacts()
        if artifact.state == metadata_store_pb2.Artifact.LIVE
        and (why := artifact_files.unusable(artifact, type_names[artifact.type_id]))
    ]


def test_a_server_that_goes_away_mid_run_stops_it_in_one_line_and_the_next_run_resumes(
    mariadb, tmp_path, sample_data_dir
):
    """The server stopped (by its process id) while the Trainer executes, then started again on the same
    data: the run stops with one line naming the store, exit status 1, the errors behind it in its log file;
    nothing is recorded LIVE without its files; the next run is not kept waiting by the dead run's lock,
    marks the Trainer's execution failed, takes every component before it from the cache and completes."""
    database = "outage"  # A store of its own on the module's server.
    assert mariadb.sql(f"CREATE DATABASE {database}; GRANT ALL ON {database}.* TO '{mariadb.user}'@'127.0.0.1';") is None
    store_url = f"mysql://{mariadb.user}@127.0.0.1:{mariadb.port}/{database}"
    env = {
        **small_run_env(sample_data_dir, tmp_path / "out"),
        "PIPELINE_METADATA_MYSQL_URL": store_url,
        "PIPELINE_METADATA_MYSQL_PASSWORD_FILE": str(mariadb.password_file),
    }
    # The console as a user's run has it by default (this process's own defaults are not the run's).
    for name in (configs.METADATA_MYSQL_PASSWORD_ENV, "PIPELINE_LOG_LEVEL", "TAXI_LOG_LEVEL",
                 "TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel"):
        env.pop(name, None)
    config = configs.load_config(**configs.env_overrides(env))
    run = PipelineProcess(env)
    try:
        run.wait_for(f"{'Trainer':<32} started")
        trainer = wait_for_execution_dir(config.pipeline_root, "Trainer", "model")
        # TFX makes the output folders as the executor starts, its execution registered RUNNING; the
        # Trainer's work on the sample takes 6 s or more.
        time.sleep(1)
        assert run.process.poll() is None, run.output[-4000:]
        mariadb.stop()
        code = run.finish(timeout=300)
    finally:
        mariadb.start()

    assert code == 1, run.output[-6000:]
    before, failed, after = run.output.partition(f"{'Trainer':<32} FAILED after ")
    assert failed, run.output[-6000:]
    shown = after.splitlines()[1:]  # After the rest of the FAILED line.
    assert len(shown) == 2 and shown[1].startswith("The full log: "), after
    error, log_line = shown
    # Whether TFX was connecting or connected when the server went is a matter of timing.
    assert error in {
        f"error: lost the ML Metadata store {store_url} during the run ({what}). Once it answers again, run "
        "again: the next run marks what this one left unfinished as failed and takes what it finished from the "
        "cache." for what in ("the server refuses connections", "the server closed the connection")
    }, error
    assert not NOT_ON_THE_CONSOLE.search(run.output), run.output[-6000:]
    # The log file keeps what TFX and MySQL said.
    log_text = Path(log_line.removeprefix("The full log: ")).read_text()
    assert "Traceback" in log_text and "mysql_real_connect failed" in log_text

    store = open_store(config)
    [left] = store.get_executions_by_id([trainer])
    assert left.last_known_state == metadata_store_pb2.Execution.RUNNING  # No one could say otherwise.
    assert not _unusable_live_artifacts(store)

    resumed = run_command_result(LOCAL_RUNNER, {**env, "PIPELINE_RUN_LOCK_TIMEOUT_S": "0"})
    assert (
        "An earlier run was interrupted; marked its unfinished executions failed (their outputs are never "
        f"used): Trainer (execution {trainer})"
    ) in resumed.stdout
    assert "Pushed to: " in resumed.stdout
    summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
    states = {c.node_id: c.state for c in summary.components}
    before_trainer = {node for node in CACHED_WHEN_UNCHANGED if f"{node:<32} finished" in before}
    assert before_trainer == {"CsvExampleGen", "StatisticsGen", "SchemaGen", "CuratedSchemaImporter",
                              "ExampleValidator", "Transform"}
    assert {node: states[node] for node in before_trainer} == dict.fromkeys(before_trainer, "cached")
    assert states["Trainer"] == states["Evaluator"] == states["Pusher"] == "executed"
    store = open_store(config)
    [abandoned] = store.get_executions_by_id([trainer])
    assert abandoned.last_known_state == metadata_store_pb2.Execution.FAILED
    assert abandoned.custom_properties[recovery.ABANDONED_PROPERTY].string_value
    assert not [e for e in store.get_executions() if e.last_known_state in (
        metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)]
    assert not _unusable_live_artifacts(store)
    assert not list(Path(config.pipeline_root, "Trainer").glob(f"*/{trainer}"))
