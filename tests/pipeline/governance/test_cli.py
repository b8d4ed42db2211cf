"""The `pipeline` command against a store written by two real pipeline runs.

The store is the `local_runs` fixture's (a first run, an unchanged re-run, and a re-run after editing
the trainer module, so two models are pushed); the commands are run as a user runs them, from the
installed entry point.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.governance import views
from pipeline.metadata import artifact_files, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import PROJECT_ROOT, tensorboard_scalars
from tests.docs.commands import documented

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).parent / "pipeline")


def run_cli(args: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        pytest.fail(f"pipeline {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def store(local_runs):
    """The shared store of three runs; returns (env, config, [first run, the re-run after the edit]).

    The first run's model and the edited module's model are both blessed and pushed: two models to
    trace and roll back between.
    """
    if not os.path.exists(CLI):
        pytest.fail(f"{CLI} is not installed: reinstall the project (make install)")
    return local_runs.env, local_runs.config, [local_runs.summaries[0], local_runs.summaries[2]]


def test_every_command_has_help():
    for command in ([], ["runs"], ["lineage"], ["rollback"], ["report"], ["blessing"], ["promote"], ["tensorboard"],
                    ["plan"], ["env"]):
        result = subprocess.run([CLI, *command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "usage: pipeline" in result.stdout
    # The command's older name still works.
    old = subprocess.run([str(Path(CLI).parent / "taxi-pipeline"), "runs", "--help"], capture_output=True, text=True)
    assert old.returncode == 0 and "usage: pipeline runs" in old.stdout


def test_runs_lists_both_runs_with_who_ran_them(store):
    env, _, summaries = store
    answer = json.loads(run_cli(["runs", "--format", "json"], env).stdout)
    assert answer["format_version"] == 2
    listed = answer["runs"]
    ours = {summary.run_id for summary in summaries}
    # Newest first; the unchanged re-run sits between the two.
    assert [r["run"] for r in listed if r["run"] in ours] == [summaries[1].run_id, summaries[0].run_id]
    assert len(listed) >= 3
    for run in listed:
        assert run["status"] == "complete"
        assert {c["node"] for c in run["components"]} >= {"CsvExampleGen", "Trainer", "Pusher"}
        assert run["record"]["runner"] == "local"
        assert run["record"]["user"] and run["record"]["host"]
        # JSON all the way down: the record's structured fields are values, not JSON text.
        assert isinstance(run["record"]["config"], dict) and run["record"]["config"]["train_steps"] >= 1
        assert isinstance(run["record"]["task_files"]["task.py"], str) and run["record"]["spans"] == [0]
        assert isinstance(run["record"]["input_files"]["data.csv"]["bytes"], int)
        assert run["blessing_metric"]["name"] == "auc"
        if run["run"] in ours:
            assert run["blessed"] is True and run["pushed_version"]
    by_name = {run["run"]: run for run in listed}
    for summary in summaries:
        assert by_name[summary.run_id]["blessing_metric"]["value"] == summary.eval_metrics["auc"]
    text = documented("docs/runs-lineage-reports.md", "pipeline runs").run(env).stdout
    assert summaries[0].run_id in text and summaries[1].run_id in text
    for summary in summaries:
        assert re.search(
            rf"^run {re.escape(summary.run_id)}  complete  [0-9.]+s  auc {summary.eval_metrics['auc']:.4f}  "
            r"blessed: yes  pushed: [0-9]+$", text, re.MULTILINE,
        ), text
    assert re.search(r"Trainer\s+executed", text)


def _git_head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_lineage_serving_names_the_examples_commit_and_module_hashes(store):
    env, config, summaries = store
    story = json.loads(documented("docs/runs-lineage-reports.md", "pipeline lineage serving --format json")
                       .run(env).stdout)
    second = summaries[1]
    assert story["live"] is True
    assert story["model"]["id"] == second.component("Trainer").output("model").id
    assert [e["id"] for e in story["examples"]] == [second.component("CsvExampleGen").output("examples").id]
    assert story["format_version"] == 2
    record = story["record"]
    assert record["config"]["trainer_module_file"] == config.trainer_module_file
    assert set(record["task_files"]) >= {"task.py", "features.py"} and record["spans"] == [0]
    assert record["git_commit"] == _git_head()
    # The serving model came from the test's edited copy of the trainer module.
    trainer_hash = hashlib.sha256(Path(config.trainer_module_file).read_bytes()).hexdigest()
    assert record["trainer_module_file"] == config.trainer_module_file
    assert record["trainer_module_sha256"] == trainer_hash
    assert story["blessed"] is True and story["metrics"]["auc"] > 0.5
    nodes = {e["node"] for e in story["graph"]["executions"].values()}
    assert nodes >= {"CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "Pusher"}
    text = documented("docs/runs-lineage-reports.md", "pipeline lineage serving").run(env).stdout
    assert _git_head()[:12] in text and trainer_hash in text


def test_lineage_as_an_image_is_rendered_or_written_as_dot(store, tmp_path):
    """Graphviz renders the graph when it is installed; without it, the DOT text goes beside the path asked for."""
    env, _, _ = store
    image = tmp_path / "lineage.svg"
    result = (documented("docs/runs-lineage-reports.md", "pipeline lineage serving --format dot -o lineage.svg")
              .replace("lineage.svg", str(image)).run(env))
    if shutil.which("dot"):
        svg = image.read_text()
        assert svg.lstrip().startswith(("<?xml", "<svg")) and "Trainer" in svg
    else:
        assert result.stderr == f"Graphviz (dot) is not installed: wrote the DOT text to {tmp_path / 'lineage.dot'}\n"
        dot = (tmp_path / "lineage.dot").read_text()
        assert dot.startswith("digraph lineage {") and "->" in dot and "Trainer" in dot


def test_read_commands_fail_clearly_and_create_nothing(store, tmp_path):
    env, _, _ = store
    missing = tmp_path / "nowhere" / "metadata.db"
    result = run_cli(["runs", "--metadata-path", str(missing)], env, check=False)
    assert result.returncode == 2 and f"no ML Metadata store at {missing}" in result.stderr
    assert not missing.exists()
    result = run_cli(["lineage", "987654"], env, check=False)
    assert result.returncode == 1 and "no artifact or serving version 987654" in result.stderr
    # The largest id ML Metadata can hold is looked up, not a crash of its client ("Value out of range").
    for command in ("lineage", "rollback"):
        result = run_cli([command, str(2**63 - 1)], env, check=False)
        assert result.returncode == 1, result.stderr
        assert result.stderr == f"error: no artifact or serving version {2**63 - 1} in this store\n"
    result = run_cli(["report", "no-such-run"], env, check=False)
    assert result.returncode == 1 and "no run 'no-such-run'" in result.stderr

    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    empty = tmp_path / "empty.db"
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(empty)
    metadata_store.MetadataStore(connection)
    result = run_cli(["runs", "--metadata-path", str(empty)], env, check=False)
    assert result.returncode == 1 and "has never run against this store" in result.stderr


# Loaded only by `pipeline tensorboard`: the other commands read protobufs with protobuf alone.
_HEAVY = {"tensorflow", "tensorflow_model_analysis", "tensorflow_data_validation", "tfx"}


def test_read_commands_load_neither_tensorflow_nor_tfma(store, tmp_path):
    """Structural, not timed: every module each command imports, from `python -X importtime`."""
    env, _, _ = store
    for command in (["runs"], ["lineage", "serving"], ["lineage", "serving", "--format", "json"],
                    ["blessing", "latest"], ["report", "latest", "-o", str(tmp_path / "run.html")],
                    ["promote", "no-such-run", "--to", str(tmp_path / "production")], ["rollback", "987654"], ["env"]):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline.governance.cli", *command],
                                env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode in (0, 1, 3) and "Traceback" not in result.stderr, (command, result.stderr[-2000:])
        imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                    if line.startswith("import time:") and "|" in line}
        assert "pipeline.governance.cli" in imported or "pipeline.governance" in imported, command
        assert not imported & _HEAVY, (command, sorted(imported & _HEAVY))
    assert (tmp_path / "run.html").is_file()


def test_output_cut_short_by_a_reader_that_stopped_ends_quietly(store):
    env, _, _ = store
    # The reader is gone before the first line is written: every write fails (EPIPE).
    process = subprocess.Popen([CLI, "runs"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=300) == 0 and err == ""
    # As a user pipes it; with pipefail the shell reports the command's own status.
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {CLI} runs | head -2"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "" and len(result.stdout.splitlines()) == 2


def test_rollback_refuses_a_model_that_was_never_blessed(store, tmp_path):
    env, config, _ = store
    from ml_metadata.proto import metadata_store_pb2

    # A private copy of the store with one unevaluated model in it.
    metadata = tmp_path / "metadata.db"
    shutil.copy(config.metadata_path, metadata)
    serving = tmp_path / "serving"
    shutil.copytree(config.serving_model_dir, serving)
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata)
    copy = open_store(connection)
    model = metadata_store_pb2.Artifact(type_id=copy.get_artifact_type("Model").id, uri=str(tmp_path / "model"))
    [model_id] = copy.put_artifacts([model])
    args = ["rollback", str(model_id), "--metadata-path", str(metadata), "--serving-model-dir", str(serving)]
    result = run_cli(args, env, check=False)
    assert result.returncode == 1
    assert f"model {model_id} was never evaluated, so never blessed" in result.stderr
    assert "--force" in result.stderr
    assert sorted(os.listdir(serving)) == sorted(os.listdir(config.serving_model_dir))


def test_rollback_serves_the_first_model_and_is_recorded(store):
    env, config, summaries = store
    first_version = Path(summaries[0].pushed_to).name
    first_model = summaries[0].component("Trainer").output("model").id
    before = sorted(os.listdir(config.serving_model_dir), key=int)
    rollback_to = documented("docs/runs-lineage-reports.md",
                             'pipeline rollback 1795380278 --reason "AUC dropped on Mondays"')
    out = rollback_to.replace("1795380278", first_version).run(env).stdout
    assert f"Serving model {first_model} as version" in out
    after = sorted(p for p in os.listdir(config.serving_model_dir))
    assert len(after) == len(before) + 1 and all(p.isdigit() for p in after)  # no staging left behind
    new_version = max(after, key=int)
    assert (Path(config.serving_model_dir) / new_version / "saved_model.pb").is_file()

    story = json.loads(run_cli(["lineage", "serving", "--format", "json"], env).stdout)
    assert story["serving_version"] == new_version
    assert story["model"]["id"] == first_model
    assert [e["id"] for e in story["examples"]] == [summaries[0].component("CsvExampleGen").output("examples").id]
    [rollback] = story["rollbacks"]
    assert rollback["reason"] == "AUC dropped on Mondays" and rollback["user"] and rollback["version"] == new_version
    assert "Rollback" in {e["node"] for e in story["graph"]["executions"].values()}
    assert "Rolled back to as version" in run_cli(["lineage", "serving"], env).stdout
    assert re.search(rf"rollback .* to model {first_model} as version {new_version}", run_cli(["runs"], env).stdout)

    # Rolling back to what is already serving is refused.
    result = run_cli(["rollback", new_version], env, check=False)
    assert result.returncode == 1 and "already serving" in result.stderr

    # Without a version: the newest blessed model not serving now, the one the rollback replaced.
    second_model = summaries[1].component("Trainer").output("model").id
    out = documented("docs/runs-lineage-reports.md", "pipeline rollback").run(env).stdout
    assert f"Serving model {second_model} as version" in out
    assert len(os.listdir(config.serving_model_dir)) == len(after) + 1


def _line_reader(stream) -> queue.Queue:
    """A child's output lines, read by one thread as they come (a pipe read directly could block a test)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def _line_matching(lines: queue.Queue, pattern: str, timeout: float) -> re.Match:
    """The first line (from a _line_reader) that matches; fail with what was read after `timeout` s."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{''.join(seen)[-3000:]}")


@contextlib.contextmanager
def _tensorboards(env: dict, *commands):
    """Documented commands that start TensorBoard, each in its own process group until the block ends, all
    started at once: yields, for each, what it said about the logs it serves and a GET of TensorBoard's
    HTTP API as JSON."""
    processes = [command.start(env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True) for command in commands]
    try:
        served = []
        for process in processes:
            output = _line_reader(process.stdout)
            said = _line_matching(output, r"TensorBoard on (?:the Trainer's logs of run (\S+): )?(\S+)$", 120)
            url = _line_matching(output, r"TensorBoard \S+ at (http://\S+/) ", 180).group(1)
            served.append((said.groups(), _json_getter(url)))
        yield served
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def _json_getter(url: str):
    """GET a path of TensorBoard's API as JSON, once TensorBoard has read the logs (it starts serving first)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy

    def get(path: str):
        with direct.open(url + path, timeout=60) as response:
            return json.loads(response.read())

    deadline = time.monotonic() + 120
    while not get("data/plugin/scalars/tags") and time.monotonic() < deadline:
        time.sleep(1)
    return get


def test_make_tensorboard_serves_the_newest_runs_training_scalars(store):
    """`make tensorboard` as docs/pipeline.md shows it, on a free port (TENSORBOARD_ARGS, as the doc says); the
    scalars read back over its HTTP API."""
    env, config, summaries = store
    if Path(sys.prefix).resolve() != (PROJECT_ROOT / ".venv").resolve():
        pytest.skip("make uses the project's .venv, and these tests run in another environment")
    # Other tests on this store may add runs after the fixture's (their Trainer cached): the newest run is
    # whichever came last, and its logs are those of the last model trained.
    newest = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name).run_id
    model_run = summaries[1].component("Trainer").output("model_run").uri
    history = json.loads(Path(model_run, "history.json").read_text())
    make_tensorboard = documented("docs/pipeline.md", "make tensorboard")
    with _tensorboards({**env, "TENSORBOARD_ARGS": "--port 0"}, make_tensorboard) as [(said, get)]:
        assert said == (newest, model_run)
        tags = get("data/plugin/scalars/tags")
        assert set(tags) == {"train", "validation"}
        assert set(tags["train"]) == {"epoch_loss", "epoch_learning_rate"}
        assert set(tags["validation"]) == {"epoch_loss", "epoch_auc"}
        for run, tag, key in [("train", "epoch_loss", "loss"), ("validation", "epoch_auc", "val_auc"),
                              ("validation", "epoch_loss", "val_loss")]:
            points = get(f"data/plugin/scalars/scalars?run={run}&tag={tag}")  # [[wall time, step, value]]
            assert [step for _, step, _ in points] == list(range(len(history[key])))
            assert [value for _, _, value in points] == pytest.approx(history[key], rel=1e-6)


def test_pipeline_tensorboard_serves_the_newest_run_another_run_or_every_run(store):
    """The `pipeline tensorboard` commands the docs show, side by side: the newest run that trained (on
    TensorBoard's default port or the next free one), the first run by name, and every run's logs (the
    test's outputs in place of tfx_output/)."""
    env, config, summaries = store
    newest = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name).run_id
    first, last = (summary.component("Trainer").output("model_run").uri for summary in summaries)
    another = documented("docs/pipeline.md", ".venv/bin/pipeline tensorboard 2026-11-28T03:20:54.637816 --port 6007")
    every = documented("docs/pipeline.md",
                       ".venv/bin/pipeline tensorboard --logdir tfx_output/pipelines/chicago-taxi/Trainer/model_run")
    with _tensorboards(env, documented("docs/runs-lineage-reports.md", "pipeline tensorboard"),
                       another.replace("2026-11-28T03:20:54.637816", summaries[0].run_id).replace("6007", "0"),
                       every.replace("tfx_output", config.output_root)) as served:
        (said_newest, get_newest), (said_another, get_another), (said_every, get_every) = served
        assert said_newest == (newest, last) and set(get_newest("data/plugin/scalars/tags")) == {"train", "validation"}
        assert said_another == (summaries[0].run_id, first)
        assert set(get_another("data/plugin/scalars/tags")) == {"train", "validation"}
        assert said_every == (None, str(Path(first).parent))
        assert set(get_every("data/plugin/scalars/tags")) == {
            f"{Path(uri).name}/{split}" for uri in (first, last) for split in ("train", "validation")}


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _cells(page: str, first: str) -> list[list[str]]:
    """The cells of every table row of the page whose first cell is `first`."""
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page)]
    return [[html.unescape(cell) for cell in row] for row in rows if row and html.unescape(row[0]) == first]


def test_report_is_self_contained_html_that_a_browser_renders(store, tmp_path_factory, sample_rows):
    from pipeline.governance import report as report_module

    env, _, summaries = store
    out_dir = tmp_path_factory.mktemp("report")
    report = out_dir / "report.html"
    command = documented("docs/runs-lineage-reports.md", "pipeline report latest -o run.html")
    command.replace("run.html", str(report)).run(env)
    page = report.read_text()
    auc = summaries[1].eval_metrics["auc"]
    assert f"{auc:.4f}" in page
    assert "binary_accuracy" in page and "payment_type = " in page
    assert "BLESSED" in page and "at least 0.6" in page
    # Every threshold per slice, with the baseline's value and the change (PIPELINE_BLESSING_MAX_DECREASE=1.0,
    # and conftest's SMALL_RUN_SLICE_THRESHOLDS for Credit Card trips).
    thresholds = [row for row in _cells(page, "auc") if len(row) == len(report_module.THRESHOLD_COLUMNS)]
    assert [row[1:3] for row in thresholds] == [
        ["overall", "at least 0.6"], ["overall", "a decrease of at most 1 against the baseline"],
        ["payment_type=Credit Card", "at least 0"],
        ["payment_type=Credit Card", "a decrease of at most 1 against the baseline"],
    ]
    card_auc = summaries[1].blessing_checks[2].value
    assert [row[3] for row in thresholds] == [f"{auc:.4f}"] * 2 + [f"{card_auc:.4f}"] * 2
    for row in thresholds:
        assert re.fullmatch(r"0\.\d{4}", row[4]), row  # the baseline's value, on every row
        if row[2].startswith("at least"):
            assert row[5:] == ["-", "pass"], row
        else:  # the change of the values as shown, but for their rounding
            assert re.fullmatch(r"[+-]0\.\d{4}", row[5]) and row[6] == "pass", row
            assert float(row[5]) == pytest.approx(float(row[3]) - float(row[4]), abs=1.5e-4), row
    assert "Baseline: model " in page and "No baseline" not in page
    # The first run's report says there was no baseline, and that the change thresholds did not apply.
    first = out_dir / "first.html"
    run_cli(["report", summaries[0].run_id, "-o", str(first)], env)
    first_page = first.read_text()
    assert "No baseline: no model was serving, so this is the first model judged" in first_page
    assert [row[4:] for row in _cells(first_page, "auc") if len(row) == len(report_module.THRESHOLD_COLUMNS)] == [
        ["-", "-", "pass"], ["-", "-", "not applied (no baseline)"]] * 2

    # Cash trips record no tip: on the sample's eval split that slice (and a few small ones) is all one
    # class, where TFMA reports an AUC of 0.0 (or NaN). The report says there is none.
    by_slice = report_module.metrics_by_slice(summaries[1].component("Evaluator").output("evaluation").uri)
    one_class = [name for name, metrics in by_slice.items() if metrics.get("mean_label") in (0.0, 1.0)]
    assert "payment_type = Cash" in one_class
    for name in one_class:
        assert by_slice[name]["auc"] == 0.0 or math.isnan(by_slice[name]["auc"])
        assert _cells(page, name)[0][1] == "n/a (one class)"
    # ... and the warning box under the metrics names it as trivial; the outcome comes first.
    assert "payment_type = Cash: trivial, its labels are all one class" in page
    assert page.index("<h2>Outcome</h2>") < page.index("<h2>Components</h2>") and '<p class="ok">Blessed' in page

    # An empty CSV cell is missing: the empty `company` cells of the sample, over both splits (the table of
    # every statistic, under the views).
    empty = sum(1 for row in sample_rows if row["company"] == "")
    company = _cells(page[page.index("Every statistic per split"):], "company")
    assert len(company) == 2  # train and eval
    missing = [int(re.match(r"([0-9,]+) \(", row[3]).group(1).replace(",", "")) for row in company]
    present = [int(row[2].replace(",", "")) for row in company]
    assert sum(missing) == empty > 0 and sum(present) == len(sample_rows) - empty
    for row, m, p in zip(company, missing, present):
        assert row[3] == f"{m:,} ({m / (m + p):.1%})"
    assert page.count("data:image/svg+xml;base64,") >= 2  # the charts of a metric per slice feature
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the report must not load anything"

    # The training curves drawn are the scalars TensorBoard's own reader finds in the Trainer's logs.
    model_run = summaries[1].component("Trainer").output("model_run").uri
    assert {(run, tag): [tuple(point) for point in points]
            for run, tags in artifact_files.training_curves(model_run).items() for tag, points in tags.items()
            } == tensorboard_scalars(model_run)

    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (scripts/install_os_packages.sh installs it as root)")
    screenshot = out_dir / "report.png"
    boxes = _view_boxes(chromium, report, out_dir)
    result = subprocess.run(
        [*_headless(chromium, out_dir), f"--window-size={PAGE_WIDTH},{boxes['height']}",
         f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CONSOLE(" not in result.stderr, result.stderr[-3000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000
    print(f"report screenshot for review: {screenshot}")
    _check_views_in_screenshot(screenshot, boxes["views"])


def _headless(chromium: str, out_dir: Path) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={out_dir / 'profile'}", "--enable-logging=stderr"]


PAGE_WIDTH = 1400
# Written into a copy of the report (the report itself runs no script): each view's box on the page, and the
# smallest text in its drawings as displayed (an SVG's font size times the scale it is drawn at).
_MEASURE = """<script>
window.addEventListener("load", function () {
  var views = {};
  document.querySelectorAll("figure.view").forEach(function (figure) {
    var box = figure.getBoundingClientRect(), smallest = null;
    figure.querySelectorAll("svg").forEach(function (svg) {
      var scale = svg.getBoundingClientRect().width / (svg.viewBox.baseVal.width || svg.width.baseVal.value);
      svg.querySelectorAll("text").forEach(function (text) {
        var px = parseFloat(text.getAttribute("font-size")) * scale;
        smallest = smallest === null ? px : Math.min(smallest, px);
      });
    });
    views[figure.id] = {x: box.left + scrollX, y: box.top + scrollY, width: box.width, height: box.height,
                        smallest_text_px: smallest};
  });
  var out = document.createElement("pre");
  out.id = "measured";
  out.style.position = "absolute";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, views: views});
  document.body.appendChild(out);
});
</script>"""


def _view_boxes(chromium: str, report: Path, out_dir: Path) -> dict:
    """Where Chromium lays out each view of the report (a copy with _MEASURE added), read from its DOM."""
    measured = out_dir / "measured.html"
    measured.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
    result = subprocess.run([*_headless(chromium, out_dir), f"--window-size={PAGE_WIDTH},2000",
                             "--virtual-time-budget=5000", "--dump-dom", measured.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = re.search(r'<pre id="measured"[^>]*>(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    return json.loads(html.unescape(found.group(1)))


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _check_views_in_screenshot(screenshot: Path, views_found: dict) -> None:
    """Each view the report must show is on the screenshot where the browser laid it out: its box drawn on
    (not blank) and holding its own colours (a line's, a bar's, a box's), its text at least 11 px."""
    candidate, baseline, eval_colour = _rgb(views.CANDIDATE), _rgb(views.BASELINE), _rgb(views.EVAL)
    expected = {  # view id: colours that must appear in it
        "view-confusion-matrix-overall": ["blue"],  # its shades: the share of each row
        "view-roc-overall": [candidate, baseline],  # the second run has a baseline
        "view-pr-overall": [candidate, baseline],
        "view-calibration-overall": [candidate, baseline],
        "view-confusion-matrix-payment_type-Credit-Card": ["blue"],
        "view-roc-payment_type-Credit-Card": [candidate, baseline],
        "view-slices-vs-baseline": [],
        "view-statistics": [candidate, eval_colour, _rgb(views.PREVIOUS)],  # train, eval, the data before
        "view-training-curves": [candidate, eval_colour],  # train and validation loss
        "view-lineage": [_rgb("#fde9cf")],  # the baseline model's box
    }
    image = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int16)
    for view_id, colours in expected.items():
        assert view_id in views_found, (view_id, sorted(views_found))
        box = views_found[view_id]
        assert box["width"] > 100 and box["height"] > 100, (view_id, box)
        left, top = round(box["x"]), round(box["y"])
        pixels = image[top:top + round(box["height"]), left:left + round(box["width"])].reshape(-1, 3)
        drawn = np.mean(pixels.min(axis=1) < 200)
        assert drawn > 0.02, (view_id, drawn)  # not a blank box
        for colour in colours:
            if colour == "blue":
                near = np.sum(pixels[:, 2] - pixels[:, 0] > 60)
            else:
                near = np.sum(np.all(np.abs(pixels - np.array(colour)) <= 12, axis=1))
            assert near >= 20, (view_id, colour, near)
        if box["smallest_text_px"] is not None:
            assert box["smallest_text_px"] >= 11, (view_id, box)
