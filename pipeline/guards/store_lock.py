"""One pipeline run at a time per ML Metadata store, with a lock the OS releases when its holder dies.

SQLite MLMD is not built for two orchestrators writing at once ("database is locked", interleaved
executions), and a scheduler must never start a run while one is in flight. A marker file would outlive
a crashed holder; an `fcntl.flock` on an open file does not: the kernel drops it with the process. The
file also carries the holder's pid, host and start time, for the message a waiting run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


# Exit status of a command refused because another run holds the store (sysexits' EX_TEMPFAIL).
EXIT_BUSY = 75


class LockBusy(RuntimeError):
    """Another live process holds the lock."""


def lock_path_for(metadata_path: str | os.PathLike) -> Path:
    """The lock file beside a SQLite store (or any path standing for a store)."""
    path = Path(metadata_path)
    return path.with_name(path.name + ".lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


@contextlib.contextmanager
def hold(path: str | os.PathLike, timeout_s: float | None = 0.0, poll_s: float = 0.5) -> Iterator[Path]:
    """Hold the lock at `path` for the block.

    timeout_s: 0 fails at once when the lock is busy, None waits for as long as it takes, a number waits
    up to that many seconds. Raises LockBusy naming the holder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # "a+" never truncates the holder's details before we own the lock.
    with open(path, "a+") as handle:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockBusy(f"{path} is held by {_holder(path)}") from None
                time.sleep(poll_s)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }))
            handle.flush()
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
