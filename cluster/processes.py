"""A cluster's processes, recorded by id in its state folder and stopped by id.

Each process starts in a session of its own, so stopping it stops what it started too (the Python workers
a TaskManager or a Spark executor starts). Flink's own stop-cluster.sh is not used: it stops what its pid
files name and has been seen to leave a TaskManager running.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

PIDS_FILE = "processes.json"
STOP_TIMEOUT_S = 20.0


@dataclasses.dataclass
class Process:
    name: str  # jobmanager, taskmanager-1, job-server, master, worker-1...
    pid: int
    log: str
    # The process's start time as psutil reports it: a pid reused by another program is not ours.
    started: float

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return process.create_time() == self.started and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False


def load(state_dir: Path) -> list[Process]:
    path = state_dir / PIDS_FILE
    if not path.exists():
        return []
    return [Process(**entry) for entry in json.loads(path.read_text())]


def _save(state_dir: Path, processes: list[Process]) -> None:
    path = state_dir / PIDS_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([dataclasses.asdict(p) for p in processes], indent=1))
    os.replace(partial, path)


def start(state_dir: Path, name: str, args: list[str], env: dict[str, str], cwd: Path | None = None) -> Process:
    """Start `args` detached, its output in <state_dir>/log/<name>.log, and record it."""
    log_dir = state_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            args, env=env, cwd=cwd or state_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = Process(name, child.pid, str(log_path), psutil.Process(child.pid).create_time())
    _save(state_dir, [p for p in load(state_dir) if p.name != name] + [process])
    return process


def group_members(process: Process) -> list[psutil.Process]:
    """The process and everything it started, while they are still around."""
    try:
        root = psutil.Process(process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop(state_dir: Path, names: list[str] | None = None, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop the recorded processes (all, or those named): SIGTERM to each one's session, SIGKILL after
    `timeout_s`. Returns the names of those that were running."""
    recorded = load(state_dir)
    if not recorded:
        return []
    chosen = [p for p in recorded if names is None or p.name in names]
    running = [p for p in chosen if p.alive()]
    members = [m for p in running for m in group_members(p)]
    for process in running:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    survivors = wait_gone(members, timeout_s)
    for member in survivors:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    left = wait_gone(survivors, 5)
    if left:
        raise RuntimeError(f"still running after SIGKILL: {', '.join(str(m.pid) for m in left)}")
    _save(state_dir, [p for p in recorded if p not in chosen])
    return [p.name for p in running]


def running_members(members: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `members` still running: not ended, and not a zombie (ended, only not yet reaped by the
    process that inherited it when its parent was stopped first)."""
    left = []
    for member in members:
        try:
            if member.is_running() and member.status() != psutil.STATUS_ZOMBIE:
                left.append(member)
        except psutil.NoSuchProcess:
            pass
    return left


def wait_gone(members: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to `timeout_s` for `members` to end; returns those still running."""
    deadline = time.monotonic() + timeout_s
    left = running_members(members)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = running_members(left)
    return left


def kill(process: Process) -> None:
    """SIGKILL one process alone, as the kernel's OOM killer or a lost machine would end it."""
    os.kill(process.pid, signal.SIGKILL)
    try:
        psutil.Process(process.pid).wait(timeout=10)
    except psutil.NoSuchProcess:
        pass


def wait_until(predicate, timeout_s: float, what: str, processes: list[Process]) -> None:
    """Poll `predicate` until true; fail early, naming the log, when a process it waits on has died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if not process.alive():
                tail = Path(process.log).read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"{process.name} exited while waiting for {what}; its log {process.log}:\n"
                                   + "\n".join(tail))
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
