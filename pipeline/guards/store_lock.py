"""One pipeline run at a time per ML Metadata store: the run lock every runner takes.

Two runs writing one store interleave their executions (SQLite also says "database is locked"), and a
run's data gate and Evaluator compare with what the run before it passed: runs of a store take turns.
The lock is a mutex that the system drops when its holder dies (a marker would outlive a crashed
holder), plus a record of who holds the store, for the message a refused run prints:

- beside a SQLite store, an `fcntl.flock` on `<store>.lock`, the record being the file's text;
- on MySQL, the server's `GET_LOCK` on a connection of the holder (runs on other machines see it too),
  the record a row of the `tfx_run_lock` table in the store's database. A server that restarts drops it
  with the connection: the holder takes it again on a new one (`keep`, every KEEP_EVERY_S).

A runner whose whole run is one process (local, Beam, the scheduler's runs) holds the mutex for the run.
A run whose nodes are separate task processes (Airflow, Luigi) cannot: its first task claims a lease in
the record, every node task renews it while it runs, and its last task releases it. A lease that has
not been renewed for run_lock_lease_s (its orchestrator died) lapses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline import configs
from pipeline.metadata import mysql
from pipeline.metadata.store import connection_config

# Exit status of a command refused because another run holds the store (sysexits' EX_TEMPFAIL).
EXIT_BUSY = 75
# The MySQL table holding the record, one row per lock name.
MYSQL_TABLE = "tfx_run_lock"
# How often a run checks that it still holds the store: a MySQL server that restarts drops its lock, which
# the run takes again (another run could take the store in between, for at most this long).
KEEP_EVERY_S = 5.0


class LockBusy(RuntimeError):
    """Another live run holds the store."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a store: a process for its lifetime, or a task-per-node run by its lease."""

    runner: str = ""
    run_id: str = ""
    pid: int = 0
    host: str = ""
    since: str = ""
    lease: bool = False  # held across task processes, until released or not renewed for a while
    renewed: float = 0.0  # time.time() of the lease's last renewal

    @classmethod
    def me(cls, runner: str, run_id: str = "", lease: bool = False) -> "Holder":
        return cls(runner, run_id, os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   lease, time.time())

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        try:
            fields = json.loads(text or "{}")
        except ValueError:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known}) if fields else None

    def dumps(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    def describe(self) -> str:
        run = f"{self.runner} run {self.run_id}" if self.run_id else f"a {self.runner or 'pipeline'} run"
        return f"{run} (pid {self.pid} on {self.host} since {self.since})"

    def lease_live(self, lease_s: float) -> bool:
        return self.lease and time.time() - self.renewed < lease_s


class _FileMutex:
    """An flock on the file beside a SQLite store; the file's text is the record."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # "a+" never truncates the holder's details before we own the lock.
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()

    def read(self) -> Holder | None:
        try:
            return Holder.parse(self.path.read_text())
        except OSError:
            return None

    def write(self, holder: Holder | None) -> None:
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(holder.dumps() if holder else "")
        self._handle.flush()

    def keep(self, holder: Holder, say: Callable[[str], None]) -> None:
        pass  # The system keeps an flock for as long as its process lives.


class _MySQLMutex:
    """`GET_LOCK` on a connection to the store's server, which drops it with the connection; the record
    is a row of MYSQL_TABLE in the store's database."""

    def __init__(self, config: configs.PipelineConfig) -> None:
        self.config = config
        self.name = f"tfx_run_lock.{config.metadata_mysql_database}"[:64]
        self._guard = threading.Lock()  # one connection, used by the run and its keep-alive thread
        self._connection = None
        self._lost = False  # another run took the lock this run's connection lost (said once)

    def _connect(self):
        import pymysql  # only for MySQL stores: a SQLite run never loads the driver

        settings = connection_config(self.config).mysql
        try:
            return pymysql.connect(host=settings.host, port=settings.port or 3306, user=settings.user,
                                   password=settings.password, database=settings.database, autocommit=True,
                                   connect_timeout=10)
        except pymysql.MySQLError as error:
            raise LockBusy(f"cannot reach the ML Metadata store {mysql.describe(self.config)} to take its run "
                           f"lock: {error.args[-1]}") from None

    def _query(self, connection, sql: str, *args):
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchone()

    def try_acquire(self) -> bool:
        connection = self._connect()
        if self._query(connection, "SELECT GET_LOCK(%s, 0)", self.name)[0] != 1:
            connection.close()
            return False
        self._query(connection, f"CREATE TABLE IF NOT EXISTS {MYSQL_TABLE} "
                                "(name VARCHAR(64) PRIMARY KEY, holder TEXT NOT NULL)")
        self._connection = connection
        return True

    def release(self) -> None:
        import pymysql  # only for MySQL stores, as above

        with self._guard:
            connection, self._connection = self._connection, None
        # A server that went away took the lock with the connection: nothing is left to release, and the
        # run's own error (the store lost) is the one to report.
        with contextlib.closing(connection), contextlib.suppress(pymysql.MySQLError):
            self._query(connection, "SELECT RELEASE_LOCK(%s)", self.name)

    def read(self) -> Holder | None:
        connection = self._connection or self._connect()
        try:
            with self._guard:
                return self.read_on(connection)
        finally:
            if connection is not self._connection:
                connection.close()

    def read_on(self, connection) -> Holder | None:
        import pymysql  # only for MySQL stores, as above

        try:
            row = self._query(connection, f"SELECT holder FROM {MYSQL_TABLE} WHERE name = %s", self.name)
        except pymysql.MySQLError:  # No table yet: no run has taken this lock.
            return None
        return Holder.parse(row[0]) if row else None

    def write(self, holder: Holder | None) -> None:
        with self._guard:
            self._query(self._connection, f"REPLACE INTO {MYSQL_TABLE} (name, holder) VALUES (%s, %s)",
                        self.name, holder.dumps() if holder else "")

    def keep(self, holder: Holder, say: Callable[[str], None]) -> None:
        """Keeps the lock: from the server's idle timeout, which would drop a lock held for hours, by using
        its connection; after the server dropped it with the connection (a restart), by taking it again
        on a new one, unless another run took it meanwhile (said once). While the server does not answer,
        raises LockBusy: the next beat tries again."""
        import pymysql  # only for MySQL stores, as above

        with self._guard:
            connection = self._connection
            if connection is None:  # Released.
                return
            try:
                self._query(connection, "SELECT 1")
                return
            except pymysql.MySQLError:
                pass  # The connection is gone, and the lock with it.
        fresh = self._connect()
        if self._query(fresh, "SELECT GET_LOCK(%s, 0)", self.name)[0] != 1:
            taken = self.read_on(fresh)
            fresh.close()
            if not self._lost:
                self._lost = True
                say(f"The ML Metadata store {mysql.describe(self.config)} dropped this run's lock with its "
                    f"connection (a server restart?), and another run took the store: "
                    f"{taken.describe() if taken else 'another process'}. Both runs now write it.")
            return
        with self._guard:
            if self._connection is not connection:  # Released meanwhile: give the new lock back.
                with contextlib.closing(fresh):
                    self._query(fresh, "SELECT RELEASE_LOCK(%s)", self.name)
                return
            self._connection = fresh
        with contextlib.suppress(pymysql.MySQLError):
            connection.close()
        self.write(holder)
        self._lost = False
        say(f"The ML Metadata store {mysql.describe(self.config)} dropped this run's lock with its connection "
            "(a server restart?); the run took it again.")


def _mutex(config: configs.PipelineConfig):
    if config.metadata_mysql_host:
        return _MySQLMutex(config)
    return _FileMutex(lock_path_for(config.metadata_path))


def lock_path_for(metadata_path: str | os.PathLike) -> Path:
    """The lock file beside a SQLite store."""
    path = Path(metadata_path)
    return path.with_name(path.name + ".lock")


def _store(config: configs.PipelineConfig) -> str:
    return mysql.describe(config) if config.metadata_mysql_host else config.metadata_path


def _take(config: configs.PipelineConfig, run_id: str):
    """One try at the store's mutex, waiting out a task of run `run_id` that holds it for a moment (to
    renew the run's lease). Returns the mutex (None when another process keeps it) and the record found."""
    deadline = time.monotonic() + 10
    while True:
        mutex = _mutex(config)
        if mutex.try_acquire():
            return mutex, mutex.read()
        found = mutex.read()
        if not (run_id and found and found.run_id == run_id) or time.monotonic() >= deadline:
            return None, found
        time.sleep(0.1)


def _leased_to_another(found: Holder | None, run_id: str, config: configs.PipelineConfig) -> bool:
    return bool(found and found.run_id != run_id and found.lease_live(config.run_lock_lease_s))


def _acquire(config: configs.PipelineConfig, run_id: str, say: Callable[[str], None]):
    """The store's mutex, taken once no other run's lease is live; waits up to run_lock_timeout_s.

    Returns the mutex and the record found (the previous holder, when it was not released cleanly).
    """
    timeout = config.run_lock_timeout_s
    deadline, announced = time.monotonic() + timeout, False
    while True:
        mutex, found = _take(config, run_id)
        if mutex is not None:
            if not _leased_to_another(found, run_id, config):
                return mutex, found
            mutex.release()
        holder = found.describe() if found else "another process"
        if time.monotonic() >= deadline:
            raise LockBusy(
                f"another pipeline run is using the ML Metadata store {_store(config)}: {holder}; gave up "
                f"after {timeout:g}s. Wait for it to finish, or set {configs.ENV_PREFIX}RUN_LOCK_TIMEOUT_S "
                "to wait longer."
            )
        if not announced:
            say(f"Another run is using the ML Metadata store ({holder}); waiting up to {timeout:g}s.")
            announced = True
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def _keeping(action: Callable[[], None], every_s: float) -> Iterator[None]:
    """Call `action` every `every_s` seconds in a thread for the block (a failed call is tried again)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            with contextlib.suppress(Exception):
                action()

    thread = threading.Thread(target=loop, name="run-lock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def hold(config: configs.PipelineConfig, runner: str, say: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the store for one process's run (the block). Raises LockBusy naming the holder when the store
    is still busy after run_lock_timeout_s."""
    mutex, _ = _acquire(config, "", say)
    try:
        holder = Holder.me(runner)
        mutex.write(holder)
        with _keeping(lambda: mutex.keep(holder, say), KEEP_EVERY_S):
            yield
    finally:
        with contextlib.suppress(Exception):
            mutex.write(None)
        mutex.release()


def claim(config: configs.PipelineConfig, runner: str, run_id: str, say: Callable[[str], None] = print) -> bool:
    """Take or renew run `run_id`'s lease on the store (a task-per-node run). Returns True when the lease
    is new to the run: then whatever a run before it left unfinished is the run's to clean up."""
    mutex, found = _acquire(config, run_id, say)
    try:
        mutex.write(Holder.me(runner, run_id, lease=True))
    finally:
        mutex.release()
    return not (found and found.run_id == run_id)


def _renew(config: configs.PipelineConfig, runner: str, run_id: str) -> None:
    """One heartbeat of run `run_id`'s lease: quiet and quick, never waiting for the store (the next beat
    tries again); a lease another run took after this one's lapsed is left to it."""
    mutex, found = _take(config, run_id)
    if mutex is None:
        return
    try:
        if not _leased_to_another(found, run_id, config):
            mutex.write(Holder.me(runner, run_id, lease=True))
    finally:
        mutex.release()


@contextlib.contextmanager
def renewing(config: configs.PipelineConfig, runner: str, run_id: str) -> Iterator[bool]:
    """Claim run `run_id`'s lease and renew it while the block runs (one node task). Yields claim()'s
    answer."""
    fresh = claim(config, runner, run_id)
    with _keeping(lambda: _renew(config, runner, run_id), config.run_lock_lease_s / 5):
        yield fresh


def release(config: configs.PipelineConfig, run_id: str) -> None:
    """Release run `run_id`'s lease, if it still holds the store (a run holding the mutex is another)."""
    mutex, found = _take(config, run_id)
    if mutex is None:
        return
    try:
        if found and found.run_id == run_id:
            mutex.write(None)
    finally:
        mutex.release()


def busy(config: configs.PipelineConfig) -> str | None:
    """Who holds the store now, or None when a run could take it."""
    mutex, found = _take(config, "")
    if mutex is None:
        return found.describe() if found else "another process"
    mutex.release()
    return found.describe() if _leased_to_another(found, "", config) else None
