"""A full disk: the pre-flight warning when the outputs' filesystem has clearly too little free space for
the input, and the one line a run stops with when a write finds no space left.

How much a run writes was measured on the default task (docs/failures-and-recovery.md): the examples
are Parquet, about a fifth of the CSV's bytes; the rest (statistics, schemas, the transform graph, the
model three times over: the Trainer's, the Pusher's copy and the serving version, the store, the log)
hardly grows with the input, about 5 MB. The rule, `space_needed`, is twice the input's bytes plus 16 MB: room for
examples that compress worse and for a task with a larger model. It is an estimate for a run from nothing;
a run that takes components from the cache writes less.

A full disk surfaces in many forms: Python's OSError (errno 28), TensorFlow's ResourceExhaustedError whose
message ends "No space left on device", SQLite's "database or disk is full" through ML Metadata, any of
them inside the message of the error a Beam pipeline raises. `out_of_space` recognizes them all and says
what happened in one line; none of them says how many bytes the failed write wanted, so the line gives the
rule's estimate and the space free now.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable

from pipeline import configs, inputs, logs

NEEDED_PER_INPUT_BYTE = 2
NEEDED_FIXED_BYTES = 16 * 2**20
# How a full disk reads in messages: the C library's ENOSPC text (Python, TensorFlow, Arrow, Beam's
# wrapped worker errors) and SQLite's SQLITE_FULL (ML Metadata's store).
_FULL_TEXTS = (os.strerror(errno.ENOSPC), "database or disk is full")
# The path a failed write names in a message: TensorFlow's "<path>; No space left on device", Python's
# "[Errno 28] No space left on device: '<path>'".
_PATH_IN_TEXT = re.compile(r"(/[^\s;:'\"\]]+)")


class OutOfSpace(logs.ExplainedFailure):
    """A write of the run failed because its filesystem is full; the message says where and how much."""


def space_needed(input_bytes: int) -> int:
    """Free bytes a run on `input_bytes` of input needs where it writes: the rule in the module docstring."""
    return NEEDED_PER_INPUT_BYTE * input_bytes + NEEDED_FIXED_BYTES


def input_bytes(run_input: inputs.RunInput) -> int:
    return sum(os.path.getsize(path) for path in run_input.files)


def _existing(path: str) -> str:
    """The path itself, or its nearest ancestor that exists (a run creates its folders as it goes)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def mount_point(path: str) -> str:
    """The folder the filesystem holding `path` is mounted on."""
    path = os.path.realpath(_existing(path))
    device = os.stat(path).st_dev
    while os.path.dirname(path) != path and os.stat(os.path.dirname(path)).st_dev == device:
        path = os.path.dirname(path)
    return path


def free_bytes(path: str) -> int:
    """Bytes an unprivileged process may still write on the filesystem holding `path`."""
    stat = os.statvfs(_existing(path))
    return stat.f_bavail * stat.f_frsize


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _rule(size: int) -> str:
    return f"{NEEDED_PER_INPUT_BYTE} x the input's {_mb(size)} + {NEEDED_FIXED_BYTES // 2**20} MB"


def warn_if_short(
    config: configs.PipelineConfig, run_input: inputs.RunInput, say: Callable[[str], None] = print
) -> str | None:
    """Say so, before any component starts, when the pipeline root's filesystem has less free space than
    space_needed for this input; the run goes on (the estimate is rough, and a cached run writes less).
    Returns the warning, or None. Roots that are not local paths (gs://) are not checked."""
    if "://" in config.pipeline_root:
        return None
    size = input_bytes(run_input)
    needed, free = space_needed(size), free_bytes(config.pipeline_root)
    if free >= needed:
        return None
    warning = (
        f"Warning: {mount_point(config.pipeline_root)} has {_mb(free)} free, less than the {_mb(needed)} a run "
        f"on this input may write there ({_rule(size)}); a component that finds the disk full stops the run"
    )
    say(f"{time.strftime('%H:%M:%S')} {warning}")
    return warning


def _failed_path(error: BaseException) -> tuple[bool, str | None]:
    """Whether the error (or one in its chain) is a full disk, and the path the failed write named, if any."""
    full, path = False, None
    for link in logs.error_chain(error):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            full, path = True, path or link.filename
            continue
        text = str(link)
        for marker in _FULL_TEXTS:
            if marker in text:
                full = True
                before = _PATH_IN_TEXT.findall(text[: text.index(marker)])
                after = _PATH_IN_TEXT.findall(text[text.index(marker):].split("\n", 1)[0])
                path = path or (before[-1] if before else after[0] if after else None)
    return full, path


def out_of_space(
    error: BaseException, config: configs.PipelineConfig, run_input: inputs.RunInput | None,
    node_ids: list[str] | tuple[str, ...] = (),
) -> OutOfSpace | None:
    """OutOfSpace saying in one line which write found its disk full (where the error names no file, the
    output folder of the node that was running, `node_ids`), the space free there now and what a run on
    this input (`run_input`, else the configuration's) needs (space_needed); None when the error is
    something else."""
    full, path = _failed_path(error)
    if not full:
        return None
    path = path or os.path.join(config.pipeline_root, *node_ids[:1])
    if run_input is None:  # A node task's: resolved here, for a full disk only.
        try:
            run_input = inputs.resolve_for(config)
        except configs.ConfigError:  # The input is gone too: the line gives no estimate.
            run_input = None
    size = input_bytes(run_input) if run_input is not None else None
    needed = (
        f"a run on this input needs about {_mb(space_needed(size))} there ({_rule(size)})"
        if size is not None else "a run needs room for its outputs there"
    )
    return OutOfSpace(
        f"out of disk space: writing {path} failed; {mount_point(path)} has {_mb(free_bytes(path))} free and "
        f"{needed}. Free space there and run again: what completed comes from the cache"
    )
