"""The walkthrough notebook, executed headless in a real Jupyter kernel on a sample of the data.

The notebook must run top to bottom in a fresh kernel and show what it promises; notebooks are
committed without outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from pipeline.governance import report, views
from tests.conftest import PROJECT_ROOT, small_run_env
from tests.pipeline.governance.test_views import _row_cells
from tests.docs.commands import documented

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
WALKTHROUGH = NOTEBOOKS_DIR / "pipeline_walkthrough.ipynb"
CELL_TIMEOUT_S = 600


def _committed_notebooks() -> list[Path]:
    return sorted(
        path for path in NOTEBOOKS_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in path.parts
    )


def test_notebooks_are_committed_without_outputs():
    assert WALKTHROUGH in _committed_notebooks()
    for path in _committed_notebooks():
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        dirty = [
            cell.get("id", index)
            for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
        ]
        assert not dirty, (
            f"{path.relative_to(PROJECT_ROOT)} has outputs in cells {dirty}; clear them with "
            f"`.venv/bin/jupyter nbconvert --clear-output --inplace {path.relative_to(PROJECT_ROOT)}`"
        )


class ExecutedNotebook:
    def __init__(self, notebook, output_root: Path, seconds: float):
        self.notebook = notebook
        self.output_root = output_root
        self.seconds = seconds

    def outputs(self, cell_id: str, mime: str) -> str:
        """Everything the cell showed as `mime` ("stream" for printed text), joined."""
        cell = next(cell for cell in self.notebook.cells if cell.get("id") == cell_id)
        parts = []
        for output in cell.outputs:
            if mime == "stream" and output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif output.output_type in ("display_data", "execute_result") and mime in output.data:
                parts.append(output.data[mime])
        return "\n".join(parts)


def execute_walkthrough(env: dict[str, str], output_root: Path) -> ExecutedNotebook:
    """Run the walkthrough top to bottom in a fresh kernel; any cell error fails the test here."""
    notebook = nbformat.read(WALKTHROUGH, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    # The kernel inherits this process's environment.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        start = time.monotonic()
        client.execute()
        seconds = time.monotonic() - start
    print(f"\nThe walkthrough notebook executed in {seconds:.0f}s")
    return ExecutedNotebook(notebook, output_root, seconds)


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory, sample_data_dir) -> tuple[dict[str, str], Path]:
    """The sample with few training steps, everything written to the notebook's own folder."""
    output_root = tmp_path_factory.mktemp("notebook_output")
    env = small_run_env(sample_data_dir, output_root)
    env.pop("PIPELINE_OUTPUT_ROOT")
    env["PIPELINE_NOTEBOOK_OUTPUT_ROOT"] = str(output_root)
    return env, output_root


@pytest.fixture(scope="module")
def executed(notebook_env) -> ExecutedNotebook:
    """The walkthrough's first run against an empty folder."""
    return execute_walkthrough(*notebook_env)


@pytest.fixture(scope="module")
def re_executed(notebook_env, executed) -> ExecutedNotebook:
    """The walkthrough run again against the same folder and store, nothing changed."""
    return execute_walkthrough(*notebook_env)


@pytest.mark.e2e
def test_notebook_runs_every_component_into_its_own_folder(executed):
    configuration = executed.outputs("configuration", "stream")
    root = executed.output_root
    assert f"Pipeline root:   {root / 'pipelines' / 'chicago-taxi'}" in configuration
    assert f"ML Metadata:     {root / 'metadata' / 'chicago-taxi' / 'metadata.db'}" in configuration
    assert "60 steps in 1 epoch(s), 4 eval steps" in configuration
    assert (root / "metadata" / "chicago-taxi" / "metadata.db").is_file()
    for node in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "CuratedSchemaImporter",
                 "ExampleValidator", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert (root / "pipelines" / "chicago-taxi" / node).is_dir(), node


@pytest.mark.e2e
def test_notebook_checks_the_input_first_and_passes_the_gate(executed, re_executed, sample_rows, sample_data_dir):
    configuration = executed.outputs("configuration", "stream")
    # Every runner's first step, with its "Input:" line (pipeline/runners/lifecycle.py's check_input).
    assert f" Input: {sample_data_dir} (files data.csv; span 0; 1 file, {len(sample_rows):,} rows)" in configuration
    gate = executed.outputs("data-gate", "stream")
    assert "nothing to compare with yet" in gate and "The data passed the gate." in gate
    again = re_executed.outputs("data-gate", "stream")
    assert "Drift checked against the data that passed the gate before: " in again
    assert "The data passed the gate." in again
    # The report's statistics view: train beside eval, and beside the data the gate compared with once there is.
    first_view, again_view = executed.outputs("data-gate", "text/html"), re_executed.outputs("data-gate", "text/html")
    assert 'id="view-statistics"' in first_view and "No earlier statistics" in first_view
    assert "previous train" not in first_view and "previous train" in again_view
    assert again_view.endswith(views.statistics_views(
        _statistics_uri(executed.output_root), _previous_statistics_uri(again)))


@pytest.mark.e2e
def test_notebook_stops_at_the_pre_flight_check_on_a_bad_span(notebook_env, tmp_path):
    env, _ = notebook_env
    data = tmp_path / "spans"
    (data / "span-1").mkdir(parents=True)
    (data / "span-1" / "data.csv").write_bytes(b"")
    output_root = tmp_path / "bad_output"
    env = {**env, "PIPELINE_DATA_ROOT": str(data), "PIPELINE_INPUT_PATTERN": "span-{SPAN}/*.csv",
           "PIPELINE_NOTEBOOK_OUTPUT_ROOT": str(output_root)}
    with pytest.raises(CellExecutionError) as error:
        execute_walkthrough(env, output_root)
    message = str(error.value)
    assert "ConfigError" in message
    assert f"input file {data / 'span-1' / 'data.csv'} (span 1) is empty" in message
    # Stopped in the configuration cell, before any component: no store, no artifact.
    assert not (output_root / "metadata").exists() and not (output_root / "pipelines").exists()


def _previous_statistics_uri(gate_output: str) -> str:
    prefix = "Drift checked against the data that passed the gate before: "
    return next(line for line in gate_output.splitlines() if line.startswith(prefix)).removeprefix(prefix)


def _statistics_uri(output_root: Path) -> str:
    (uri,) = (output_root / "pipelines" / "chicago-taxi" / "StatisticsGen" / "statistics").iterdir()
    return str(uri)


@pytest.mark.e2e
def test_notebook_shows_statistics_schema_and_anomalies(executed):
    statistics = executed.outputs("statistics-gen", "text/html")
    # The run report's tables of the same statistics, and TFDV's Facets view of train beside eval.
    assert report.statistics_section(_statistics_uri(executed.output_root)) in statistics
    assert "facets-overview" in statistics
    assert "Rows per split: {'eval': " in executed.outputs("statistics-gen", "stream")

    schema = executed.outputs("schema", "text/html")
    assert "<table" in schema and "'payment_type'" in schema and "Credit Card" in schema

    anomalies = executed.outputs("example-validator", "text/html")
    assert "'train' split" in anomalies and "No anomalies found." in anomalies
    assert "Anomalies against the curated schema: 0" in executed.outputs("example-validator", "stream")


@pytest.mark.e2e
def test_notebook_cells_show_no_noise_and_name_the_full_log(executed):
    """No cell shows a red box (stderr): TensorFlow's C++ lines, Beam's and absl's warnings go to the log
    file the configuration cell names."""
    noisy = {
        cell.get("id"): output.text
        for cell in executed.notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "stream" and output.name == "stderr"
    }
    assert not noisy, noisy
    (log_file,) = [line.split(":", 1)[1].strip() for line in executed.outputs("configuration", "stream").splitlines()
                   if line.startswith("Full log:")]
    assert "Running executor for Trainer" in Path(log_file).read_text()


@pytest.mark.e2e
def test_notebook_statistics_show_as_tables_in_an_html_export_opened_offline(executed, tmp_path):
    """Exported as a user shares it and opened in a browser without network: Facets cannot load its
    code, so the statistics show as tables, never as a blank frame."""
    page = tmp_path / "walkthrough.html"
    page.write_text(HTMLExporter().from_notebook_node(executed.notebook)[0])
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (scripts/install_os_packages.sh installs it as root)")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    dom = result.stdout
    tables = re.search(r'<div class="tables-box"( style="[^"]*")?>', dom)
    assert tables and tables.group(1) is None, "the statistics tables are hidden"
    assert "<table" in dom[tables.end():]
    assert '<div class="facets-box" style="height: 0; overflow: hidden">' in dom


@pytest.mark.e2e
def test_notebook_shows_transformed_examples_and_training_history(executed):
    transformed = executed.outputs("transform", "text/html")
    assert "<table" in transformed
    assert "fare_xf" in transformed and "payment_type_xf" in transformed and "big_tipper" in transformed

    history = executed.outputs("trainer", "text/html")
    assert "val_auc" in history and "val_loss" in history
    (model_run,) = (executed.output_root / "pipelines" / "chicago-taxi" / "Trainer" / "model_run").iterdir()
    assert views.training_views(str(model_run)) in history  # the report's curves, from the TensorBoard logs
    assert 'id="view-training-curves"' in history and "<circle" in history  # one epoch: a point per curve


@pytest.mark.e2e
def test_notebook_shows_eval_metrics_blessing_and_push(executed):
    assert "Baseline model: none (no other model was pushed" in executed.outputs("resolver", "stream")

    overall = executed.outputs("evaluator", "stream")
    auc_line = next(line for line in overall.splitlines() if line.strip().startswith("auc "))
    assert float(auc_line.split()[1]) > 0.6
    per_slice = executed.outputs("evaluator", "text/html")
    assert "payment_type" in per_slice and "trip_start_day" in per_slice and "example_count" in per_slice
    # The report's table and views, from the same functions: a one-class slice has no AUC, counts are whole,
    # an absent value is "-", never NaN or 0.000000.
    (evaluation,) = (executed.output_root / "pipelines" / "chicago-taxi" / "Evaluator" / "evaluation").iterdir()
    assert report.metrics_section(str(evaluation), ["auc"], "auc", ["not a big tipper", "big tipper"]) in per_slice
    cash = _row_cells(per_slice, "payment_type = Cash")
    assert cash[1] == "n/a (one class)" and re.fullmatch(r"[0-9]+", cash[3]) and "n/a" in cash
    assert "NaN" not in per_slice and "0.000000" not in per_slice
    for view in ("confusion-matrix-overall", "roc-overall", "pr-overall", "calibration-overall",
                 "confusion-matrix-payment_type-Credit-Card", "slices-vs-baseline"):
        assert f'id="view-{view}"' in per_slice, view
    assert "not a big tipper" in per_slice.split('id="view-confusion-matrix-overall"')[1]  # the task's class names

    blessing = executed.outputs("blessing", "stream").splitlines()
    assert blessing[0] == "Blessed: True"
    # Every threshold on every slice, as a run's summary lists them (conftest's small_run_env sets the bounds).
    assert re.fullmatch(r"  auc \(payment_type=Credit Card\) 0\.\d{4}, at least 0: pass", blessing[3]), blessing
    assert blessing[4] == ("  auc (payment_type=Credit Card): a decrease of at most 1 against the baseline: not "
                           "applied (no baseline: the first model judged)"), blessing
    pushed = executed.outputs("pusher", "stream")
    assert pushed.startswith("Pushed to: ")
    assert Path(pushed.removeprefix("Pushed to: ").strip(), "saved_model.pb").is_file()


@pytest.mark.e2e
def test_notebook_traces_the_model_to_its_examples_and_schema(executed):
    printed = executed.outputs("lineage", "stream")
    assert "(from CsvExampleGen)" in printed
    assert "(from CuratedSchemaImporter)" in printed
    table = executed.outputs("lineage", "text/html")
    for producer in ("CsvExampleGen", "CuratedSchemaImporter", "Transform"):
        assert producer in table
    graph = table.split('id="view-lineage"')[1].split("</figure>")[0]  # the report's drawing
    assert "DataGate" in graph and "Trainer" in graph and "Evaluator" in graph


@pytest.mark.e2e
def test_notebook_runs_again_against_the_same_folder_from_the_cache(executed, re_executed):
    # The baseline is the one the cached model was first compared with (none), so its evaluation is cached.
    assert "Baseline model: none (no other model was pushed" in re_executed.outputs("resolver", "stream")
    assert "Blessed: True" in re_executed.outputs("blessing", "stream")
    # A Pusher that ran again would have written a new version folder: the same one means the cache.
    pushed = executed.outputs("pusher", "stream").strip()
    assert pushed.startswith("Pushed to: ")
    assert re_executed.outputs("pusher", "stream").strip() == pushed


@pytest.mark.e2e
def test_make_notebook_serves_the_walkthrough_in_jupyterlab(notebook_env, tmp_path):
    """`make notebook` as docs/runners.md shows it: JupyterLab starts on the walkthrough and serves it. The
    test's Jupyter configuration opens no browser and allows the root user (as which CI runs); the server is
    stopped with its process group."""
    env, _ = notebook_env
    config_dir = tmp_path / "jupyter"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"open_browser": False, "allow_root": True}}))
    env = {**env, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    process = documented("docs/runners.md", "make notebook").start(
        env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        seen, deadline = [], time.monotonic() + 120
        while not (found := re.search(r"(http://(?:localhost|127\.0\.0\.1):\d+/)lab\S*\?token=(\w+)", "".join(seen))):
            assert process.poll() is None and time.monotonic() < deadline, "".join(seen)[-3000:]
            seen.append(process.stdout.readline())
        url, token = found.groups()
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        request = urllib.request.Request(f"{url}api/contents/{WALKTHROUGH.name}?content=0",
                                         headers={"Authorization": f"token {token}"})
        while True:
            try:
                with direct.open(request, timeout=60) as answer:
                    served = json.loads(answer.read())
                break
            except urllib.error.URLError:  # It names its address a moment before it listens there.
                assert process.poll() is None and time.monotonic() < deadline, "".join(seen)[-3000:]
                time.sleep(0.5)
        assert (served["type"], served["path"]) == ("notebook", WALKTHROUGH.name)
        assert f"Serving notebooks from local directory: {NOTEBOOKS_DIR}" in "".join(seen)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
