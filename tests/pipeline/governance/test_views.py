"""The views drawn from what TFMA, TFDV and the Trainer's TensorBoard writer produce: a real TFMA evaluation of
scores (tests/tfma_evaluations.py: a candidate and a baseline, binary and multi-class, with the pipeline's
plot metrics), TFDV's statistics of a few rows, scalars written by tf.summary. The numbers drawn are checked
against TFMA's own metrics of the same evaluation; the whole report with these views, from real runs and in
a browser, is checked in test_cli.py.
"""

from __future__ import annotations

import html
import re

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tfx_bsl.coders import example_coder

from pipeline.governance import views
from pipeline.metadata import artifact_files
from tests.tfma_evaluations import scored_evaluation


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("binary")
    scored_evaluation(root)
    return str(root / "evaluation")


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("multiclass")
    scored_evaluation(root, rows=300, multiclass=True)
    return str(root / "evaluation")


def _figure(page: str, view_id: str) -> str:
    match = re.search(rf'<figure class="[^"]*" id="view-{re.escape(view_id)}">(.*?)</figure>', page, re.S)
    assert match, f"no view {view_id}"
    return match.group(1)


def _svg_texts(fragment: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", fragment)]


def test_the_confusion_matrix_at_the_decision_threshold_gives_tfmas_accuracy_precision_and_recall(binary):
    for baseline in (False, True):
        metrics = artifact_files.slice_metrics(binary, baseline)
        plots = artifact_files.slice_plots(binary, baseline)
        for where in ("overall", "kind=x", "kind=y"):
            at = views.decision_matrix(plots[where]["confusion_matrix_at_thresholds"])
            assert at.threshold == 0.5  # among the plot's thresholds, exactly
            tp, tn, fp, fn = at.true_positives, at.true_negatives, at.false_positives, at.false_negatives
            expected = metrics[where]
            assert tp + tn + fp + fn == expected["example_count"]
            assert (tp + tn) / (tp + tn + fp + fn) == pytest.approx(expected["binary_accuracy"], abs=1e-6)
            assert tp / (tp + fp) == pytest.approx(expected["precision"], abs=1e-6)
            assert tp / (tp + fn) == pytest.approx(expected["recall"], abs=1e-6)
    page = views.evaluation_views(binary, ["stays", "tips"], ["overall", "kind=x"])
    at = views.decision_matrix(artifact_files.slice_plots(binary)["overall"]["confusion_matrix_at_thresholds"])
    texts = _svg_texts(_figure(page, "confusion-matrix-overall"))
    # Rows are the actual class, columns the predicted one: negatives first, each count with its row's share.
    counts = [t for t in texts if re.fullmatch(r"[0-9,]+", t)]
    assert counts == [views.format_statistic(v) for v in
                      (at.true_negatives, at.false_positives, at.false_negatives, at.true_positives)]
    assert {"stays", "tips", "predicted", "actual"} <= set(texts)
    assert f"{at.true_positives / (at.true_positives + at.false_negatives):.1%}" in texts
    assert "Confusion matrix at threshold 0.5" in page


def _area(points: list[tuple[float, float]]) -> float:
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))


def test_the_roc_curve_drawn_has_tfmas_auc_under_it_and_each_model_its_line(binary):
    metrics = artifact_files.slice_metrics(binary)
    plots = artifact_files.slice_plots(binary)
    for where in ("overall", "kind=x"):
        roc = views._roc(plots[where]["confusion_matrix_at_thresholds"])
        assert roc[0] == (0.0, 0.0) and roc[-1] == (1.0, 1.0)
        # TFMA's AUC interpolates 10,000 thresholds, the plot has 201: the areas agree to a few thousandths.
        assert _area(roc) == pytest.approx(metrics[where]["auc"], abs=5e-3)
    page = views.evaluation_views(binary, ["0", "1"])
    for view_id in ("roc-overall", "pr-overall", "calibration-overall"):
        figure = _figure(page, view_id)
        assert figure.count("<polyline") == 2, view_id  # the candidate's and the baseline's
        assert views.CANDIDATE in figure and views.BASELINE in figure and "baseline" in figure
    assert "t=0.5" in _svg_texts(_figure(page, "roc-overall"))


def test_calibration_holds_every_example_and_label_in_the_buckets_with_examples(binary):
    metrics = artifact_files.slice_metrics(binary)["overall"]
    buckets = artifact_files.slice_plots(binary)["overall"]["calibration_histogram_buckets"]
    points = views.calibration_points(buckets)
    assert 5 <= len(points) <= 22  # the pipeline's 20 buckets of [0, 1], and the two beyond
    assert sum(count for _, _, count in points) == metrics["example_count"]
    assert sum(label * count for _, label, count in points) == pytest.approx(
        metrics["mean_label"] * metrics["example_count"])
    assert all(0 <= prediction <= 1 and 0 <= label <= 1 for prediction, label, _ in points)


def test_a_multi_class_confusion_matrix_names_the_classes_and_gives_tfmas_accuracy(multiclass):
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    page = views.evaluation_views(multiclass, classes)
    texts = _svg_texts(_figure(page, "confusion-matrix-overall"))
    assert texts.count("Adelie") == 2 and "class 0" not in page  # as a row and as a column
    counts = [int(t.replace(",", "")) for t in texts if re.fullmatch(r"[0-9,]+", t)]
    assert len(counts) == 9
    metrics = artifact_files.slice_metrics(multiclass)["overall"]
    assert sum(counts) == metrics["example_count"]
    assert sum(counts[0::4]) / sum(counts) == pytest.approx(metrics["sparse_categorical_accuracy"], abs=1e-6)
    assert "view-roc-" not in page  # ROC and calibration are the binary task's
    assert views.class_label("precision (class 2)", classes) == "precision (Gentoo)"
    assert views.class_label("precision (class 7)", classes) == "precision (class 7)"


def test_an_evaluation_without_plots_says_so(tmp_path):
    assert "No plots recorded" in views.evaluation_views(str(tmp_path), ["0", "1"])


def test_numbers_have_one_format_and_absent_values_a_dash():
    assert [views.format_statistic(v) for v in (None, float("nan"), 0, 3.0, 12345, 2.0e6)] == [
        "-", "-", "0", "3", "12,345", "2e+06"]
    # A timestamp's mean beside its minimum: the same four significant digits.
    assert views.format_statistic(1408451341.1282) == "1.408e+09"
    assert views.format_statistic(1.35703e09) == "1.357e+09"
    assert views.format_statistic(0.2270123) == "0.227"


def _statistics(rows: list[dict]) -> str:
    examples = []
    for row in rows:
        example = tf.train.Example()
        for name, values in row.items():
            feature = example.features.feature[name]
            if name == "city":
                feature.bytes_list.value.extend(v.encode() for v in values)
            else:
                feature.float_list.value.extend(values)
        examples.append(example.SerializeToString())
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(examples)
    options = tfdv.StatsOptions(num_quantiles_histogram_buckets=30)
    return stats_impl.generate_statistics_in_memory(batch, options).SerializeToString()


@pytest.fixture(scope="module")
def statistics(tmp_path_factory) -> tuple[str, str]:
    """Two StatisticsGen artifacts (train and eval splits): now, and the data the gate passed before. `fare`
    has a long tail; `tolls` is empty in every row (an empty CSV cell); `city` is a string."""
    made = []
    for name, shift in (("now", 0.0), ("before", 5.0)):
        uri = tmp_path_factory.mktemp(name)
        for split, count in (("train", 90), ("eval", 60)):
            rows = [{"fare": [float(i % 20) + shift + (500.0 if i == 0 else 0.0)], "tolls": [],
                     "city": ["Chicago" if i % 3 else "Evanston"]} for i in range(count)]
            (uri / f"Split-{split}").mkdir()
            (uri / f"Split-{split}" / "FeatureStats.pb").write_bytes(_statistics(rows))
        made.append(str(uri))
    return made[0], made[1]


def _row_cells(page: str, first: str) -> list[str]:
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first}")


def test_statistics_compare_train_eval_and_the_previous_data_with_dashes_for_absent_values(statistics):
    now, before = statistics
    page = views.statistics_views(now, before)
    table = _figure(page, "statistics")
    assert "previous train" in table and views.PREVIOUS in table
    # A feature no row has a value of: missing everywhere, no mean (TFDV writes 0), no histogram.
    tolls = _row_cells(table, "tolls")
    assert tolls[2:5] == ["100.0% missing; -"] * 3 and tolls[5] == "-"
    fare = _row_cells(table, "fare")
    assert fare[2].startswith("0.0% missing; mean ") and fare[4] != fare[2]  # moved by 5
    # Each dataset's histogram as shares of its rows, the long tail in the last bin ("≥").
    assert "≥ " in html.unescape(fare[5]) and fare[5].count(views.EVAL) > 0
    heights = [float(h) for h in re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="'
                                            + views.CANDIDATE, fare[5])]
    assert len(heights) == views.HISTOGRAM_BINS and max(heights) > 0
    city = _row_cells(table, "city")
    assert "top Chicago (67%)" in city[2] and "Evanston" in html.unescape(city[5])
    assert "No earlier statistics" in views.statistics_views(now)


def test_rebinning_keeps_every_row_once():
    buckets = [(0.0, 10.0, 30), (10.0, 10.0, 10), (10.0, 100.0, 60)]
    shares = views._rebin(buckets, 0.0, 20.0, 4)
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] == pytest.approx(0.15) and shares[-1] > 0.5  # the tail beyond 20 lands in the last bin


def test_training_curves_come_from_the_tensorboard_logs(tmp_path):
    for run, values in (("train", [0.7, 0.5, 0.4]), ("validation", [0.72, 0.6, 0.61])):
        with tf.summary.create_file_writer(str(tmp_path / run)).as_default():
            for step, value in enumerate(values):
                tf.summary.scalar("epoch_loss", value, step=step)
                if run == "validation":
                    tf.summary.scalar("epoch_auc", 0.8 + step / 100, step=step)
    page = views.training_views(str(tmp_path))
    figure = _figure(page, "training-curves")
    assert figure.count("<svg") == 2  # loss (train and validation), auc (validation)
    assert figure.index(">loss<") < figure.index(">auc<")
    loss = figure[:figure.index(">auc<")]
    assert loss.count("<polyline") == 2 and views.CANDIDATE in loss and views.EVAL in loss
    assert {"1", "2", "3"} <= set(_svg_texts(loss))  # epochs, whole
    assert "no TensorBoard scalars" in views.training_views(str(tmp_path / "none"))
