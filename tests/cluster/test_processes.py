"""cluster/processes.py: a cluster's processes stopped by id, with everything they started."""

import sys
import time

import psutil

from cluster import processes

# A parent whose child ignores SIGTERM (as a busy JVM or a Beam worker may), then waits on it.
STUBBORN = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"],
    stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
child.wait()
"""


def _children(pid: int, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = psutil.Process(pid).children(recursive=True)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"process {pid} did not start {count} children")


def test_stop_ends_a_process_and_the_child_that_ignores_sigterm(tmp_path):
    parent = processes.start(tmp_path, "stubborn", [sys.executable, "-c", STUBBORN], env={})
    members = [psutil.Process(parent.pid), *_children(parent.pid, 1)]
    # The child has set its handler once the parent logs the child's pid (it waits for the child's "ready").
    log = tmp_path / "log" / "stubborn.log"
    deadline = time.monotonic() + 30
    while str(members[1].pid) not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert str(members[1].pid) in log.read_text()

    started = time.monotonic()
    assert processes.stop(tmp_path, timeout_s=2) == ["stubborn"]
    assert time.monotonic() - started >= 2  # the child outlived SIGTERM; SIGKILL ended it
    assert processes.running_members(members) == []
    assert processes.load(tmp_path) == []
    assert processes.stop(tmp_path) == []


def test_a_zombie_left_by_a_stopped_parent_counts_as_ended(tmp_path):
    # A parent that never waits on its child: once the child is killed it stays a zombie until reaped.
    parent = processes.start(tmp_path, "careless", [sys.executable, "-c", (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "time.sleep(600)")], env={})
    child = _children(parent.pid, 1)[0]
    child.kill()
    deadline = time.monotonic() + 10
    while child.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child.status() == psutil.STATUS_ZOMBIE
    assert processes.running_members([child]) == []

    started = time.monotonic()
    assert processes.stop(tmp_path, timeout_s=20) == ["careless"]
    assert time.monotonic() - started < 10  # the zombie is not waited on until the SIGKILL timeout
