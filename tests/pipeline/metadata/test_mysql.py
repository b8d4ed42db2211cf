"""ML Metadata on a real MariaDB server on loopback: a pipeline run, then lineage read back through the CLI.

The server is the Debian `mariadb-server` package (scripts/install_os_packages.sh installs it), started
here in a temporary folder on a free port; the test skips only when the server is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.metadata import mysql, run_record
from pipeline.metadata.store import open_store
from tests.conftest import small_run_env

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).parent / "pipeline")
# Characters a naive URL or shell quoting would trip on.
PASSWORD = "s3cret;pw:@/x"


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class MariaDB:
    port: int
    database: str
    user: str
    password_file: Path


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server, install, client = _binary("mariadbd"), _binary("mariadb-install-db"), _binary("mariadb")
    if not (server and install and client):
        pytest.skip("MariaDB is not installed (scripts/install_os_packages.sh installs mariadb-server)")
    root = tmp_path_factory.mktemp("mariadb")
    user_flag = ["--user=root"] if os.getuid() == 0 else []
    subprocess.run(
        [install, "--no-defaults", *user_flag, f"--datadir={root / 'data'}",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )
    port, sock = _free_port(), root / "mysqld.sock"
    process = subprocess.Popen(
        [server, "--no-defaults", *user_flag, f"--datadir={root / 'data'}", f"--socket={sock}",
         f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={root / 'mysqld.pid'}",
         f"--log-error={root / 'error.log'}", "--skip-name-resolve", "--innodb-buffer-pool-size=32M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        sql = (
            "CREATE DATABASE mlmd; "
            f"CREATE USER 'taxi'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
            "GRANT ALL ON mlmd.* TO 'taxi'@'127.0.0.1';"
        )
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run([client, "--no-defaults", f"--socket={sock}", "-uroot", "-e", sql],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                pytest.fail(f"MariaDB did not start: {result.stderr}\n{log[-3000:]}")
            time.sleep(0.5)
        password_file = root / "password"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o600)
        yield MariaDB(port=port, database="mlmd", user="taxi", password_file=password_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
        "PIPELINE_METADATA_MYSQL_URL": f"mysql://{mariadb.user}@127.0.0.1:{mariadb.port}/{mariadb.database}",
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
    store = open_store(config)
    contexts = store.get_contexts_by_type("pipeline_run")
    assert contexts
    for context in contexts:
        record = run_record.read_record(context)
        assert record["config"] and PASSWORD not in json.dumps(record)
        assert json.loads(record["config"])["metadata_mysql_host"] == "127.0.0.1"
