"""The store's run lock: exclusive while held, named when busy, dropped by the system when its holder is
killed; a task-per-node run's lease, renewed while its tasks run and lapsing when they stop. On a SQLite
store (a file lock) and on a real MariaDB server (a database lock: another connection, another process), whose
restart drops a held lock: the holder takes it again, or says that another run took it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline import configs
from pipeline.guards import store_lock
from pipeline.metadata import mysql
from tests import servers
from tests.orchestrator_checks import store_held_by_another_run

@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    with servers.mariadb(tmp_path_factory.mktemp("mariadb"), "lock-pw") as server:
        yield server


@pytest.fixture(params=["sqlite", "mysql"])
def config(request, tmp_path):
    settings = {"output_root": str(tmp_path), "run_lock_timeout_s": 0}
    if request.param == "mysql":
        server = request.getfixturevalue("mariadb")
        settings.update(metadata_mysql_url=server.url(), metadata_mysql_password_file=str(server.password_file))
    return configs.load_config(**settings)


def _env(config: configs.PipelineConfig) -> dict:
    env = {**os.environ, "PIPELINE_OUTPUT_ROOT": config.output_root}
    if config.metadata_mysql_host:
        env["PIPELINE_METADATA_MYSQL_URL"] = (
            f"mysql://{config.metadata_mysql_user}@{config.metadata_mysql_host}:{config.metadata_mysql_port}/"
            f"{config.metadata_mysql_database}"
        )
        env["PIPELINE_METADATA_MYSQL_PASSWORD_FILE"] = config.metadata_mysql_password_file
    return env


def test_a_held_store_refuses_another_run_naming_the_holder_until_the_holder_is_killed(config):
    with store_held_by_another_run(_env(config)) as holder:
        with pytest.raises(store_lock.LockBusy, match=f"a local run \\(pid {holder.pid} on "):
            with store_lock.hold(config, "beam"):
                pass
        assert f"pid {holder.pid}" in store_lock.busy(config)
        started = time.monotonic()
        with pytest.raises(store_lock.LockBusy, match="gave up after 1s"):
            with store_lock.hold(dataclasses.replace(config, run_lock_timeout_s=1), "beam", say=lambda _: None):
                pass
        assert time.monotonic() - started >= 1.0
    # The system dropped the dead holder's lock at once; its stale record does not count.
    assert store_lock.busy(config) is None
    with store_lock.hold(config, "local"):
        assert "a local run" in store_lock.busy(config)
    assert store_lock.busy(config) is None


def test_a_task_run_holds_the_store_by_its_lease_between_its_tasks(config):
    assert store_lock.claim(config, "airflow", "manual__1") is True  # New to the run: clean up before it.
    # Between two of its tasks no process holds anything, yet the store is the run's.
    with pytest.raises(store_lock.LockBusy, match="airflow run manual__1 \\(pid "):
        with store_lock.hold(config, "local"):
            pass
    with pytest.raises(store_lock.LockBusy, match="airflow run manual__1"):
        store_lock.claim(config, "luigi", "2026-12-07T01:00:00")
    assert store_lock.claim(config, "airflow", "manual__1") is False  # Its own next task: a renewal.
    store_lock.release(config, "2026-12-07T01:00:00")  # Not the holder: nothing happens.
    assert "manual__1" in store_lock.busy(config)
    store_lock.release(config, "manual__1")
    assert store_lock.busy(config) is None
    with store_lock.hold(config, "local"):
        pass


def test_a_lease_lapses_unless_its_tasks_renew_it(config):
    short = dataclasses.replace(config, run_lock_lease_s=1.5)
    with store_lock.renewing(short, "luigi", "run-a"):
        time.sleep(2.5)  # Longer than the lease: renewed meanwhile.
        with pytest.raises(store_lock.LockBusy, match="luigi run run-a"):
            store_lock.claim(short, "luigi", "run-b")
    # Its orchestrator died after that task: no release, and no renewal either.
    time.sleep(1.6)
    assert store_lock.busy(short) is None
    assert store_lock.claim(short, "luigi", "run-b") is True


def _own_store(mariadb, tmp_path, database: str) -> configs.PipelineConfig:
    """A store of its own on the module's server: the tests above leave a lease in theirs."""
    assert mariadb.sql(f"CREATE DATABASE {database}; GRANT ALL ON {database}.* TO '{mariadb.user}'@'127.0.0.1';") is None
    return configs.load_config(
        output_root=str(tmp_path), run_lock_timeout_s=0, metadata_mysql_password_file=str(mariadb.password_file),
        metadata_mysql_url=f"mysql://{mariadb.user}@127.0.0.1:{mariadb.port}/{database}",
    )


@contextlib.contextmanager
def _held_across_a_restart(config: configs.PipelineConfig, mariadb) -> Iterator[list[str]]:
    """The store held as a local run holds it, its server stopped and started again meanwhile; yields what
    the run says."""
    said = []
    with store_lock.hold(config, "local", say=said.append):
        try:
            mariadb.stop()
        finally:
            mariadb.start()
        yield said


def test_a_lock_a_restarting_server_dropped_is_taken_again(mariadb, tmp_path):
    """MySQL drops a lock with its connection: a server restarted during a run (short enough for TFX, which
    connects anew for each step, to notice nothing) would leave the run going without its lock."""
    config = _own_store(mariadb, tmp_path, "restarted")
    with _held_across_a_restart(config, mariadb) as said:
        deadline = time.monotonic() + 4 * store_lock.KEEP_EVERY_S
        while not said and time.monotonic() < deadline:
            time.sleep(0.2)
        assert said == [
            f"The ML Metadata store {mysql.describe(config)} dropped this run's lock with its connection (a server "
            "restart?); the run took it again."
        ]
        assert f"a local run (pid {os.getpid()} on " in store_lock.busy(config)
        with pytest.raises(store_lock.LockBusy, match=f"a local run \\(pid {os.getpid()} on "):
            with store_lock.hold(config, "beam"):
                pass
    assert store_lock.busy(config) is None


def test_a_run_whose_lock_another_run_took_after_a_restart_says_so_once(mariadb, tmp_path, monkeypatch):
    config = _own_store(mariadb, tmp_path, "taken")
    keeping = threading.Event()  # The run's keep-alive beats only once the other run holds the store.
    keep = store_lock._MySQLMutex.keep
    monkeypatch.setattr(store_lock._MySQLMutex, "keep", lambda *args: keeping.is_set() and keep(*args))
    monkeypatch.setattr(store_lock, "KEEP_EVERY_S", 0.2)
    with _held_across_a_restart(config, mariadb) as said:
        with store_lock.hold(config, "beam"):
            keeping.set()
            time.sleep(2)  # Ten beats.
            [line] = said
            assert line.startswith(
                f"The ML Metadata store {mysql.describe(config)} dropped this run's lock with its connection (a "
                f"server restart?), and another run took the store: a beam run (pid {os.getpid()} on "
            ) and line.endswith("). Both runs now write it."), line
            assert "a beam run" in store_lock.busy(config)
