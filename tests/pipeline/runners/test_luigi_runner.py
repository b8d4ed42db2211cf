"""The Luigi runner end to end on the small sample, with the commands docs/runners.md shows: a run whose
Trainer fails (local scheduler), a new run after the fix through a real central scheduler (luigid), where
everything upstream of the Trainer is served from TFX's cache, then the failed run resumed by its id,
where only the unfinished nodes run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("luigi", reason="Luigi is an optional orchestrator: make install-all")

from pipeline import configs  # noqa: E402
from pipeline.guards import store_lock  # noqa: E402
from pipeline import pipeline as pipeline_definition  # noqa: E402
from pipeline.metadata import run_summary  # noqa: E402
from pipeline.metadata.store import (
    connection_config,  # noqa: E402
    open_store,  # noqa: E402
)
from tests.conftest import PROJECT_ROOT, copy_modules, small_run_env  # noqa: E402
from tests.docs.commands import documented  # noqa: E402
from tests.orchestrator_checks import (  # noqa: E402
    ALL_NODES,
    CACHED_WHEN_UNCHANGED,
    cli_json,
    states_of_run,
    store_held_by_another_run,
)

pytestmark = pytest.mark.e2e

LOCAL_SCHEDULER = documented("docs/runners.md", "python -m pipeline.runners.luigi_runner --local-scheduler")
BROKEN_RUN_FN = '\n\ndef run_fn(fn_args):\n    raise RuntimeError("trainer broken on purpose by the test")\n'
# The baseline resolver takes the Trainer's model as its candidate, so it waits for the Trainer too.
DOWNSTREAM_OF_TRAINER = {"Trainer", pipeline_definition.RESOLVER_ID, "Evaluator", "Pusher"}


@dataclasses.dataclass
class LuigiRuns:
    config: configs.PipelineConfig
    failed: subprocess.CompletedProcess
    failed_run_id: str
    failed_states: dict[str, list[str]]
    fixed_output: str
    fixed_run_id: str
    resumed_output: str
    scheduler_tasks: dict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _latest_run_id(config) -> str:
    store = open_store(connection_config(config))
    return run_summary.latest_run_context(store, config.pipeline_name).name


def _scheduler_tasks(port: int) -> dict:
    """Every task the central scheduler knows, by task id, as its visualiser shows them."""
    query = urllib.parse.urlencode({"data": json.dumps({})})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list?{query}", timeout=10) as answer:
        return json.load(answer)["response"]


@pytest.fixture(scope="module")
def luigi_runs(tmp_path_factory, sample_data_dir) -> LuigiRuns:
    modules_dir = copy_modules(tmp_path_factory.mktemp("luigi_user") / "modules")
    env = small_run_env(sample_data_dir, tmp_path_factory.mktemp("luigi_output"), modules_dir)
    config = configs.load_config(**configs.env_overrides(env))
    trainer_file = modules_dir / "trainer_module.py"
    original = trainer_file.read_text()

    trainer_file.write_text(original + BROKEN_RUN_FN)
    failed = LOCAL_SCHEDULER.run(env, check=False)
    failed_run_id = _latest_run_id(config)
    failed_states = states_of_run(config, failed_run_id)

    # The new run through a central scheduler, on a free port instead of Luigi's 8082: luigid is given it on
    # its command line, the runner in Luigi's configuration (as its state file, out of /var/lib).
    trainer_file.write_text(original)
    port = _free_port()
    state_dir = tmp_path_factory.mktemp("luigid")
    (state_dir / "luigi.cfg").write_text(f"[core]\ndefault-scheduler-port = {port}\n\n"
                                         f"[scheduler]\nstate_path = {state_dir / 'state.pickle'}\n")
    env["LUIGI_CONFIG_PATH"] = str(state_dir / "luigi.cfg")
    luigid = documented("docs/runners.md", "luigid --port 8082 &").replace("8082", str(port)).start(
        env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert luigid.poll() is None and time.monotonic() < deadline, "luigid did not start"
                time.sleep(0.5)
        fixed_output = documented("docs/runners.md", "python -m pipeline.runners.luigi_runner --scheduler-host "
                                  "localhost").run(env).stdout
        scheduler_tasks = _scheduler_tasks(port)
    finally:
        luigid.terminate()
        luigid.wait(timeout=30)
    fixed_run_id = _latest_run_id(config)

    resume = documented("docs/runners.md", "python -m pipeline.runners.luigi_runner --local-scheduler --run-id "
                        "2026-01-31T10:00:00.000000")
    resumed_output = resume.replace("2026-01-31T10:00:00.000000", failed_run_id).run(env).stdout
    return LuigiRuns(
        config, failed, failed_run_id, failed_states, fixed_output, fixed_run_id, resumed_output, scheduler_tasks
    )


def test_a_failed_node_fails_its_task_and_nothing_downstream_runs(luigi_runs):
    assert luigi_runs.failed.returncode == 1, luigi_runs.failed.stderr[-4000:]
    # The error, the module's line that raised it and the full log; Luigi's traceback only in the log.
    errors = luigi_runs.failed.stderr.splitlines()
    assert errors[0] == "error: RuntimeError: trainer broken on purpose by the test", luigi_runs.failed.stderr
    trainer = luigi_runs.config.trainer_module_file
    broken = (Path(trainer).read_text() + BROKEN_RUN_FN).splitlines()
    line = broken.index('    raise RuntimeError("trainer broken on purpose by the test")') + 1
    assert errors[1] == f"  at {trainer}, line {line}, in run_fn", errors
    assert len(errors) == 3 and errors[2].startswith("The full log: ")
    assert "Traceback" in Path(errors[2].removeprefix("The full log: ")).read_text()
    assert f"{'Trainer':<32} FAILED after " in luigi_runs.failed.stdout
    assert luigi_runs.failed_states == {
        **{node: ["executed"] for node in ALL_NODES - DOWNSTREAM_OF_TRAINER},
        "Trainer": ["failed"],
    }


def test_a_new_run_after_the_fix_takes_everything_upstream_from_cache(luigi_runs):
    states = states_of_run(luigi_runs.config, luigi_runs.fixed_run_id)
    assert luigi_runs.fixed_run_id != luigi_runs.failed_run_id
    assert {node: states[node] for node in CACHED_WHEN_UNCHANGED - {"Trainer", "Evaluator", "Pusher"}} == {
        node: ["cached"] for node in CACHED_WHEN_UNCHANGED - {"Trainer", "Evaluator", "Pusher"}
    }
    assert states["Trainer"] == ["executed"]
    assert states["Pusher"] == ["executed"]
    assert "Blessed: yes" in luigi_runs.fixed_output
    # Its last task names the run's log file and the command that writes its report.
    report = luigi_runs.config.report_file(luigi_runs.fixed_run_id)
    assert f"Report: pipeline report {luigi_runs.fixed_run_id} -o {report}" in luigi_runs.fixed_output
    assert re.search(r"^Log: \S+-luigi\.log$", luigi_runs.fixed_output, re.MULTILINE), luigi_runs.fixed_output
    # The input was checked once, before Luigi started: the CheckInput task found the check done.
    assert luigi_runs.fixed_output.count(" Input: ") == 1, luigi_runs.fixed_output
    assert list(Path(luigi_runs.config.serving_model_dir).glob("*/saved_model.pb"))


def test_resuming_the_failed_run_runs_only_its_unfinished_nodes(luigi_runs):
    states = states_of_run(luigi_runs.config, luigi_runs.failed_run_id)
    # The finished upstream nodes kept their single execution: Luigi found them complete in MLMD.
    assert states["Transform"] == ["executed"]
    # TFX reuses the node's failed execution of this run and finishes it (from the fixed run's cache).
    assert states["Trainer"] in (["cached"], ["executed"])
    assert len(states["Evaluator"]) == 1 and len(states["Pusher"]) == 1
    assert f"{'Transform':<32} started" not in luigi_runs.resumed_output
    assert f"{'Trainer':<32} started" in luigi_runs.resumed_output


def test_the_central_scheduler_saw_every_node_as_a_task(luigi_runs):
    families = {task["name"] for task in luigi_runs.scheduler_tasks.values()}
    # The input check first: the nodes that wait for no other require it.
    assert families == {"tfx.CheckInput", "tfx.Node", "tfx.Pipeline"}
    nodes = {
        task["params"]["node_id"]
        for task in luigi_runs.scheduler_tasks.values()
        if task["name"] == "tfx.Node"
    }
    assert nodes == ALL_NODES
    assert {task["status"] for task in luigi_runs.scheduler_tasks.values()} == {"DONE"}


def test_runs_and_lineage_commands_read_the_luigi_runs(luigi_runs, capsys):
    runs = {r["run"]: r for r in cli_json(capsys, luigi_runs.config, "runs")["runs"]}
    assert set(runs) == {luigi_runs.failed_run_id, luigi_runs.fixed_run_id}
    # The failed run was resumed to the end: its newest executions all succeeded.
    assert runs[luigi_runs.failed_run_id]["status"] == "complete"
    assert all(r["record"]["runner"] == "luigi" for r in runs.values())
    story = cli_json(capsys, luigi_runs.config, "lineage", "serving")
    assert story["record"]["runner"] == "luigi"


@pytest.fixture(scope="module")
def bad_span(luigi_runs, tmp_path_factory):
    """A span holding a row with the wrong number of fields, against the store of the runs above."""
    spans = tmp_path_factory.mktemp("luigi_spans")
    header, *rows = (PROJECT_ROOT / "data" / "data.csv").read_bytes().splitlines(keepends=True)[:300]
    rows[3] = b"1,2,3\n"
    (spans / "span-1").mkdir()
    (spans / "span-1" / "data.csv").write_bytes(header + b"".join(rows))
    env = {**small_run_env(spans, Path(luigi_runs.config.output_root)), "PIPELINE_INPUT_PATTERN": "span-{SPAN}/*.csv"}
    return spans / "span-1" / "data.csv", env


def _execution_count(config) -> int:
    return len(open_store(connection_config(config)).get_executions())


def test_a_bad_span_stops_the_runner_with_one_line(luigi_runs, bad_span):
    path, env = bad_span
    before = _execution_count(luigi_runs.config)
    result = LOCAL_SCHEDULER.run(env, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: input file {path} (span 1): line 5 has 3 fields, the header has 18"]
    assert "Traceback" not in result.stderr
    assert _execution_count(luigi_runs.config) == before


def test_luigis_own_command_runs_the_input_check_before_any_node(luigi_runs, bad_span):
    path, env = bad_span
    before = _execution_count(luigi_runs.config)
    result = documented("docs/runners.md", "luigi --module pipeline.runners.luigi_runner tfx.Pipeline "
                        "--local-scheduler").run(env, check=False)
    output = result.stdout + result.stderr
    assert f"ConfigError: input file {path} (span 1): line 5 has 3 fields, the header has 18" in output
    assert "1 failed:" in output and "tfx.CheckInput" in output
    # No node ran: Luigi ran nothing that waits for the check, and MLMD holds no new execution.
    assert _execution_count(luigi_runs.config) == before


def test_a_second_run_is_refused_naming_the_run_that_holds_the_store(luigi_runs, sample_data_dir):
    env = {**small_run_env(sample_data_dir, Path(luigi_runs.config.output_root)), "PIPELINE_RUN_LOCK_TIMEOUT_S": "0"}
    before = _execution_count(luigi_runs.config)
    with store_held_by_another_run(env) as holder:
        result = LOCAL_SCHEDULER.run(env, check=False)
    assert result.returncode == store_lock.EXIT_BUSY, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"a local run (pid {holder.pid} " in errors[0], result.stderr[-3000:]
    assert _execution_count(luigi_runs.config) == before
    # The refused run released nothing of the holder's, and left no lease of its own.
    assert store_lock.busy(luigi_runs.config) is None
