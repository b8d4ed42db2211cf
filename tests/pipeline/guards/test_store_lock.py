"""The run lock: exclusive while held, released by the OS when its holder is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from pipeline import configs
from pipeline.guards import store_lock

HOLD_FOREVER = """
import sys, time
from pipeline.guards import store_lock
with store_lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _start_holder(path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOREVER, str(path)],
        cwd=configs.PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_busy_lock_names_its_holder_and_is_freed_when_the_holder_is_killed(tmp_path):
    path = store_lock.lock_path_for(tmp_path / "metadata.db")
    holder = _start_holder(path)
    try:
        with pytest.raises(store_lock.LockBusy, match=f"pid {holder.pid}"):
            with store_lock.hold(path):
                pass
        started = time.monotonic()
        with pytest.raises(store_lock.LockBusy):
            with store_lock.hold(path, timeout_s=1.0, poll_s=0.1):
                pass
        assert time.monotonic() - started >= 1.0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the dead holder's lock; its stale details in the file do not matter.
    with store_lock.hold(path):
        assert path.exists()


def test_lock_can_be_taken_again_after_release(tmp_path):
    path = tmp_path / "run.lock"
    with store_lock.hold(path):
        pass
    with store_lock.hold(path, timeout_s=None):
        pass
