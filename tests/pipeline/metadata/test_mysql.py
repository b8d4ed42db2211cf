"""ML Metadata on a real MariaDB server on loopback: a pipeline run, then lineage read back through the CLI.

The server is the Debian `mariadb-server` package (scripts/install_os_packages.sh installs it), started
by tests/servers.py in a temporary folder on a free port; the test skips only when it is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.metadata import mysql, run_record
from pipeline.metadata.store import open_store
from tests import servers
from tests.conftest import small_run_env

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
