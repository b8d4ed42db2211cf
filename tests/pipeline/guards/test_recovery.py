"""Crashes, retries and concurrent runs against one SQLite store, with real processes and kill -9.

One sequence of real runs on the sample feeds every test:
1. a run killed (SIGKILL) while Transform executes;
2. a re-run, killed while Trainer executes;
3. a re-run whose Trainer fails once on purpose and is retried; while it holds the store, a reader
   queries the store, a run allowed to wait 1 s gives up, and a run allowed to wait long waits;
4. that waiting run then re-runs unchanged, so its blessed model is the one already serving;
5. a clean-up job empties the folder of the data gate's last output (the next gate's drift baseline) and
   a lost write empties a file of StatisticsGen's cached statistics; a re-run notices both first;
6. the clock steps back to the very microsecond the first run started, and a run starts.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.components import data_gate
from pipeline.guards import recovery, serving_dir, store_lock
from pipeline.metadata import events, run_record, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import FAIL_ONCE, FAIL_ONCE_ENV, PROJECT_ROOT, copy_modules, small_run_env

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).parent / "pipeline")
RESOLVER = pipeline_definition.RESOLVER_ID
# Nodes that run afresh every run: the resolvers, and the data gate (its drift baseline changes).
ALWAYS_RUN = {RESOLVER, data_gate.BASELINE_RESOLVER_ID, data_gate.DATA_GATE_ID}
UPSTREAM_OF_TRAINER = {"CsvExampleGen", "StatisticsGen", "SchemaGen", "CuratedSchemaImporter",
                       "ExampleValidator", "Transform"}


# The local runner, its clock for run names (pipeline/metadata/run_names.py) stopped at an instant.
RUNNER_AT_INSTANT = """
import datetime, sys
from pipeline.metadata import run_names
run_names.now = lambda: datetime.datetime.fromisoformat(sys.argv[1])
from pipeline.runners import local_runner
sys.exit(local_runner.main([]))
"""


class PipelineProcess:
    """The local runner as a user starts it (with `args`), with its output collected line by line; with
    `clock`, at that instant."""

    def __init__(self, env: dict[str, str], clock: str | None = None, args: tuple[str, ...] = ()) -> None:
        command = [sys.executable, str(PROJECT_ROOT / "pipeline" / "runners" / "local_runner.py"), *args]
        if clock is not None:
            command = [sys.executable, "-c", RUNNER_AT_INSTANT, clock]
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None:
                self._reader.join(5)
                if any(text in line for line in self.lines):
                    return
                pytest.fail(f"the run ended before printing {text!r}:\n{self.output[-6000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {text!r} within {timeout}s:\n{self.output[-6000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout: float = 900) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the run did not finish within {timeout}s:\n{self.output[-6000:]}")
        self._reader.join(10)
        return code


def wait_for_execution_dir(pipeline_root: str, node: str, output_key: str, timeout: float = 300) -> int:
    """The id of the node's execution once TFX has created its output folder (the executor is running)."""
    folder = Path(pipeline_root, node, output_key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = [int(p.name) for p in folder.glob("*") if p.name.isdigit()] if folder.is_dir() else []
        if ids:
            return max(ids)
        time.sleep(0.2)
    pytest.fail(f"{node} never created {folder}/<execution id>")


def kill_while_running(env, config, node: str, output_key: str) -> tuple[PipelineProcess, int]:
    run = PipelineProcess(env)
    run.wait_for(f"{node:<32} started")
    execution_id = wait_for_execution_dir(config.pipeline_root, node, output_key)
    time.sleep(2)  # Well inside the component's work.
    assert run.process.poll() is None, run.output[-4000:]
    run.kill()
    return run, execution_id


@dataclasses.dataclass
class Story:
    config: configs.PipelineConfig
    killed: dict[str, int]
    runs: dict[str, PipelineProcess]
    codes: dict[str, int]
    reader: subprocess.CompletedProcess
    # The artifacts whose files the fifth run found gone, by what they were: "statistics", "baseline".
    vanished: dict[str, metadata_store_pb2.Artifact]
    # The name of the first run, whose start the clock stepped back to, and `pipeline runs` after that.
    first_run_name: str
    listed: subprocess.CompletedProcess


def lose_files(config: configs.PipelineConfig) -> dict[str, metadata_store_pb2.Artifact]:
    """What a clean-up job and a lost disk do to the newest run's outputs: the data gate's validated
    statistics (what the next gate compares with) keep their folder but lose every file in it; one split
    of StatisticsGen's statistics (cached in that run) is left an empty file."""
    summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
    statistics = summary.component("StatisticsGen").output("statistics")
    baseline = summary.component(data_gate.DATA_GATE_ID).output(data_gate.VALIDATED_STATISTICS_KEY)
    for child in Path(baseline.uri).iterdir():
        shutil.rmtree(child)
    Path(statistics.uri, "Split-eval", "FeatureStats.pb").write_bytes(b"")
    return {"statistics": statistics, "baseline": baseline}


@pytest.fixture(scope="module")
def story(tmp_path_factory, sample_data_dir) -> Story:
    modules_dir = copy_modules(tmp_path_factory.mktemp("recovery_user") / "modules")
    trainer_file = modules_dir / "trainer_module.py"
    trainer_file.write_text(trainer_file.read_text() + FAIL_ONCE)
    output_root = tmp_path_factory.mktemp("recovery_output")
    env = small_run_env(sample_data_dir, output_root, modules_dir)
    config = configs.load_config(**configs.env_overrides(env))

    first, killed_transform = kill_while_running(env, config, "Transform", "transform_graph")
    second, killed_trainer = kill_while_running(env, config, "Trainer", "model")

    marker = output_root / "failed-once"
    third = PipelineProcess({**env, FAIL_ONCE_ENV: str(marker), "PIPELINE_RETRIES": "1",
                             "PIPELINE_RETRY_BACKOFF_S": "1"})
    # The third run holds the store's lock from before its first component until it ends; its Trainer
    # holds on until released, so the two runs started now find the store busy.
    third.wait_for(f"{'Trainer':<32} started")
    impatient = PipelineProcess({**env, "PIPELINE_RUN_LOCK_TIMEOUT_S": "1"})
    patient = PipelineProcess({**env, "PIPELINE_RUN_LOCK_TIMEOUT_S": "1200"})
    reader = subprocess.run([CLI, "runs", "--format", "json"], env=env, capture_output=True, text=True,
                            timeout=600)
    codes = {"impatient": impatient.finish()}
    patient.wait_for("Another run is using the ML Metadata store")
    Path(str(marker) + ".release").touch()
    codes["third"] = third.finish()
    codes["patient"] = patient.finish()
    for name in ("third", "patient"):
        proc = {"third": third, "patient": patient}[name]
        assert codes[name] == 0, f"{name} run failed:\n{proc.output[-8000:]}"
    vanished = lose_files(config)
    after_loss = PipelineProcess(env)
    codes["after_loss"] = after_loss.finish()
    store = open_store(connection_config(config))
    first_run_name = min(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id).name
    stepped_back = PipelineProcess(env, clock=first_run_name)
    codes["stepped_back"] = stepped_back.finish()
    listed = subprocess.run([CLI, "runs", "--format", "json"], env=env, capture_output=True, text=True,
                            timeout=600)
    return Story(
        config=config,
        killed={"Transform": killed_transform, "Trainer": killed_trainer},
        runs={"first": first, "second": second, "third": third, "impatient": impatient,
              "patient": patient, "after_loss": after_loss, "stepped_back": stepped_back},
        codes=codes,
        reader=reader,
        vanished=vanished,
        first_run_name=first_run_name,
        listed=listed,
    )


def _store(config):
    return open_store(connection_config(config))


def _runs_in_order(store, config) -> list[list[run_summary.ComponentRun]]:
    contexts = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
    return [run_summary.component_runs(store, c, config.pipeline_name) for c in contexts]


def _states(components) -> dict[str, str]:
    return {c.node_id: c.state for c in components}


def test_killed_executions_are_marked_failed_and_their_outputs_are_gone(story):
    store = _store(story.config)
    killed = store.get_executions_by_id(list(story.killed.values()))
    assert len(killed) == 2
    for execution in killed:
        assert execution.last_known_state == metadata_store_pb2.Execution.FAILED
        assert "killed or crashed" in execution.custom_properties[recovery.ABANDONED_PROPERTY].string_value
    for node, execution_id in story.killed.items():
        assert not list(Path(story.config.pipeline_root, node).glob(f"*/{execution_id}"))
    # Each re-run said what it cleaned up.
    second, third = story.runs["second"].output, story.runs["third"].output
    assert f"Transform (execution {story.killed['Transform']})" in second
    assert f"Trainer (execution {story.killed['Trainer']})" in third


def test_no_later_execution_uses_an_artifact_of_a_killed_one(story):
    store = _store(story.config)
    executions = store.get_executions()
    events = store.get_events_by_execution_ids([e.id for e in executions])
    from_killed = {
        e.artifact_id for e in events
        if e.execution_id in story.killed.values() and e.type != metadata_store_pb2.Event.INPUT
    }
    used = {e.artifact_id for e in events if e.type == metadata_store_pb2.Event.INPUT}
    assert not from_killed & used


def test_store_is_consistent_after_the_kills(story):
    store = _store(story.config)
    executions = {e.id: e for e in store.get_executions()}
    assert not [e for e in executions.values() if e.last_known_state in (
        metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)]
    events = store.get_events_by_execution_ids(list(executions))
    produced_by_complete = {
        e.artifact_id for e in events
        if e.type == metadata_store_pb2.Event.OUTPUT
        and executions[e.execution_id].last_known_state == metadata_store_pb2.Execution.COMPLETE
    }
    inputs = {e.artifact_id for e in events if e.type == metadata_store_pb2.Event.INPUT}
    assert inputs <= produced_by_complete
    # Live, but for those the last run found without their files (test_outputs_whose_files_are_gone...).
    lost = {a.id for a in story.vanished.values()}
    for artifact in store.get_artifacts_by_id(inputs - lost):
        assert artifact.state == metadata_store_pb2.Artifact.LIVE
    with sqlite3.connect(f"file:{story.config.metadata_path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_reruns_reuse_everything_cached_upstream(story):
    runs = _runs_in_order(_store(story.config), story.config)
    # killed, killed, failed attempt, its retry, the patient run, the run after files were lost, the run
    # after the clock stepped back
    assert len(runs) == 7
    completed: set[str] = set()
    # Up to the retry; the patient run is checked below.
    for earlier, later in zip(runs[:3], runs[1:4]):
        # The resolvers and the data gate are never cached: they run afresh every run.
        completed |= {c.node_id for c in earlier if c.state in ("executed", "cached")} - ALWAYS_RUN
        states = _states(later)
        # Whatever completed before is never executed again; the rest executes.
        assert {node: states[node] for node in completed} == {node: "cached" for node in completed}
    second = _states(runs[1])
    assert second["Transform"] == "executed"
    failed_attempt, retry, last = _states(runs[2]), _states(runs[3]), _states(runs[4])
    assert failed_attempt["Trainer"] == "failed"
    assert {retry[n] for n in UPSTREAM_OF_TRAINER} == {"cached"}
    assert retry["Trainer"] == retry["Evaluator"] == retry["Pusher"] == "executed"
    # The patient run: nothing changed since the retry, so everything comes from the cache (the
    # Evaluator's baseline is the model pushed before the candidate, as in the retry).
    assert {n for n, state in last.items() if state == "executed"} - ALWAYS_RUN == set()


def test_a_transient_failure_is_retried_with_backoff(story):
    output = story.runs["third"].output
    assert "Run failed (RuntimeError: simulated transient failure); retry 1 of 1 in 1s" in output
    assert "Blessed: yes" in output and "Pushed to: " in output


def test_a_second_run_that_cannot_wait_fails_with_a_clear_message(story):
    assert story.codes["impatient"] == store_lock.EXIT_BUSY
    output = story.runs["impatient"].output
    assert "error: another pipeline run is using the ML Metadata store" in output
    assert f"pid {story.runs['third'].process.pid}" in output
    assert "PIPELINE_RUN_LOCK_TIMEOUT_S" in output
    assert "Traceback" not in output
    assert "started" not in output  # No component of its ran.


def test_the_store_can_be_read_while_a_run_writes_it(story):
    assert story.reader.returncode == 0, story.reader.stderr
    assert json.loads(story.reader.stdout)["runs"]


def test_a_waiting_run_runs_next_and_does_not_push_the_serving_model_again(story):
    output = story.runs["patient"].output
    assert "Another run is using the ML Metadata store" in output and "waiting up to 1200s" in output
    assert "Blessed: yes" in output
    versions = serving_dir.serving_versions(story.config.serving_model_dir)
    assert len(versions) == 1
    # Nothing changed since the retry pushed the model: the Evaluator and the Pusher come from the cache.
    assert f"Pushed: no, nothing changed since an earlier run pushed this model as {story.config.serving_model_dir}/{versions[0]}" in output
    assert not [n for n in os.listdir(story.config.serving_model_dir) if n.startswith(".")]


def test_retries_back_off_doubling_then_give_up():
    calls, messages = [], []

    def attempt():
        calls.append(time.monotonic())
        raise OSError("disk hiccup")

    with pytest.raises(OSError, match="disk hiccup"):
        recovery.call_with_retries(attempt, retries=2, backoff_s=0.2, say=messages.append)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.2 and calls[2] - calls[1] >= 0.4
    assert messages == [
        "Run failed (OSError: disk hiccup); retry 1 of 2 in 0.2s (completed components come from the cache).",
        "Run failed (OSError: disk hiccup); retry 2 of 2 in 0.4s (completed components come from the cache).",
    ]


def test_configuration_errors_are_never_retried():
    calls = []

    def attempt():
        calls.append(1)
        raise configs.ConfigError("schema_path does not exist")

    with pytest.raises(configs.ConfigError):
        recovery.call_with_retries(attempt, retries=3, backoff_s=0)
    assert calls == [1]


def test_a_lost_mysql_store_is_never_retried():
    """Its run lock went with the server's connection: a retry could run beside another run."""
    calls = []

    def attempt():
        calls.append(1)
        raise RuntimeError("Failed to establish connection to Metadata storage with error: mysql_real_connect "
                           "failed: errno: , error: ")

    with pytest.raises(RuntimeError, match="mysql_real_connect"):
        recovery.call_with_retries(attempt, retries=3, backoff_s=0)
    assert calls == [1]


def test_outputs_whose_files_are_gone_are_made_again_before_anything_uses_them(story):
    output = story.runs["after_loss"].output
    assert story.codes["after_loss"] == 0, output[-8000:]
    statistics, baseline = story.vanished["statistics"], story.vanished["baseline"]
    # One line per artifact: the node that wrote it, its type, its URI and what is wrong.
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Recorded outputs whose files are gone"))
    assert lines[header] == (
        "Recorded outputs whose files are gone, empty or changed; marked deleted in ML Metadata, so the "
        "components that wrote them run again, and so does every component that reads their new outputs:"
    )
    # Only these two: nothing the earlier runs left whole is reported.
    assert list(itertools.takewhile(lambda line: line.startswith("  "), lines[header + 1:])) == [
        f"  StatisticsGen: ExampleStatistics {statistics.uri} (Split-eval/FeatureStats.pb is empty)",
        f"  DataGate: ExampleStatistics {baseline.uri} (Split-train/FeatureStats.pb is missing)",
    ]
    store = _store(story.config)
    for artifact in store.get_artifacts_by_id([statistics.id, baseline.id]):
        assert artifact.state == metadata_store_pb2.Artifact.DELETED
        assert "marked by a later run" in artifact.custom_properties[recovery.VANISHED_PROPERTY].string_value
    runs = _runs_in_order(store, story.config)
    states = _states(runs[-2])
    # StatisticsGen runs again and so does every node that reads statistics; the nodes upstream of it,
    # and those that read none (Transform onwards: examples, schema, graph and model are intact), do not.
    assert {n: states[n] for n in ("StatisticsGen", "SchemaGen", "ExampleValidator", data_gate.DATA_GATE_ID)} == {
        n: "executed" for n in ("StatisticsGen", "SchemaGen", "ExampleValidator", data_gate.DATA_GATE_ID)}
    cached = {"CsvExampleGen", "CuratedSchemaImporter", "Transform", "Trainer", "Evaluator", "Pusher"}
    assert {n: states[n] for n in cached} == {n: "cached" for n in cached}
    gate = next(c for c in runs[-2] if c.node_id == data_gate.DATA_GATE_ID).execution
    read = {events.key(e): e.artifact_id for e in events.inputs(store, [gate.id])}
    # The gate compared with the newest baseline that still has its files, and read the new statistics.
    assert read["baseline_statistics"] not in (baseline.id, statistics.id)
    assert read["statistics"] != statistics.id
    [used] = store.get_artifacts_by_id([read["baseline_statistics"]])
    assert used.state == metadata_store_pb2.Artifact.LIVE
    # The next run found nothing more to retire.
    assert "Recorded outputs whose files are gone" not in story.runs["stepped_back"].output


def test_a_run_started_when_the_clock_stepped_back_has_its_own_name_and_is_the_newest(story):
    output = story.runs["stepped_back"].output
    assert story.codes["stepped_back"] == 0, output[-8000:]
    store = _store(story.config)
    contexts = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
    names = [c.name for c in contexts]
    assert len(set(names)) == len(names) == 7
    # Every run's name is its start in the local runner's form; the clock read the first run's very
    # microsecond again, so the last run's name is that one, numbered.
    assert all(datetime.datetime.fromisoformat(name.split("_")[0]) for name in names)
    assert names[-1] == f"{story.first_run_name}_2"
    # `pipeline runs` lists runs newest first, whatever their names and clock times say.
    assert story.listed.returncode == 0, story.listed.stderr
    listed = [run["run"] for run in json.loads(story.listed.stdout)["runs"]]
    assert listed == names[::-1]
    # The run's record went onto its own context, not onto the first run's (killed: never recorded).
    assert run_record.read_record(contexts[-1])["runner"] == "local"
    assert not run_record.read_record(contexts[0])
    newest = run_summary.summarize_latest_run(connection_config(story.config), story.config.pipeline_name)
    assert newest.run_id == names[-1]
