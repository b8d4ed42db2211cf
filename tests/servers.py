"""Database servers the end-to-end tests start for themselves: private, on loopback, on free ports.

Each is the Debian package `make test` installs (scripts/install_os_packages.sh: `mariadb-server`,
`postgresql`), started in a temporary folder and stopped by its process id when the block ends, also
when the test fails; a test skips only when the server is not installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def binary(name: str, *extra_dirs: str) -> str | None:
    """`name` on PATH, else in sbin/bin or the given folders (Debian keeps PostgreSQL's off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin", *extra_dirs):
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until(ready, process: subprocess.Popen, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        error = ready()
        if error is None:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"{what} did not start: {error}\n{text[-3000:]}")
        time.sleep(0.5)


@dataclasses.dataclass
class MariaDB:
    port: int
    database: str
    user: str
    password_file: Path
    # How the server was started, to start it again on the same data and port (`stop`, `start`).
    command: list[str] = dataclasses.field(repr=False, default_factory=list)
    client: list[str] = dataclasses.field(repr=False, default_factory=list)
    log: Path | None = None
    process: subprocess.Popen | None = dataclasses.field(repr=False, default=None)

    def url(self) -> str:
        """The ML Metadata URL (PIPELINE_METADATA_MYSQL_URL): no password, which comes from password_file."""
        return f"mysql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        """Stop the server by its process id (SIGTERM: a clean shutdown that ends every connection)."""
        _stop(self.process)

    def start(self) -> None:
        """Start the server again on its data and port, and wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            return
        self.process = _start(self.command)
        _wait_until(lambda: self.sql("SELECT 1"), self.process, "MariaDB", self.log)

    def sql(self, statements: str) -> str | None:
        """Run `statements` as root over the server's socket: None when they succeeded, else the error."""
        result = subprocess.run([*self.client, "-e", statements], capture_output=True, text=True, check=False)
        return None if result.returncode == 0 else result.stderr


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def mariadb(root: Path, password: str, database: str = "mlmd", user: str = "taxi") -> Iterator[MariaDB]:
    """A MariaDB server in `root` with `database`, reachable by `user` over TCP with `password`."""
    server, install, client = binary("mariadbd"), binary("mariadb-install-db"), binary("mariadb")
    if not (server and install and client):
        pytest.skip("MariaDB is not installed (scripts/install_os_packages.sh installs mariadb-server)")
    user_flag = ["--user=root"] if os.getuid() == 0 else []
    subprocess.run(
        [install, "--no-defaults", *user_flag, f"--datadir={root / 'data'}",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )
    port, sock, log = free_port(), root / "mysqld.sock", root / "error.log"
    command = [server, "--no-defaults", *user_flag, f"--datadir={root / 'data'}", f"--socket={sock}",
               f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={root / 'mysqld.pid'}",
               f"--log-error={log}", "--skip-name-resolve", "--innodb-buffer-pool-size=32M"]
    password_file = root / "password"
    found = MariaDB(port=port, database=database, user=user, password_file=password_file, command=command,
                    client=[client, "--no-defaults", f"--socket={sock}", "-uroot"], log=log,
                    process=_start(command))
    try:
        _wait_until(lambda: found.sql(
            f"CREATE DATABASE {database}; "
            f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            f"GRANT ALL ON {database}.* TO '{user}'@'127.0.0.1';"
        ), found.process, "MariaDB", log)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        yield found
    finally:
        found.stop()


@dataclasses.dataclass
class PostgreSQL:
    port: int
    database: str
    user: str
    password: str

    def sqlalchemy_url(self) -> str:
        """What Airflow's AIRFLOW__DATABASE__SQL_ALCHEMY_CONN takes (the password is URL-safe here)."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"


def _postgres_bin_dir() -> str | None:
    # Debian's `postgresql` package puts the server's programs in /usr/lib/postgresql/<major>/bin.
    found = binary("initdb")
    if found:
        return str(Path(found).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return str(Path(versions[-1]).parent) if versions else None


@contextlib.contextmanager
def postgresql(password: str, database: str = "airflow", user: str = "airflow") -> Iterator[PostgreSQL]:
    """A PostgreSQL server with `database` owned by `user`, who logs in over TCP with `password`.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` account the Debian
    package creates (else `nobody`), in a folder under the system temp directory (pytest's are root-only).
    """
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (scripts/install_os_packages.sh installs postgresql)")
    owner = {}
    if os.getuid() == 0:
        account = next((a for a in ("postgres", "nobody") if _has_account(a)), None)
        if account is None:
            pytest.skip("running as root with neither a postgres nor a nobody account to run PostgreSQL as")
        entry = pwd.getpwnam(account)
        owner = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="pytest-postgresql-"))
    process = None
    try:
        if owner:
            os.chown(root, owner["user"], owner["group"])
        data, log = root / "data", root / "server.log"
        password_file = root / "superuser-password"
        password_file.write_text(password + "\n")
        if owner:
            os.chown(password_file, owner["user"], owner["group"])
        subprocess.run(
            [f"{bin_dir}/initdb", "-D", str(data), "-U", "postgres", f"--pwfile={password_file}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120, **owner,
        )
        password_file.unlink()
        port = free_port()
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [f"{bin_dir}/postgres", "-D", str(data), "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
                 "-c", f"unix_socket_directories={root}", "-c", "fsync=off"],
                stdout=log_file, stderr=subprocess.STDOUT, **owner,
            )
        # Two commands: CREATE DATABASE cannot run inside the transaction one -c string would be.
        sql = ["-c", f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", "-c", f"CREATE DATABASE {database} OWNER {user}"]

        def ready():
            result = subprocess.run(
                [f"{bin_dir}/psql", "-h", str(root), "-p", str(port), "-U", "postgres", "-d", "postgres",
                 "-v", "ON_ERROR_STOP=1", *sql],
                capture_output=True, text=True, check=False, **owner,
            )
            return None if result.returncode == 0 else result.stderr

        _wait_until(ready, process, "PostgreSQL", log)
        yield PostgreSQL(port=port, database=database, user=user, password=password)
    finally:
        if process is not None:
            # SIGINT is PostgreSQL's fast shutdown: sessions are ended, not waited for.
            _stop(process, signal.SIGINT)
        shutil.rmtree(root, ignore_errors=True)


def _has_account(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
