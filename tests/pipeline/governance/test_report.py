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
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_data_validation.statistics import stats_impl
from tfx_bsl.coders import example_coder

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.governance import report
from pipeline.metadata import run_summary


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


# ----------------------------------------------------------------------------------------------- blessing


def _evaluator(config: configs.PipelineConfig) -> run_summary.ComponentRun:
    """The Evaluator's execution as ML Metadata records it: the eval config the pipeline builds, as JSON."""
    execution = metadata_store_pb2.Execution()
    execution.custom_properties["eval_config"].string_value = json_format.MessageToJson(
        pipeline_definition.create_eval_config(config), preserving_proto_field_name=True
    )
    return run_summary.ComponentRun("Evaluator", "executed", 1.0, execution, outputs={})


@pytest.mark.parametrize(("max_decrease", "shown"), [
    (0.0, "no decrease against the baseline (blessing_max_decrease 0)"),
    (0.01, "a decrease of at most 0.01 against the baseline (blessing_max_decrease 0.01)"),
    (1e-12, "a decrease of at most 1e-12 against the baseline (blessing_max_decrease 1e-12)"),
])
def test_the_change_threshold_shows_the_configured_decrease(max_decrease, shown):
    config = configs.load_config(blessing_max_decrease=max_decrease, blessing_lower_bound=0.65)
    record = {"config": {"blessing_max_decrease": max_decrease}}  # as run_record.read_record gives it
    page = report.blessing_section(None, _evaluator(config), record)
    metric = config.task_spec.blessing_metric
    assert _row(page, metric)[1:] == ["overall", "at least 0.65", shown]
    assert "e-10" not in page


def test_the_change_threshold_of_a_run_without_a_record_reads_the_eval_config():
    page = report.blessing_section(None, _evaluator(configs.load_config(blessing_max_decrease=0.0)))
    assert "no decrease against the baseline (blessing_max_decrease 0)" in page and "e-10" not in page


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
