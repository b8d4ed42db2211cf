"""A Beam worker process that dies in the middle of a component's work, said in one line.

Under the multi_processing profile each component's Beam pipeline runs in worker processes; when the
kernel's out-of-memory killer ends one mid-bundle, the component fails (pipeline/upstream/lost_workers.py
sees to it that it does not wait forever) and Beam's threads that watch the workers print a traceback each. A run that catches it says
instead which component lost a worker, how the worker ended, and the setting that changes the memory the
workers need; the tracebacks go to the log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import traceback
from typing import Iterator

from pipeline import configs, inputs, logs
from pipeline.beam import profiles

# How Beam's runner process learns that a worker died: the thread that started the worker's shell reports
# the shell's exit status (the component's error, pipeline/upstream/lost_workers.py), and the data plane's
# stream breaks if it was reading the worker's output.
_LOST = "Channel closed prematurely"
_EXITED = re.compile(r"Worker subprocess exited with return code (-?\d+)")
# Beam starts each worker through a shell, which exits 128 + N when its child dies of signal N.
_KILLED_STATUSES = {128 + signal.SIGKILL, -signal.SIGKILL}


class WorkerLost(logs.ExplainedFailure):
    """A component lost a Beam worker process; the message names the component and what to change."""


@contextlib.contextmanager
def watching() -> Iterator[list[int]]:
    """During the block, the uncaught errors of Beam's worker-watching threads go to the log file alone,
    and the exit statuses of the workers that died are collected in the list given."""
    exits: list[int] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        if not any(f"{os.sep}apache_beam{os.sep}runners{os.sep}" in frame.filename for frame in frames):
            previous(args)
            return
        match = _EXITED.search(str(args.exc_value))
        if match:
            exits.append(int(match.group(1)))
        logs.to_file_only(
            logging.getLogger(__name__), "Beam's thread %s stopped",
            getattr(args.thread, "name", "?"), exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    threading.excepthook = hook
    try:
        yield exits
    finally:
        threading.excepthook = previous


def explain(
    error: BaseException, config: configs.PipelineConfig, node_ids: list[str], exits: list[int],
    run_input: inputs.RunInput | None = None,
) -> WorkerLost | None:
    """WorkerLost for a component error that is a lost worker (None for any other error): the component,
    the worker's end, and what to change."""
    messages = [str(link) for link in logs.error_chain(error)]
    if not any(_LOST in message or _EXITED.search(message) for message in messages):
        return None
    component = " and ".join(node_ids) or "A component"
    died = [int(m.group(1)) for m in map(_EXITED.search, messages) if m] + [status for status in exits if status]
    if any(status in _KILLED_STATUSES for status in died):
        how = "killed with SIGKILL, as the kernel's out-of-memory killer does; dmesg shows whether it did"
    elif died:
        how = f"exit status {died[-1]}"
    else:
        how = "its connection closed"
    return WorkerLost(f"{component} lost a Beam worker process mid-bundle ({how}). {_remedy(config, run_input)}")


def _remedy(config: configs.PipelineConfig, run_input: inputs.RunInput | None) -> str:
    """The settings that change the memory the workers need, for the run's profile."""
    retry = f"{configs.ENV_PREFIX}RETRIES=1 runs the failed component again, the finished ones from the cache"
    if profiles.resolved_beam_profile(config, run_input) == "multi_processing":
        workers = config.beam_direct_num_workers or os.cpu_count() or 1
        return (
            f"Each of its {workers} worker processes holds a share of the work in memory: run fewer, "
            f"{configs.ENV_PREFIX}BEAM_DIRECT_NUM_WORKERS={max(1, workers // 2)} (now {workers}), or all in "
            f"one process, {configs.ENV_PREFIX}BEAM_PROFILE=in_memory; {retry}."
        )
    return (
        f"Give the workers of profile {config.beam_profile} more memory (their machines' or the cluster's "
        f"settings, docs/distributed-engines.md); {retry}."
    )
