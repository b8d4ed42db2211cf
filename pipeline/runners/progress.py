"""What a run prints: a line naming its input, one line per component as it starts and finishes, with its
duration, instead of TFX's INFO flood, and the closing summary read back from ML Metadata.

TFX's in-process orchestrators log "Component X is running." / "... is finished." through absl; this
handler turns exactly those records into progress lines, so every runner that uses them reports the
same way without wrapping TFX's run loop. A component that runs long (StatisticsGen and Transform take
minutes on millions of rows) says it is still running every progress_interval_s: measured by the clock
outside it, so it costs the component nothing. (Rows processed so far would say more, but Beam's
in-process runner reports its counters only when a component's Beam pipeline has finished.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import threading
import time
from typing import Iterator, TextIO

import absl.logging

from pipeline import inputs, logs
from pipeline.metadata import artifact_files, run_summary

# The local orchestrator's messages, then the Beam orchestrator's.
_RUNNING = ("Component %s is running.", "node %s is running.")
_FINISHED = ("Component %s is finished.", "node %s is finished.")
# TFX's launcher (tfx/orchestration/portable/launcher.py), in the thread that runs the node, when it takes
# the node's outputs from the cache instead of running its executor.
_CACHED = "A cached execution %d is used."


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class ComponentProgress(logging.Handler):
    """Prints component start/finish lines and remembers what ran; a component still running after
    `interval_s` says so, and again every `interval_s` (0: never)."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 0.0) -> None:
        super().__init__(level=logging.INFO)
        self._stream = stream
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        # Nodes whose outputs came from the cache; which node each thread runs (a Beam runner's nodes may
        # run side by side, each in its thread, and the launcher's cache line does not name its node).
        self.cached: set[str] = set()
        self._running_in: dict[int, str] = {}
        self.interval_s = interval_s
        self._print_lock = threading.Lock()
        self._stopped = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _print(self, text: str) -> None:
        stream = self._stream or sys.stdout
        with self._print_lock:
            stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _CACHED:
            if record.thread in self._running_in:
                self.cached.add(self._running_in[record.thread])
            return
        if record.msg not in (*_RUNNING, *_FINISHED) or not record.args:
            return
        node_id = str(record.args[0])
        if record.msg in _RUNNING:
            self.started[node_id] = time.monotonic()
            self._running_in[record.thread] = node_id
            self._print(f"{node_id:<32} started")
        else:
            seconds = time.monotonic() - self.started.get(node_id, time.monotonic())
            self.finished[node_id] = seconds
            self._running_in.pop(record.thread, None)
            # As the closing summary says it: a cached node ran nothing, however long the cache lookup took.
            self._print(f"{node_id:<32} " + ("cached" if node_id in self.cached else f"finished in {seconds:.1f}s"))

    def unfinished(self) -> list[str]:
        return [node for node in list(self.started) if node not in self.finished]

    def report_failure(self) -> None:
        for node_id in self.unfinished():
            seconds = time.monotonic() - self.started[node_id]
            self._print(f"{node_id:<32} FAILED after {seconds:.1f}s")

    def start_heartbeat(self) -> None:
        """Say which components are still running every interval_s, from a thread that sleeps between
        (a wake-up a second: nothing the components would notice)."""
        if self.interval_s <= 0 or self._heartbeat is not None:
            return
        self._heartbeat = threading.Thread(target=self._beat, name="component-heartbeat", daemon=True)
        self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        self._stopped.set()
        if self._heartbeat is not None:
            self._heartbeat.join()

    def _beat(self) -> None:
        said: dict[str, int] = {}  # Node id -> how many intervals it has been reported running.
        while not self._stopped.wait(min(1.0, self.interval_s)):
            now = time.monotonic()
            for node_id in self.unfinished():
                intervals = int((now - self.started[node_id]) / self.interval_s)
                if intervals > said.get(node_id, 0) and node_id not in self.finished:
                    said[node_id] = intervals
                    self._print(f"{node_id:<32} running for {_duration(now - self.started[node_id])}")


def report_input(run_input: inputs.RunInput, rows: int | None = None, stream: TextIO | None = None) -> None:
    """The line before the components' lines: which files, span and version the run reads."""
    count = len(run_input.files)
    size = f", {rows:,} rows" if rows is not None else ""
    (stream or sys.stdout).write(
        f"{time.strftime('%H:%M:%S')} Input: {run_input.data_root} ({run_input.describe()}; "
        f"{count} file{'s' if count != 1 else ''}{size})\n"
    )
    if run_input.skipped_folder:
        (stream or sys.stdout).write(
            f"{time.strftime('%H:%M:%S')} Skipped {os.path.join(run_input.data_root, run_input.skipped_folder)}: "
            f"it holds no file matching {os.path.basename(run_input.pattern)!r}, so span {run_input.span} "
            "is the newest\n"
        )
    (stream or sys.stdout).flush()


@contextlib.contextmanager
def component_progress(stream: TextIO | None = None, interval_s: float = 0.0) -> Iterator[ComponentProgress]:
    """Report component progress while the block runs a pipeline, with a line every interval_s for a
    component that is still running (the runner's progress_interval_s setting)."""
    absl_logger = logging.getLogger("absl")
    handler = ComponentProgress(stream, interval_s)
    previous_verbosity = absl.logging.get_verbosity()
    absl_logger.addHandler(handler)
    # The absl logger must pass INFO records on to reach this handler (the root handlers keep
    # filtering them by their own level). Set through absl's verbosity, not the logger's level:
    # TensorFlow's SavedModel export saves and restores that verbosity, which would undo the latter.
    absl.logging.set_verbosity(absl.logging.INFO)
    handler.start_heartbeat()
    try:
        yield handler
    except BaseException:
        handler.report_failure()
        raise
    finally:
        handler.stop_heartbeat()
        absl_logger.removeHandler(handler)
        absl.logging.set_verbosity(previous_verbosity)


def threshold_line(check: artifact_files.ThresholdCheck) -> str:
    """One threshold on one slice in a line: `auc (color=red) 0.6312, at least 0.6: pass`."""
    where = f"{check.metric} ({check.slice})"
    if check.value is None:
        return f"{where}: {check.bound}: {check.result} (the slice has no rows in the eval split)"
    if check.kind == "value":
        return f"{where} {check.value:.4f}, {check.bound}: {check.result}"
    if check.baseline is None:
        return f"{where}: {check.bound}: not applied (no baseline: the first model judged)"
    return (f"{where} {check.value:.4f} against the baseline's {check.baseline:.4f}, change {check.change:+.4f}, "
            f"{check.bound}: {check.result}")


def format_summary(
    summary: run_summary.RunSummary, log_file: str | os.PathLike | None = None, report_file: str | None = None
) -> str:
    """The closing block a person reads after a run; it ends with where the run's full log is and the
    command that writes its HTML report, so that neither has to be looked for."""
    lines = [f"Run {summary.run_id} of pipeline {summary.pipeline_name}:"]
    for run in summary.components:
        lines.append(f"  {run.node_id:<32} {run.state:<9} {run.seconds:7.1f}s")
    rows = ", ".join(f"{split} {count:,}" for split, count in summary.rows_per_split.items())
    lines.append(f"Rows read: {rows or 'unknown'}")
    total = sum(len(found) for found in summary.anomalies.values())
    lines.append(f"Anomalies against the curated schema: {total}")
    for split, found in summary.anomalies.items():
        lines.extend(f"  [{split}] {line}" for line in found)
    if summary.eval_metrics:
        shown = ", ".join(f"{name} {logs.format_number(value)}" for name, value in sorted(summary.eval_metrics.items()))
        lines.append(f"Eval metrics (overall): {shown}")
    if summary.blessing_checks:
        lines.append("Blessing thresholds (TFMA's verdict on each):")
        lines.extend(f"  {threshold_line(check)}" for check in summary.blessing_checks)
    lines.append(
        "Blessed: " + {True: "yes", False: "no", None: "not evaluated"}[summary.blessed]
    )
    states = {c.node_id: c for c in summary.components}
    if "Evaluator" in states and states["Evaluator"].state == "cached" and "Trainer" in states:
        # The Trainer's model came from the cache and was judged before (pipeline/components/baseline_model.py).
        model = states["Trainer"].output("model")
        lines.append(f"Not judged again: an earlier run evaluated model {model.id if model else '?'} against the "
                     "same baseline, and its verdict stands")
    if summary.blessing_reason:
        lines.append(f"Not blessed because: {summary.blessing_reason}")
    pusher_cached = any(c.node_id == "Pusher" and c.state == "cached" for c in summary.components)
    if summary.already_serving:
        lines.append(f"Pushed: no, the blessed model is already serving: {summary.already_serving}")
    elif pusher_cached and summary.pushed_to:
        # Nothing the Pusher reads changed: its output is the earlier push, which this run did not repeat.
        lines.append(f"Pushed: no, nothing changed since an earlier run pushed this model as {summary.pushed_to}")
    else:
        lines.append(f"Pushed to: {summary.pushed_to}" if summary.pushed_to else "Pushed: no")
    if log_file is not None:
        lines.append(f"Log: {log_file}")
    if report_file is not None:
        lines.append(f"Report: pipeline report {shlex.quote(summary.run_id)} -o {shlex.quote(report_file)}")
    return "\n".join(lines)
