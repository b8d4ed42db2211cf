"""The report's sections, rendered from what TFDV and TFMA produce, read as a person reads them.

The whole report from real runs is checked in test_cli.py (the `report` command, in a browser); these tests
render single sections from statistics computed by TFDV itself, TFMA-shaped metrics and the eval config the
pipeline builds, so each case is exact and fast.
"""

from __future__ import annotations

import base64
import html
import math
import re
import shutil

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tfx_bsl.coders import example_coder

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs, logs
from pipeline.components import data_gate
from pipeline.governance import report, runs
from pipeline.metadata import run_record
from tests.tfma_evaluations import evaluator_run


def _text(page: str) -> str:
    """The page's text with its embedded SVG images' text included, tags dropped."""
    images = [base64.b64decode(m).decode() for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", page)]
    return html.unescape(re.sub(r"<[^>]+>", "|", page + "".join(images)))


def _row(page: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with `first_cell`."""
    for row in re.findall(r"<tr>(.*?)</tr>", page):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in the page")


def _cell(page: str, first_cell: str, column: str) -> str:
    """The cell of the row starting with `first_cell` under the header `column` (of the page's first table)."""
    header = re.search(r"<thead><tr>(.*?)</tr>", page).group(1)
    columns = [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", header)]
    return _row(page, first_cell)[columns.index(column)]


# ---------------------------------------------------------------------------------------------- statistics


def _example(values: dict[str, list]) -> bytes:
    """A tf.Example as CsvExampleGen writes a CSV row: an empty cell is a feature with an empty list."""
    example = tf.train.Example()
    for name, cell in values.items():
        feature = example.features.feature[name]
        if name == "count":
            feature.int64_list.value.extend(cell)
        else:
            feature.bytes_list.value.extend(v.encode() for v in cell)
    return example.SerializeToString()


@pytest.fixture(scope="module")
def statistics_uri(tmp_path_factory) -> str:
    """TFDV's statistics of 10 rows, as StatisticsGen computes them (tf.Examples decoded to Arrow), in a
    StatisticsGen artifact's layout: `owner` empty in 3 rows and absent from 1, `count` always set, `tags`
    (several values per row) empty in 4 rows."""
    examples = []
    for i in range(10):
        row = {"owner": [] if i < 3 else [f"owner {i % 2}"], "count": [i], "tags": [] if i < 4 else ["a", "b"]}
        if i == 9:
            del row["owner"]
        examples.append(_example(row))
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(examples)
    statistics = stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())
    uri = tmp_path_factory.mktemp("statistics")
    (uri / "Split-eval").mkdir()
    (uri / "Split-eval" / "FeatureStats.pb").write_bytes(statistics.SerializeToString())
    return str(uri)


def test_an_empty_cell_counts_as_missing(statistics_uri):
    page = report.statistics_section(statistics_uri)
    # TFDV itself counts the empty cells as present: only the absent feature is "missing" to it.
    [stats] = report.artifact_files.load_statistics(statistics_uri).values()
    owner = next(f for f in stats.datasets[0].features if f.path.step[0] == "owner")
    assert owner.string_stats.common_stats.num_missing == 1
    assert owner.string_stats.common_stats.num_non_missing == 9
    # The report counts what a person means: 3 empty cells and 1 absent value of 10 rows.
    assert _row(page, "owner")[1:4] == ["string", "6", "4 (40.0%)"]
    assert _row(page, "count")[1:4] == ["number", "10", "0 (0.0%)"]
    # Several values per row: TFDV keeps only quantiles of values per row, so the count is an estimate.
    assert _row(page, "tags")[1:4] == ["string", "6", "~4 (40.0%)"]
    assert "an empty CSV cell included" in page


# ------------------------------------------------------------------------------------------------ metrics

# Metrics per slice as TFMA 0.47 writes them for a binary task (read back by report.metrics_by_slice): on
# a slice whose labels are all one class, AUC is 0.0 and precision and recall NaN (test_cli.py checks this
# on a real evaluation).
BY_SLICE = {
    "Overall": {"example_count": 100.0, "auc": 0.91, "mean_label": 0.3, "precision": 0.8, "recall": 0.7},
    "kind = both": {"example_count": 60.0, "auc": 0.85, "mean_label": 0.5, "precision": 0.8, "recall": 0.7},
    "kind = none": {"example_count": 30.0, "auc": 0.0, "mean_label": 0.0, "precision": math.nan,
                    "recall": math.nan},
    "kind = all": {"example_count": 9.0, "auc": 0.0, "mean_label": 1.0, "precision": 1.0, "recall": 1.0},
    "kind = reversed": {"example_count": 2.0, "auc": 0.0, "mean_label": 0.5, "precision": 0.0, "recall": 0.0},
    "kind = undefined": {"example_count": 1.0, "auc": math.nan, "mean_label": 0.5, "precision": 0.0, "recall": 0.0},
    "kind = absent": {"example_count": 1.0, "mean_label": 0.0},
}


def test_a_slice_of_one_class_has_no_auc():
    page = report.metrics_html(BY_SLICE, ["auc"])

    def cell(slice_name: str, metric: str) -> str:
        return _cell(page, slice_name, metric)

    for one_class in ("kind = none", "kind = all", "kind = absent"):
        assert cell(one_class, "auc") == "n/a (one class)"
    assert cell("kind = both", "auc") == "0.8500"
    assert cell("kind = reversed", "auc") == "0"  # both classes, ranked upside down: a real 0
    assert cell("kind = undefined", "auc") == "n/a"
    assert cell("kind = none", "precision") == "n/a" and cell("kind = none", "recall") == "n/a"
    assert "nan" not in _text(page).lower().replace("n/a", "")

    # The chart draws no bar for them, and says why instead of a value.
    chart = _text(page[page.index("<img"):])
    assert "n/a (one class) (n=30)" in chart and "n/a (one class) (n=9)" in chart
    assert "n/a (one class) (n=1)" in chart and "n/a (n=1)" in chart
    assert "0.850 (n=60)" in chart and "0.000 (n=2)" in chart
    assert chart.count("0.000") == 1


def test_without_mean_label_an_undefined_recall_means_no_positive_label():
    by_slice = {
        "Overall": {"auc": 0.9, "recall": 0.5},
        "kind = none": {"auc": 0.0, "recall": math.nan},
        "kind = some": {"auc": 0.0, "recall": 0.0},
        # Per-class metrics of a multi-class task: class 2 against the rest.
        "kind = no twos": {"auc (class 2)": 0.0, "recall (class 2)": math.nan, "auc (class 1)": 0.7,
                           "recall (class 1)": 0.5},
    }
    page = report.metrics_html(by_slice, [])
    assert _cell(page, "kind = none", "auc") == "n/a (one class)"
    assert _cell(page, "kind = some", "auc") == "0"
    assert _cell(page, "kind = no twos", "auc (class 1)") == "0.7000"
    assert _cell(page, "kind = no twos", "auc (class 2)") == "n/a (one class)"
    assert _cell(page, "kind = no twos", "auc") == ""


def test_trivial_slices_and_slices_far_below_overall_get_a_warning_box():
    by_slice = {
        "Overall": {"example_count": 1000.0, "auc": 0.9, "mean_label": 0.4},
        "kind = one class": {"example_count": 30.0, "auc": 0.0, "mean_label": 0.0},
        "kind = nearly one class": {"example_count": 200.0, "auc": 0.88, "mean_label": 0.97},
        "kind = perfect": {"example_count": 4.0, "auc": 1.0, "mean_label": 0.5},
        "kind = far below": {"example_count": 120.0, "auc": 0.71, "mean_label": 0.5},
        "kind = a little below": {"example_count": 300.0, "auc": 0.81, "mean_label": 0.5},
    }
    assert report.slice_warnings(by_slice, "auc") == [
        "kind = far below: far below overall, auc 0.7100 against 0.9000 overall, 0.1900 lower (120 examples).",
        "kind = nearly one class: trivial, one class holds 97.0% of its rows, so a constant guess is right on most "
        "of them (auc 0.8800; 200 examples).",
        "kind = one class: trivial, its labels are all one class (auc n/a (one class); 30 examples).",
        "kind = perfect: trivial, a perfect auc (1; 4 examples).",
    ]
    page = report.metrics_html(by_slice, ["auc"], "auc")
    box = _text(page[page.index('<div class="warn">'):page.index("</div>")])
    assert "Slices to look at twice" in box and "more than 0.1 under the overall auc" in box
    assert "kind = far below: far below overall" in box and "a little below" not in box
    # Without a blessing metric (or with nothing to say) there is no box.
    assert 'class="warn"' not in report.metrics_html(by_slice, ["auc"])
    assert 'class="warn"' not in report.metrics_html({"Overall": by_slice["Overall"]}, ["auc"], "auc")


def test_a_regression_has_no_class_warnings_and_a_slice_whose_error_is_far_above_overall_is_named():
    # A regression's mean label is a mean fare, not a share of a class; its blessing metric is an error.
    by_slice = {
        "Overall": {"example_count": 1000.0, "mean_absolute_error": 1.9933, "mean_label": 11.7},
        "kind = mostly zero": {"example_count": 40.0, "mean_absolute_error": 1.0, "mean_label": 0.0},
        "kind = far worse": {"example_count": 12.0, "mean_absolute_error": 5.1, "mean_label": 10.5},
        "kind = a little worse": {"example_count": 300.0, "mean_absolute_error": 2.6, "mean_label": 14.6},
    }
    assert report.slice_warnings(by_slice, "mean_absolute_error", classification=False) == [
        "kind = far worse: far worse than overall, mean_absolute_error 5.1000 against 1.9933 overall (12 examples).",
    ]
    page = report.metrics_html(by_slice, ["mean_absolute_error"], "mean_absolute_error", classification=False)
    box = _text(page[page.index('<div class="warn">'):page.index("</div>")])
    assert "more than 50% above the overall one" in box and "one class" not in box
    # Its chart's bars are drawn to the largest value, not cut at 1.
    chart = report.bar_chart_svg("mae", ["a", "b"], [2.0, 5.1], ["", ""], 2.0)
    assert 'width="360.0"' in chart and 'width="141.2"' in chart


# ------------------------------------------------------------------------------------------------ outcome


def _store(tmp_path) -> tuple[metadata_store_pb2.ConnectionConfig, metadata_store.MetadataStore]:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(tmp_path / "metadata.db")
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return connection, metadata_store.MetadataStore(connection)


def _run(store, nodes: list[tuple], record: dict | None = None, run_id: str = "r") -> runs.RunInfo:
    """Run `run_id` of pipeline `p` as TFX records it: each (node, state, {key: (type, properties)}) an execution
    in the pipeline's, the node's and the run's contexts with its outputs; `record` (unprefixed) on the run's
    context as lifecycle writes it."""
    def context(type_name: str, name: str) -> metadata_store_pb2.Context:
        found = store.get_context_by_type_and_name(type_name, name)
        if found is None:
            type_id = store.put_context_type(metadata_store_pb2.ContextType(name=type_name))
            [found] = store.get_contexts_by_id(store.put_contexts([metadata_store_pb2.Context(type_id=type_id,
                                                                                              name=name)]))
        return found

    pipeline, run = context("pipeline", "p"), context("pipeline_run", run_id)
    for node, state, outputs in nodes:
        node_context = context("node", f"p.{node}")
        written = []
        for key, (type_name, properties) in outputs.items():
            artifact = metadata_store_pb2.Artifact(
                type_id=store.put_artifact_type(metadata_store_pb2.ArtifactType(name=type_name)), uri=f"/out/{key}")
            for name, value in properties.items():
                field = "int_value" if isinstance(value, int) else "string_value"
                setattr(artifact.custom_properties[name], field, value)
            event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
            event.path.steps.add().key = key
            written.append((artifact, event))
        execution = metadata_store_pb2.Execution(
            type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name=node)),
            last_known_state=getattr(metadata_store_pb2.Execution, state))
        store.put_execution(execution, written, [pipeline, node_context, run])
    if record:
        run_record.write_record(store, run, {run_record.PREFIX + k: v for k, v in record.items()})
    return runs.find_run(store, "p", run_id)


UP_TO_THE_GATE = [(node, "COMPLETE", {}) for node in ("CsvExampleGen", "StatisticsGen", "ExampleValidator")]
DRIFT = ("[eval] column 'trip_miles': Numeric drift: its values moved by 0.805 (Kolmogorov-Smirnov distance) "
         "against the last data that passed the gate, above the threshold 0.300 for 1,000 values now against "
         "2,000; median 12.1 now, 1.9 before; mean 13.4 now, 2.6 before.")
TOO_FEW = "[train] whole dataset: Too few rows: 12 rows, the minimum is 100 (min_train_rows)"


@pytest.mark.parametrize("problem", [DRIFT, TOO_FEW])
def test_a_run_the_data_gate_stopped_shows_the_gates_whole_message(tmp_path, problem):
    message = data_gate.rejection_message("span 0, version none", "/data/taxi", [problem], [])
    _, store = _store(tmp_path)
    _run(store, UP_TO_THE_GATE + [("DataGate", "FAILED", {})], {"data_gate": message})
    page = report.render_report(store, configs.load_config(pipeline_name="p"), "latest")
    assert html.escape(problem) in page  # Before: "DataGate failed", and the reason nowhere.
    outcome = page[page.index("<h2>Outcome</h2>"):page.index("<h2>Components</h2>")]
    assert "Stopped by the data gate (DataGate): no model was trained." in outcome
    assert html.escape(problem) in outcome and html.escape(message) in outcome
    assert page.index("<h2>Outcome</h2>") < page.index("<h2>Anomalies</h2>")


def test_a_failed_component_shows_the_error_the_console_gave_and_the_log_file(tmp_path):
    connection, store = _store(tmp_path)
    _run(store, UP_TO_THE_GATE + [("Trainer", "FAILED", {})], {})
    try:
        raise logs.ExplainedFailure("out of disk space: writing /out/Trainer failed; free space on /out")
    except RuntimeError as error:
        # What lifecycle writes when a run fails (its _record_failure).
        assert run_record.record_failure(connection, "r", logs.failure_text(error), "/logs/p/run.log")
    assert not run_record.record_failure(connection, "never-started", "error", None)
    kind, headline, detail = report.outcome(runs.find_run(store, "p", "r"))
    assert (kind, headline) == ("bad", "Stopped: Trainer failed.")
    assert detail == "out of disk space: writing /out/Trainer failed; free space on /out\n(the full log: /logs/p/run.log)"
    page = report.render_report(store, configs.load_config(pipeline_name="p"), "latest")
    assert "not recorded (a failed run" in page and "Code and data fingerprints" not in page


def test_a_failed_component_without_a_recorded_error_points_to_the_log(tmp_path):
    _, store = _store(tmp_path)
    info = _run(store, UP_TO_THE_GATE + [("Evaluator", "FAILED", {})])
    kind, headline, detail = report.outcome(info)
    assert headline == "Stopped: Evaluator failed."
    assert detail.startswith("ML Metadata holds no error for it") and "logs/" in detail


def test_a_refused_model_shows_the_recorded_reason(tmp_path):
    _, store = _store(tmp_path)
    reason = "auc 0.6400 is below the lower bound 0.7"
    info = _run(store, UP_TO_THE_GATE + [("Evaluator", "COMPLETE", {"blessing": ("ModelBlessing", {"blessed": 0})})],
                {"blessing_reason": reason})
    assert report.outcome(info) == ("bad", "Not blessed, so not pushed.", reason)


def test_a_refused_model_without_a_recorded_reason_shows_tfmas(tmp_path):
    worse_on_cards = {"overall": {"auc": 0.96}, CARD: {"auc": 0.58}}
    evaluator = evaluator_run(tmp_path, configs.load_config(**SLICE_CONFIG), worse_on_cards, FIRST)
    info = runs.RunInfo("r", 1, 0, 1, 1.0, "complete", [evaluator], {}, False, None)
    kind, headline, detail = report.outcome(info)
    assert headline == "Not blessed, so not pushed."
    assert "auc (payment_type=Credit Card) 0.5800 is below the lower bound 0.6" in detail


def test_a_blessed_run_says_where_it_was_pushed_and_a_validation_run_that_it_passed(tmp_path):
    _, store = _store(tmp_path)
    pushed = {"pushed_model": ("PushedModel", {"pushed": 1, "pushed_destination": "/serving/p/5",
                                               "pushed_version": "5"})}
    info = _run(store, [("Evaluator", "COMPLETE", {"blessing": ("ModelBlessing", {"blessed": 1})}),
                        ("Pusher", "COMPLETE", pushed)])
    assert report.outcome(info) == ("ok", "Blessed, and pushed as version 5 to /serving/p/5.", "")
    validation = _run(store, UP_TO_THE_GATE + [("DataGate", "COMPLETE", {})], run_id="v")
    assert report.outcome(validation)[1].startswith("A validation run: the data gate passed the data")


# ----------------------------------------------------------------------------------------------- blessing


# The taxi task's judgment (test_artifact_files.py checks the values read): AUC overall and on card trips.
SLICE_CONFIG = dict(blessing_lower_bound=0.7, blessing_max_decrease=0.0,
                    blessing_slice_thresholds='{"payment_type=Credit Card": {"lower_bound": 0.6, "max_decrease": 0.03}}')
CARD = (("payment_type", "Credit Card"),)
FIRST = {"overall": {"auc": 0.95}, CARD: {"auc": 0.63}, (("payment_type", "Cash"),): {"auc": 0.0}}


def test_without_a_baseline_every_threshold_is_listed_and_the_change_ones_did_not_apply(tmp_path):
    evaluator = evaluator_run(tmp_path, configs.load_config(**SLICE_CONFIG), FIRST)
    page = report.blessing_section(evaluator)
    assert "Decision: |BLESSED" in _text(page)
    assert ("No baseline: no model was serving, so this is the first model judged and the change thresholds did "
            "not apply.") in _text(page)
    assert _table_rows(page) == [
        report.THRESHOLD_COLUMNS,
        ["auc", "overall", "at least 0.7", "0.9500", "-", "-", "pass"],
        ["auc", "overall", "no decrease against the baseline", "0.9500", "-", "-", "not applied (no baseline)"],
        ["auc", "payment_type=Credit Card", "at least 0.6", "0.6300", "-", "-", "pass"],
        ["auc", "payment_type=Credit Card", "a decrease of at most 0.03 against the baseline", "0.6300", "-", "-",
         "not applied (no baseline)"],
    ]
    assert "Every threshold that applied was met." in page and "Failed" not in page


def test_with_a_baseline_each_threshold_shows_both_values_the_change_and_a_failed_slice(tmp_path):
    worse_on_cards = {"overall": {"auc": 0.96}, CARD: {"auc": 0.58}}
    evaluator = evaluator_run(tmp_path, configs.load_config(**SLICE_CONFIG), worse_on_cards, FIRST, baseline_model_id=7)
    page = report.blessing_section(evaluator)
    assert "Decision: |NOT BLESSED" in _text(page) and "No baseline" not in page
    assert "Baseline: model 7, the model the candidate would replace" in page
    assert _table_rows(page)[1:] == [
        ["auc", "overall", "at least 0.7", "0.9600", "0.9500", "-", "pass"],
        ["auc", "overall", "no decrease against the baseline", "0.9600", "0.9500", "+0.0100", "pass"],
        ["auc", "payment_type=Credit Card", "at least 0.6", "0.5800", "0.6300", "-", "FAIL"],
        ["auc", "payment_type=Credit Card", "a decrease of at most 0.03 against the baseline", "0.5800", "0.6300",
         "-0.0500", "FAIL"],
    ]
    assert [html.unescape(m) for m in re.findall(r"<p class='bad'>Failed: (.*?)</p>", page)] == [
        "auc (payment_type=Credit Card) 0.5800 is below the lower bound 0.6",
        "auc (payment_type=Credit Card) 0.5800 against the blessed baseline's 0.6300: a change of -0.0500, the "
        "threshold allows no less than -0.0300",
    ]


def test_an_allowed_decrease_of_zero_is_shown_as_none_not_as_what_tfma_was_given(tmp_path):
    config = configs.load_config(blessing_max_decrease=0.0, blessing_slice_thresholds="{}")
    page = report.blessing_section(evaluator_run(tmp_path, config, {"overall": {"auc": 0.9}}, FIRST))
    assert "no decrease against the baseline" in page and "e-10" not in page
    assert "payment_type" not in page


# --------------------------------------------------------------------------------- anomalies and schema


def _table_rows(page: str) -> list[list[str]]:
    return [[html.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", page)]


def _frame_rows(frame) -> list[list[str]]:
    """TFDV's table view as rows: its index's name and columns, then each row with its index first."""
    return [[frame.index.name, *frame.columns]] + [[str(i), *map(str, row)] for i, row in frame.iterrows()]


def test_the_curated_schema_is_shown_as_tfdvs_schema_view_shows_it(tmp_path):
    from tensorflow_data_validation.utils import display_util

    shutil.copy(configs.load_config().schema_path, tmp_path / "schema.pbtxt")
    features, domains = display_util.get_schema_dataframe(tfdv.load_schema_text(str(tmp_path / "schema.pbtxt")))
    assert _table_rows(report.schema_section(str(tmp_path))) == _frame_rows(features) + _frame_rows(domains)


def test_anomalies_are_shown_as_tfdvs_anomalies_view_shows_them(tmp_path):
    from tensorflow_data_validation.utils import display_util
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["fare"].short_description = "Out-of-range values"
    anomalies.anomaly_info["fare"].description = "Unexpectedly large value: 1e9."
    tips = anomalies.anomaly_info["tips"]  # descriptions only in its reasons, as TFDV sometimes writes them
    tips.reason.add(short_description="Missing column", description="Column dropped")
    tips.reason.add(short_description="Type mismatch", description="Expected FLOAT")
    anomalies.dataset_anomaly_info.reason.add(short_description="Low row count", description="Only 3 rows")
    (tmp_path / "Split-eval").mkdir()
    (tmp_path / "Split-eval" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / "SchemaDiff.pb").write_bytes(anomalies_pb2.Anomalies().SerializeToString())
    page = report.anomalies_section(str(tmp_path))
    header, *features, dataset = _frame_rows(display_util.get_anomalies_dataframe(anomalies))
    # TFDV's rows in its map's order, which protobuf leaves unspecified; the report's are by name.
    assert _table_rows(page) == [header, *sorted(features), dataset]
    assert [row[0] for row in _table_rows(page)[1:3]] == ["'fare'", "'tips'"]
    assert "<h3>train</h3><p class=\"ok\">No anomalies against the curated schema.</p>" in page


# ------------------------------------------------------------------------------------------------ lineage

def _lineage_graph(width: int) -> dict:
    """A lineage graph in model_lineage's shape: a chain of `width` examples read by one trainer, a baseline
    model beside it, both read by the Evaluator."""
    artifacts = {i: {"id": i, "type": "Examples", "properties": {}, "baseline": False} for i in range(1, width + 1)}
    artifacts[50] = {"id": 50, "type": "Model", "properties": {}, "baseline": True}
    artifacts[51] = {"id": 51, "type": "Model", "properties": {"pushed_version": 3}, "baseline": False}
    executions = {60: {"id": 60, "node": "Trainer", "state": "COMPLETE"},
                  61: {"id": 61, "node": "DataGate", "state": "COMPLETE"},
                  62: {"id": 62, "node": "Evaluator", "state": "COMPLETE"}}
    edges = [(f"a{i}", "e60") for i in range(1, width + 1)] + [("a1", "e61"), ("e60", "a51"), ("a51", "e62"),
                                                              ("a50", "e62")]
    return {"artifacts": artifacts, "executions": executions, "edges": edges}


def test_the_lineage_is_drawn_at_its_size_with_readable_text_and_the_baseline_marked():
    svg = report.graph_svg(_lineage_graph(12))
    width = int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    assert width <= 1100  # the report's column: drawn unscaled, however wide a layer is (12 wrap into rows)
    sizes = [int(s) for s in re.findall(r'<text[^>]* font-size="(\d+)"', svg)]
    assert sizes and min(sizes) >= 11
    assert "Model (baseline)" in _text(svg) and "DataGate" in _text(svg)
    assert svg.count('fill="#fde9cf"') == 1  # the baseline's box alone in orange
    page = report.lineage_image(_lineage_graph(2))
    assert 'id="view-lineage"' in page and "<img" not in page  # inline: the page's text size is the drawing's


def test_per_class_metrics_carry_the_tasks_class_names():
    by_slice = {"Overall": {"precision (class 0)": 0.9, "precision (class 2)": 0.8, "example_count": 10.0}}
    page = report.metrics_html(by_slice, [], class_names=["Adelie", "Chinstrap", "Gentoo"])
    assert "precision (Adelie)" in page and "precision (Gentoo)" in page and "class 0" not in page


def test_each_slice_is_shown_against_the_baseline_with_the_tables_rules(tmp_path):
    config = configs.load_config()
    candidate = {"overall": {"auc": 0.9, "example_count": 100.0, "mean_label": 0.3},
                 (("payment_type", "Cash"),): {"auc": 0.0, "example_count": 60.0, "mean_label": 0.0},
                 (("payment_type", "Credit Card"),): {"auc": 0.62, "example_count": 40.0, "mean_label": 0.7}}
    baseline = {"overall": {"auc": 0.91}, (("payment_type", "Credit Card"),): {"auc": 0.6}}
    evaluator = evaluator_run(tmp_path, config, candidate, baseline)
    page = report.slices_against_baseline(evaluator.output("evaluation").uri, ["auc"], ["no", "yes"])
    assert _row(page, "overall") == ["overall", "100", "0.9000", "0.9100", "-0.0100"]
    assert _row(page, "payment_type=Cash") == ["payment_type=Cash", "60", "n/a (one class)", "-", "-"]
    assert _row(page, "payment_type=Credit Card")[2:] == ["0.6200", "0.6000", "+0.0200"]
    first = evaluator_run(tmp_path / "first", config, candidate)
    page = report.slices_against_baseline(first.output("evaluation").uri, ["auc"], ["no", "yes"])
    assert "No baseline" in page and _row(page, "overall")[2:] == ["0.9000", "-", "-"]
