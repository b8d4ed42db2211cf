"""The span scheduler as a real long-running process: APScheduler triggers, real Beam runs, real signals.

One scheduler on a 2-second interval sees, in order: no data (runs nothing), span 1 (one run, later
triggers skipped while it is in flight), no new span (runs nothing), span 2 held back by another
process's lock (skipped), then released (a second run), span 3 holding an empty file and span 4 a row
with the wrong number of fields (each refused by the run's pre-flight check, saying why, and not run
again), span 5 (a run that SIGTERM ends).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.guards import store_lock
from pipeline.runners.scheduler import make_trigger, recorded_runs
from scripts.add_span import add_span
from tests.conftest import PROJECT_ROOT, small_run_env
from tests.docs.commands import documented

SPAN_ROWS = 600
RUN_TIMEOUT_S = 600


@dataclasses.dataclass
class SchedulerSession:
    config: configs.PipelineConfig
    entries: list[dict]
    exit_code: int
    stopped_in_s: float
    output: str
    before_bad_spans: dict  # executions in the store and serving versions, before spans 3 and 4
    after_bad_spans: dict


def _add_raw_span(config: configs.PipelineConfig, span: int, data: bytes) -> Path:
    """A span holding one file with these bytes, renamed into place whole (as add_span does)."""
    staging = Path(config.data_root) / f".adding-{span}"
    (staging / f"span-{span}").mkdir(parents=True)
    (staging / f"span-{span}" / "data.csv").write_bytes(data)
    (staging / f"span-{span}").rename(Path(config.data_root) / f"span-{span}")
    staging.rmdir()
    return Path(config.data_root) / f"span-{span}" / "data.csv"


def _store_state(config: configs.PipelineConfig) -> dict:
    with sqlite3.connect(config.metadata_path) as connection:
        executions = connection.execute("SELECT COUNT(*) FROM Execution").fetchone()[0]
    return {"executions": executions, "serving": sorted(p.name for p in Path(config.serving_model_dir).iterdir())}


def _entries(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(path: Path, predicate, process, timeout_s: float = RUN_TIMEOUT_S) -> list[dict]:
    """The log once an entry satisfies `predicate`; fails with the log if the scheduler dies or stalls."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = _entries(path)
        if any(predicate(entry) for entry in entries):
            return entries
        if process.poll() is not None:
            pytest.fail(f"scheduler exited {process.returncode}; log:\n" + "\n".join(map(json.dumps, entries)))
        time.sleep(0.5)
    pytest.fail(f"no matching trigger within {timeout_s}s; log:\n" + "\n".join(map(json.dumps, entries)))


def _count(entries, **fields) -> int:
    return sum(all(entry.get(k) == v for k, v in fields.items()) for entry in entries)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> SchedulerSession:
    data_root = tmp_path_factory.mktemp("spans")
    env = {
        **small_run_env(data_root, tmp_path_factory.mktemp("output")),
        "PIPELINE_INPUT_PATTERN": "span-{SPAN}/*.csv",
    }
    config = configs.load_config(**configs.env_overrides(env))
    log = Path(config.output_root) / "scheduler" / config.pipeline_name / "triggers.jsonl"
    stdout = open(tmp_path_factory.mktemp("scheduler") / "stdout.txt", "w+")
    # The interval command docs/runners.md shows, every 2 s instead of 10 minutes.
    process = documented("docs/runners.md", "python -m pipeline.runners.scheduler --interval-s 600").replace(
        "600", "2").start(env, stdout=stdout, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(log, lambda e: e.get("outcome") == "no_new_data", process, timeout_s=120)
        add_span(config, SPAN_ROWS)
        _wait_for(log, lambda e: e.get("outcome") == "ran" and e.get("span") == 1, process)
        _wait_for(log, lambda e: e.get("outcome") == "no_new_data" and e.get("span") == 1, process, 60)
        # Another process (a hand-started run, say) holds the store: the trigger must not start a run.
        with store_lock.hold(config, "hand-started"):
            add_span(config, SPAN_ROWS)
            _wait_for(log, lambda e: e.get("outcome") == "skipped_busy" and e.get("span") == 2, process)
        _wait_for(log, lambda e: e.get("outcome") == "ran" and e.get("span") == 2, process)
        before_bad_spans = _store_state(config)
        _add_raw_span(config, 3, b"")
        _wait_for(log, lambda e: e.get("outcome") == "refused_before" and e.get("span") == 3, process)
        header, *rows = (PROJECT_ROOT / "data" / "data.csv").read_bytes().splitlines(keepends=True)[:40]
        rows[5] = b"1,2,3\n"
        _add_raw_span(config, 4, header + b"".join(rows))
        _wait_for(log, lambda e: e.get("outcome") == "refused_before" and e.get("span") == 4, process)
        after_bad_spans = _store_state(config)
        add_span(config, SPAN_ROWS)
        _wait_for(log, lambda e: e.get("event") == "run_started" and e.get("span") == 5, process)
        time.sleep(5)  # Well into the run: TensorFlow loading, the store open.
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        stopped_in_s = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stdout.seek(0)
        output = stdout.read()
        stdout.close()
    return SchedulerSession(
        config, _entries(log), process.returncode, stopped_in_s, output, before_bad_spans, after_bad_spans
    )


@pytest.mark.e2e
def test_two_new_spans_lead_to_exactly_two_runs(session):
    ran = [e for e in session.entries if e.get("outcome") == "ran"]
    assert [e["span"] for e in ran] == [1, 2]
    assert all(e["exit_code"] == 0 and e["duration_s"] > 0 for e in ran)
    runs = recorded_runs(session.config)
    assert [r["spans"] for r in runs] == [[1], [2]]
    assert {r["runner"] for r in runs} == {"beam"}


@pytest.mark.e2e
def test_a_trigger_without_a_new_span_runs_nothing(session):
    first_run = next(i for i, e in enumerate(session.entries) if e.get("outcome") == "ran")
    before, after = session.entries[:first_run], session.entries[first_run + 1:]
    assert _count(before, outcome="no_new_data", span=None) >= 1
    assert _count(after, outcome="no_new_data", span=1) >= 1
    assert _count(session.entries, event="run_started") == 5  # spans 1 to 5


@pytest.mark.e2e
def test_overlapping_triggers_are_skipped(session):
    # While its own run is in flight, and while another process holds the store's lock.
    assert _count(session.entries, outcome="skipped_in_flight") >= 1
    busy = [e for e in session.entries if e.get("outcome") == "skipped_busy"]
    assert busy and busy[0]["holder"].startswith(f"a hand-started run (pid {os.getpid()} on ")


@pytest.mark.e2e
def test_sigterm_stops_the_scheduler_and_the_run_in_flight_cleanly(session):
    assert session.exit_code == 0, session.output
    assert session.stopped_in_s < 60
    stopping = next(i for i, e in enumerate(session.entries) if e["event"] == "stopping")
    after = session.entries[stopping + 1:]
    assert _count(after, outcome="terminated", span=5) == 1
    assert after[-1]["event"] == "scheduler_stopped"
    # The store is whole, free, and span 3 is still new for the next start.
    with sqlite3.connect(session.config.metadata_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert store_lock.busy(session.config) is None
    assert {s for r in recorded_runs(session.config) for s in r["spans"]} == {1, 2}
    for entry in session.entries:
        if "pid" in entry and entry["event"] == "run_started":
            with pytest.raises(ProcessLookupError):
                os.kill(entry["pid"], 0)


@pytest.mark.e2e
def test_a_crontab_schedule_fires_its_first_trigger_at_start_up(tmp_path):
    """The crontab command docs/runners.md shows, on a span folder of the test's: APScheduler fires the first
    trigger at start-up (no span yet: nothing runs), and SIGTERM stops the scheduler."""
    data_root = tmp_path / "spans"
    data_root.mkdir()
    command = documented("docs/runners.md", "PIPELINE_INPUT_PATTERN='span-{SPAN}/*.csv' PIPELINE_DATA_ROOT=/data/taxi "
                                            "python -m pipeline.runners.scheduler --cron '0 6 * * *'")
    command = command.replace("/data/taxi", str(data_root))
    env = small_run_env(tmp_path / "unused", tmp_path / "output")
    config = configs.load_config(**configs.env_overrides(command.environ(env)))
    log = Path(config.output_root) / "scheduler" / config.pipeline_name / "triggers.jsonl"
    process = command.start(env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        entries = _wait_for(log, lambda e: e.get("outcome") == "no_new_data", process, timeout_s=120)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0
    assert entries[0]["event"] == "scheduler_started" and "cron[" in entries[0]["trigger"]
    assert "hour='6'" in entries[0]["trigger"] and "minute='0'" in entries[0]["trigger"]
    assert config.data_root == str(data_root) and config.input_pattern == "span-{SPAN}/*.csv"


def test_schedule_comes_from_a_crontab_line_or_an_interval():
    config = configs.load_config(schedule_cron="*/5 * * * *")
    assert "minute='*/5'" in str(make_trigger(config, None, None))
    assert str(make_trigger(config, None, 30)) == "interval[0:00:30]"
    assert str(make_trigger(configs.load_config(), None, None)) == "interval[1:00:00]"
    with pytest.raises(configs.ConfigError, match="is not a crontab line"):
        make_trigger(config, "every day", None)


@pytest.mark.e2e
def test_bad_spans_are_refused_with_the_reason_and_not_run_again(session):
    data = Path(session.config.data_root)
    refused = {e["span"]: e for e in session.entries if e.get("outcome") == "refused"}
    assert set(refused) == {3, 4}
    assert refused[3]["exit_code"] == configs.EXIT_CONFIG_ERROR
    assert refused[3]["error"] == (
        f"error: input file {data / 'span-3' / 'data.csv'} (span 3) is empty: expected a header line and rows"
    )
    assert refused[4]["error"] == (
        f"error: input file {data / 'span-4' / 'data.csv'} (span 4): line 7 has 3 fields, the header has 18"
    )
    # Each refused span started exactly one run; later triggers saw the same files and skipped them.
    assert _count(session.entries, event="run_started", span=3) == 1
    assert _count(session.entries, event="run_started", span=4) == 1
    # Nothing was written for them: no execution in the store, no serving version, no run record.
    assert session.after_bad_spans == session.before_bad_spans
