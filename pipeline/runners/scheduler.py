"""Runs the Beam pipeline on a schedule, whenever a new data span has arrived.

    python -m pipeline.runners.scheduler                  # schedule_cron, else every schedule_interval_s
    python -m pipeline.runners.scheduler --cron '0 6 * * *'
    python -m pipeline.runners.scheduler --interval-s 600 --force

Each trigger asks whether there is new data (the input a run would read, `inputs.resolve`, has no
recorded run in ML Metadata: in the span layout the newest span and version, in the plain layout input
files whose hashes differ from the last recorded run's) and, if so, runs `pipeline/runners/beam_runner.py` in a
child process, which checks the input before it starts anything. A run that fails says why in its
trigger line (`error`); an input its pre-flight check refused (`refused`) is not run again until its
files change (`refused_before`). Runs never overlap: a trigger that fires while this
scheduler's run is in flight, or while another process holds the store's lock, is skipped. Every
trigger is logged with its outcome and duration, to stdout and as a JSON line in
<output_root>/scheduler/<pipeline_name>/triggers.jsonl; a failed run does not stop later triggers.
SIGTERM or SIGINT stops triggering, lets the run in flight finish for up to --stop-timeout-s, then
terminates it: MLMD (SQLite, transactional) keeps the finished components, the unfinished run leaves
no run record, so its span counts as new again at the next start.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from pipeline import configs, inputs
from pipeline.guards import store_lock
from pipeline.metadata import run_record
from pipeline.metadata.store import StoreMissing, open_store

BEAM_RUNNER = configs.PROJECT_ROOT / "pipeline" / "runners" / "beam_runner.py"
# Seconds a terminated run gets to exit before it is killed.
_KILL_AFTER_S = 30.0


def _identity(run_input: inputs.RunInput | None) -> tuple | None:
    return None if run_input is None else (run_input.span, run_input.version, run_input.fingerprint)


def recorded_runs(config: configs.PipelineConfig) -> list[dict]:
    """The run records of every finished run of the pipeline in its store, oldest first."""
    try:
        store = open_store(config, readonly=True)
    except StoreMissing:
        return []
    records = []
    for context in store.get_contexts_by_type("pipeline_run"):
        record = run_record.read_record(context)
        if isinstance(record.get("config"), dict) and record["config"].get("pipeline_name") == config.pipeline_name:
            records.append({**record, "_context_id": context.id})
    # Oldest first, by MLMD's ids: they grow with each write, whatever the clock does.
    return sorted(records, key=lambda r: r["_context_id"])


def new_data(config: configs.PipelineConfig) -> tuple[bool, inputs.RunInput | None]:
    """Whether the input a run would read now has no recorded run yet, and that input (None: no input).

    In the span layout that is the newest span and version on disk; in the plain layout, the input
    files, new when their hashes differ from the last recorded run's.
    """
    try:
        run_input = inputs.resolve_for(config)
    except configs.ConfigError:
        return False, None
    runs = recorded_runs(config)
    if run_input.in_spans:
        version = -1 if run_input.version is None else run_input.version
        done = {(span, r.get("input_version", -1)) for r in runs for span in r.get("spans") or []}
        return (run_input.span, version) not in done, run_input
    return not runs or runs[-1].get("input_files") != run_record.input_files(run_input), run_input


def error_message(run_log: Path, limit: int = 2000) -> str | None:
    """What a failed run said last: from its `error: ` line to the end of its output."""
    text = run_log.read_text(errors="replace")
    start = text.rfind("\nerror: ")
    if start < 0 and not text.startswith("error: "):
        return None
    return text[start + 1:].strip()[:limit]


class TriggerLog:
    """One JSON line per trigger, appended and flushed at once, so a crash loses no earlier line."""

    def __init__(self, config: configs.PipelineConfig) -> None:
        self.folder = Path(config.output_root) / "scheduler" / config.pipeline_name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "triggers.jsonl"

    def write(self, **entry) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        details = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("time", "event"))
        print(f"{time.strftime('%H:%M:%S')} {entry['event']} {details}", flush=True)


class SpanScheduler:
    """Starts a Beam run per trigger when there is new data, one at a time."""

    def __init__(self, config: configs.PipelineConfig, force: bool = False, stop_timeout_s: float = 0.0):
        self.config = config
        self.force = force
        self.stop_timeout_s = stop_timeout_s
        self.log = TriggerLog(config)
        self._in_flight = threading.Lock()
        self._stopping = threading.Event()
        self._child: subprocess.Popen | None = None
        self._count = 0
        self._count_lock = threading.Lock()
        # The input (span, version, fingerprint) whose run its pre-flight check refused: not run again
        # until it changes, since the same files would be refused the same way.
        self._refused: tuple | None = None

    def trigger(self) -> None:
        with self._count_lock:
            self._count += 1
            number = self._count
        started = time.monotonic()
        if not self._in_flight.acquire(blocking=False):
            self.log.write(event="trigger", trigger=number, outcome="skipped_in_flight", duration_s=0.0)
            return
        try:
            if self._stopping.is_set():
                return
            is_new, run_input = new_data(self.config)
            span = run_input.span if run_input is not None and run_input.in_spans else None
            if not (is_new or self.force):
                self.log.write(event="trigger", trigger=number, outcome="no_new_data", span=span,
                               duration_s=round(time.monotonic() - started, 3))
                return
            if _identity(run_input) == self._refused and not self.force:
                self.log.write(event="trigger", trigger=number, outcome="refused_before", span=span,
                               duration_s=round(time.monotonic() - started, 3))
                return
            # Only a probe: the run takes the lock itself (and exits EXIT_BUSY if it lost a race).
            holder = store_lock.busy(self.config)
            if holder is not None:
                self.log.write(event="trigger", trigger=number, outcome="skipped_busy", span=span,
                               holder=holder, duration_s=round(time.monotonic() - started, 3))
                return
            self._run(number, run_input, span, started)
        except Exception as error:  # A trigger's failure is logged; later triggers still fire.
            self.log.write(event="trigger", trigger=number, outcome="error", error=repr(error),
                           duration_s=round(time.monotonic() - started, 3))
        finally:
            self._in_flight.release()

    def _run(self, number: int, run_input: inputs.RunInput | None, span: int | None, started: float) -> None:
        run_log = self.log.folder / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{number}.log"
        with open(run_log, "w") as out:
            # Its own session: a terminal's Ctrl-C reaches only the scheduler, which decides. A run that
            # loses the race for the store gives up at once (EXIT_BUSY) rather than waiting its turn.
            self._child = subprocess.Popen(
                [sys.executable, str(BEAM_RUNNER)], stdout=out, stderr=subprocess.STDOUT,
                cwd=configs.PROJECT_ROOT, start_new_session=True,
                env={**os.environ, f"{configs.ENV_PREFIX}RUN_LOCK_TIMEOUT_S": "0"},
            )
            self.log.write(event="run_started", trigger=number, span=span, pid=self._child.pid,
                           input=run_input.describe() if run_input else None, log=str(run_log))
            code = self._child.wait()
        self._child = None
        details = {}
        if self._stopping.is_set() and code < 0:
            outcome = "terminated"
        else:
            outcome = {0: "ran", store_lock.EXIT_BUSY: "skipped_busy"}.get(code, "failed")
        if outcome == "failed":
            details["error"] = error_message(run_log)
            if code == configs.EXIT_CONFIG_ERROR:  # Refused before it started: input or settings.
                outcome = "refused"
                self._refused = _identity(run_input)
        self.log.write(event="trigger", trigger=number, outcome=outcome, span=span, exit_code=code,
                       duration_s=round(time.monotonic() - started, 3), log=str(run_log), **details)

    def stop(self) -> None:
        """Stop triggering; let the run in flight finish for up to stop_timeout_s, then end it."""
        self._stopping.set()
        child = self._child
        if child is None:
            return
        try:
            child.wait(timeout=self.stop_timeout_s)
            return
        except subprocess.TimeoutExpired:
            pass
        # The whole group: Beam's multi_processing workers go with the runner.
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=_KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def make_trigger(config: configs.PipelineConfig, cron: str | None, interval_s: float | None):
    """A crontab line wins over an interval; flags win over configuration."""
    cron = cron if cron is not None else (None if interval_s else config.schedule_cron)
    if cron:
        try:
            return CronTrigger.from_crontab(cron)
        except ValueError as error:
            raise configs.ConfigError(f"schedule {cron!r} is not a crontab line: {error}") from None
    seconds = interval_s if interval_s is not None else config.schedule_interval_s
    if seconds <= 0:
        raise configs.ConfigError(f"schedule interval must be positive, got {seconds}")
    return IntervalTrigger(seconds=seconds)


def serve(config: configs.PipelineConfig, trigger, force: bool, stop_timeout_s: float) -> int:
    """Trigger until SIGTERM or SIGINT; the first trigger fires at once."""
    spans = SpanScheduler(config, force=force, stop_timeout_s=stop_timeout_s)
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    # Two threads: a trigger that fires while a run is in flight still runs, to be logged as skipped.
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(2)})
    scheduler.add_job(spans.trigger, trigger, id="pipeline", max_instances=2, coalesce=True,
                      misfire_grace_time=None, next_run_time=datetime.datetime.now().astimezone())
    scheduler.start()
    spans.log.write(event="scheduler_started", trigger=str(trigger), pid=os.getpid())
    while not stop_requested.wait(timeout=1.0):
        pass
    scheduler.pause()
    spans.log.write(event="stopping", run_in_flight=spans._child is not None)
    spans.stop()
    scheduler.shutdown(wait=True)
    spans.log.write(event="scheduler_stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cron", help="crontab line, e.g. '0 6 * * *' (default: schedule_cron)")
    parser.add_argument("--interval-s", type=float, help="seconds between triggers (default: schedule_interval_s)")
    parser.add_argument("--force", action="store_true", help="run at every trigger, new data or not")
    parser.add_argument("--stop-timeout-s", type=float, default=0.0,
                        help="on SIGTERM/SIGINT, how long a run in flight may finish before it is terminated")
    args = parser.parse_args(argv)
    try:
        config = configs.load_config()
        trigger = make_trigger(config, args.cron, args.interval_s)
    except configs.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return configs.EXIT_CONFIG_ERROR
    return serve(config, trigger, args.force, args.stop_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
