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

from pipeline import configs
from pipeline.governance import report
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
