"""The store's run lock: exclusive while held, named when busy, dropped by the system when its holder is
killed; a task-per-node run's lease, renewed while its tasks run and lapsing when they stop. On a SQLite
store (a file lock) and on a real MariaDB server (a database lock: another connection, another process)."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from pipeline import configs
from pipeline.guards import store_lock
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
