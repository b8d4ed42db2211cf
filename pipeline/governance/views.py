"""The views of a run a data scientist reads, drawn as inline SVG: the confusion matrix at the decision
threshold, ROC and precision-recall curves and calibration (from TFMA's plots), statistics with histograms
(train beside eval, and beside the data the gate compared against), and the Trainer's curves (from its
TensorBoard logs). Each slice's metrics beside the baseline's is a table of the report's
(report.slices_against_baseline), beside the metric table whose rules it shares.

Everything is read with protobuf alone (pipeline/metadata/artifact_files.py) and drawn here, without
TensorFlow, TFMA or TFDV: the run report (report.py) and the notebook show the same views from these
functions. Each view is a <figure class="view" id="view-..."> with a stable id, so a browser test can
find it on the page. Absent values show as "-" (format_statistic); a metric a slice cannot have, as "n/a"
(report.metric_cell).
"""

from __future__ import annotations

import html
import math
import re

from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline.metadata import artifact_files

# Colours: the candidate (or train), the baseline (or eval), the data the gate compared with.
CANDIDATE, BASELINE, EVAL, PREVIOUS = "#1f5fbf", "#d9731a", "#d9731a", "#7b3fa0"
# The decision threshold: a binary model's score at or above it predicts the positive class (TFMA's
# BinaryAccuracy, Precision and Recall use the same).
DECISION_THRESHOLD = 0.5
# Text in the drawings is at least this many pixels high at the size they are drawn (they are never scaled).
FONT_PX = 12
STYLE = """
figure.view { display: inline-block; vertical-align: top; margin: .4em .8em 1em 0; }
figure.view figcaption { font-weight: bold; margin-bottom: .3em; }
figure.view svg { max-width: none; }
.view-wide { display: block; }
.legend span { display: inline-block; margin-right: 1em; }
.swatch { display: inline-block; width: .9em; height: .9em; vertical-align: middle; margin-right: .3em; }
"""


def format_statistic(value) -> str:
    """A statistic as every view shows it: "-" when absent, whole numbers with separators, others with four
    significant digits (1.408e+09 beside 1.357e+09, never 1408451341.1282 beside it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.4g}"


def view(view_id: str, title: str, body: str, wide: bool = False) -> str:
    """One view: a figure with a stable id (`view-<view_id>`) and its title."""
    css = "view view-wide" if wide else "view"
    return (f'<figure class="{css}" id="view-{html.escape(view_id)}"><figcaption>{html.escape(title)}</figcaption>'
            f"{body}</figure>")


def slug(text: str) -> str:
    """A slice name as part of an element id: "color=Dark Red" -> "color-Dark-Red"."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-") or "x"


def svg_text(x, y, text, size=FONT_PX, anchor="start", weight="normal", color="#222", rotate=None) -> str:
    """One line of text in an SVG drawing, escaped; every drawing of the report writes its text through it."""
    turn = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{color}" font-family="Helvetica, Arial, sans-serif"{turn}>{html.escape(str(text))}</text>')


def _legend(entries: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><span class="swatch" style="background:{color}"></span>{html.escape(name)}</span>'
        for name, color in entries) + "</div>"


def line_chart_svg(series: list[tuple[str, str, list[tuple[float, float]]]], x_label: str, y_label: str,
                   x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None,
                   diagonal: bool = False, marks: list[tuple[float, float, str]] = (),
                   whole_x: bool = False, width: int = 330, height: int = 290) -> str:
    """Lines of (x, y) points, one per (name, colour, points); a single point draws a dot. `marks` are
    labelled points (the decision threshold's); `diagonal` draws y = x (chance, or perfect calibration);
    `whole_x` ticks x at whole numbers only (epochs)."""
    points = [p for _, _, line in series for p in line]
    if not points:
        return "<p>-</p>"

    def span(values, given):
        if given is not None:
            return given
        low, high = min(values), max(values)
        pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.5
        return low - pad, high + pad

    (x0, x1), (y0, y1) = span([p[0] for p in points], x_range), span([p[1] for p in points], y_range)
    left, top, right, bottom = 72, 12, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    sx = lambda x: left + plot_w * (x - x0) / (x1 - x0)  # noqa: E731
    sy = lambda y: top + plot_h * (1 - (y - y0) / (y1 - y0))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    x_ticks = ([float(x) for x in range(math.ceil(x0), math.floor(x1) + 1)] if whole_x
               else [x0 + (x1 - x0) * i / 4 for i in range(5)])
    for fx in x_ticks[:: max(1, len(x_ticks) // 8)]:
        parts.append(svg_text(sx(fx), top + plot_h + 16, format_statistic(round(fx, 4)), anchor="middle"))
    for i in range(5):
        fy = y0 + (y1 - y0) * i / 4
        parts.append(svg_text(left - 5, sy(fy) + 4, format_statistic(round(fy, 4)), anchor="end"))
    parts.append(svg_text(left + plot_w / 2, height - 6, x_label, anchor="middle"))
    parts.append(svg_text(13, top + plot_h / 2, y_label, anchor="middle", rotate=-90))
    if diagonal:
        low, high = max(x0, y0), min(x1, y1)
        parts.append(f'<line x1="{sx(low):.1f}" y1="{sy(low):.1f}" x2="{sx(high):.1f}" y2="{sy(high):.1f}" '
                     'stroke="#aaa" stroke-dasharray="4 3"/>')
    for _, color, line in series:
        if len(line) == 1:
            x, y = line[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{color}"/>')
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in line
                  if len(line) <= 30]
    for x, y, label in marks:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="none" stroke="#222" stroke-width="1.5"/>')
        right_side = x < x0 + (x1 - x0) * 0.7
        parts.append(svg_text(sx(x) + (8 if right_side else -8), sy(y) + 16, label, anchor="start" if right_side else "end"))
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------- evaluation


def decision_matrix(matrices, threshold: float = DECISION_THRESHOLD):
    """The entry of TFMA's ConfusionMatrixAtThresholds at the decision threshold (the nearest threshold;
    the pipeline's plot has 0.5 itself among its thresholds, pipeline.PLOT_THRESHOLDS)."""
    return min(matrices.matrices, key=lambda m: abs(m.threshold - threshold))


def confusion_matrix_svg(cells: list[list[float]], class_names: list[str]) -> str:
    """A matrix of counts, actual class by row and predicted class by column: each cell's count and its share
    of the row, its shade the share (the diagonal blue, the errors orange)."""
    n = len(class_names)
    cell = 118 if n <= 3 else 72
    left, top = 150, 46
    chars = cell // 7
    width, height = left + n * cell + 10, top + n * cell + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>',
             svg_text(left + n * cell / 2, 14, "predicted", anchor="middle", weight="bold"),
             svg_text(left - 8, top - 8, "actual", anchor="end", weight="bold")]
    for j, name in enumerate(class_names):
        parts.append(svg_text(left + j * cell + cell / 2, top - 8, name[:chars], anchor="middle"))
    for i, row in enumerate(cells):
        total = sum(row)
        parts.append(svg_text(left - 8, top + i * cell + cell / 2 + 4, class_names[i][:20], anchor="end"))
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            rgb = (31, 95, 191) if i == j else (217, 115, 26)
            fill = "rgb({},{},{})".format(*(round(255 - (255 - c) * (0.15 + 0.85 * share)) for c in rgb))
            ink = "white" if share > 0.5 else "#222"
            x, y = left + j * cell, top + i * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="white"/>')
            parts.append(svg_text(x + cell / 2, y + cell / 2, format_statistic(count), anchor="middle", weight="bold",
                               color=ink))
            parts.append(svg_text(x + cell / 2, y + cell / 2 + 16, f"{share:.1%}" if total else "-", anchor="middle",
                               color=ink))
    parts.append("</svg>")
    return "".join(parts)


def _curve(matrices, x_of, y_of) -> list[tuple[float, float]]:
    points = []
    for m in matrices.matrices:
        point = (x_of(m), y_of(m))
        if not any(math.isnan(v) for v in point):
            points.append(point)
    return sorted(set(points))


def _roc(matrices) -> list[tuple[float, float]]:
    # From (0, 0), predicting nothing, to (1, 1), predicting everything: the thresholds beyond the scores.
    points = _curve(matrices, lambda m: m.false_positive_rate, lambda m: m.recall)
    return sorted(set(points) | {(0.0, 0.0), (1.0, 1.0)})


def _precision_recall(matrices) -> list[tuple[float, float]]:
    # Thresholds above every score predict nothing: precision is undefined there.
    return _curve(matrices, lambda m: m.recall,
                  lambda m: m.precision if m.true_positives + m.false_positives else math.nan)


def calibration_points(buckets) -> list[tuple[float, float, float]]:
    """(mean prediction, mean label, examples) of each bucket of TFMA's calibration histogram that holds
    examples."""
    found = []
    for bucket in buckets.buckets:
        count = bucket.num_weighted_examples.value
        if count > 0:
            found.append((bucket.total_weighted_refined_prediction.value / count,
                          bucket.total_weighted_label.value / count, count))
    return found


def evaluation_views(evaluation_uri: str, class_names: list[str], slices: list[str] = ("overall",)) -> str:
    """For each slice (slice_name): the confusion matrix at the decision threshold, the ROC and
    precision-recall curves and the calibration plot (binary), or the confusion matrix of the predicted
    class (multi-class), the candidate's beside the baseline's where there was one."""
    if not class_names:
        return "<p>No plots for a regression: confusion matrices, ROC and calibration are drawn for classes.</p>"
    candidate, baseline = artifact_files.slice_plots(evaluation_uri), artifact_files.slice_plots(evaluation_uri, True)
    if not candidate:
        return "<p>No plots recorded (the evaluation was made before the pipeline asked TFMA for them).</p>"
    parts = []
    for where in slices:
        plots, base = candidate.get(where), baseline.get(where, {})
        if plots is None:
            parts.append(f"<p>{html.escape(where)}: no rows in the eval split, so no plots.</p>")
            continue
        suffix = slug(where)
        parts.append(f"<h4>{html.escape(where)}</h4>")
        multi = plots.get("multi_class_confusion_matrix_at_thresholds")
        if multi is not None and multi.matrices:
            matrix = multi.matrices[0]  # TFMA's default: one matrix, each example's most probable class
            n = len(class_names)
            cells = [[0.0] * n for _ in range(n)]
            for entry in matrix.entries:
                if 0 <= entry.actual_class_id < n and 0 <= entry.predicted_class_id < n:
                    cells[entry.actual_class_id][entry.predicted_class_id] += entry.num_weighted_examples
            parts.append(view(f"confusion-matrix-{suffix}", "Confusion matrix (the most probable class)",
                              confusion_matrix_svg(cells, class_names)))
            continue
        matrices = plots.get("confusion_matrix_at_thresholds")
        if matrices is not None and matrices.matrices:
            at = decision_matrix(matrices)
            cells = [[at.true_negatives, at.false_positives], [at.false_negatives, at.true_positives]]
            parts.append(view(f"confusion-matrix-{suffix}",
                              f"Confusion matrix at threshold {at.threshold:g}",
                              confusion_matrix_svg(cells, list(class_names[:2]))))
            lines = [("candidate", CANDIDATE, _roc(matrices))]
            pr_lines = [("candidate", CANDIDATE, _precision_recall(matrices))]
            if "confusion_matrix_at_thresholds" in base:
                lines.append(("baseline", BASELINE, _roc(base["confusion_matrix_at_thresholds"])))
                pr_lines.append(("baseline", BASELINE, _precision_recall(base["confusion_matrix_at_thresholds"])))
            legend = _legend([(name, color) for name, color, _ in lines])
            mark = f"t={at.threshold:g}"
            parts.append(view(f"roc-{suffix}", "ROC curve", line_chart_svg(
                lines, "false positive rate", "true positive rate (recall)", (0, 1), (0, 1), diagonal=True,
                marks=[(at.false_positive_rate, at.recall, mark)]) + legend))
            precision_mark = [(at.recall, at.precision, mark)] if not math.isnan(at.precision) else []
            parts.append(view(f"pr-{suffix}", "Precision-recall curve", line_chart_svg(
                pr_lines, "recall", "precision", (0, 1), (0, 1), marks=precision_mark) + legend))
        buckets = plots.get("calibration_histogram_buckets")
        if buckets is not None:
            found = calibration_points(buckets)
            lines = [("candidate", CANDIDATE, [(x, y) for x, y, _ in found])]
            if "calibration_histogram_buckets" in base:
                lines.append(("baseline", BASELINE,
                              [(x, y) for x, y, _ in calibration_points(base["calibration_histogram_buckets"])]))
            parts.append(view(f"calibration-{suffix}", "Calibration (mean label by predicted probability)",
                              line_chart_svg(lines, "mean predicted probability", "mean label (share positive)",
                                             (0, 1), (0, 1), diagonal=True)
                              + _legend([(name, color) for name, color, _ in lines])))
    return "".join(parts)


def class_label(name: str, class_names: list[str]) -> str:
    """A per-class metric's name with the task's class name: "precision (class 1)" -> "precision (Chinstrap)"."""
    def named(match):
        index = int(match.group(1))
        return f"({class_names[index]})" if 0 <= index < len(class_names) else match.group(0)

    return re.sub(r"\(class (\d+)\)", named, name)


# ---------------------------------------------------------------------------------------- statistics

# Bins of the histograms drawn: each dataset's TFDV histogram is spread over these common bins.
HISTOGRAM_BINS = 20


def _numeric_histogram(feature):
    """A numeric feature's distribution as [(low, high, count)]: TFDV's quantiles histogram (equal counts,
    so narrow buckets where most rows are: the pipeline asks for 30), else its standard one (equal widths,
    which a long tail squeezes into one bucket)."""
    by_type = {h.type: h for h in feature.num_stats.histograms}
    for kind in (statistics_pb2.Histogram.QUANTILES, statistics_pb2.Histogram.STANDARD):
        if kind in by_type and by_type[kind].buckets:
            return [(b.low_value, b.high_value, b.sample_count) for b in by_type[kind].buckets]
    return []


def _tail_start(feature) -> float | None:
    """Where the top bucket of TFDV's quantiles histogram starts (with the pipeline's 30 buckets, the value
    96.7% of rows are below), or None without one."""
    for histogram in feature.num_stats.histograms:
        if histogram.type == histogram.QUANTILES and histogram.buckets:
            return histogram.buckets[-1].low_value
    return None


def _rebin(buckets, low: float, high: float, bins: int) -> list[float]:
    """Shares of the rows in `bins` equal bins over [low, high], each bucket's count spread evenly over
    its range (a bucket of one value all in its bin); what lies above `high` counts in the last bin."""
    shares = [0.0] * bins
    total = sum(count for _, _, count in buckets)
    if not total or not math.isfinite(low) or not math.isfinite(high):
        return shares
    width = (high - low) / bins or 1.0
    for b_low, b_high, count in buckets:
        if not (math.isfinite(b_low) and math.isfinite(b_high)):
            continue
        if b_high <= b_low:
            index = min(bins - 1, max(0, int((b_low - low) / width)))
            shares[index] += count / total
            continue
        for index in range(bins):
            lo, hi = low + index * width, low + (index + 1) * width
            overlap = max(0.0, min(hi, b_high) - max(lo, b_low))
            shares[index] += count / total * overlap / (b_high - b_low)
        if b_high > high:
            shares[-1] += count / total * (b_high - max(high, b_low)) / (b_high - b_low)
    return shares


def histogram_svg(datasets: list[tuple[str, str, list[float]]], labels: tuple[str, str] | list[str],
                  width: int = 300, height: int = 96) -> str:
    """Side-by-side bars of each dataset's share of rows per bin (name, colour, shares), with the
    first and last bins' labels (or every label, for a few categories)."""
    bins = max((len(shares) for _, _, shares in datasets), default=0)
    peak = max((s for _, _, shares in datasets for s in shares), default=0) or 1.0
    top, bottom = 4, 18
    plot_h = height - top - bottom
    slot = width / max(bins, 1)
    bar = slot / (len(datasets) + 0.5)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="0" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#999"/>']
    for d, (_, color, shares) in enumerate(datasets):
        for i, share in enumerate(shares):
            h = plot_h * share / peak
            parts.append(f'<rect x="{i * slot + d * bar + bar / 4:.1f}" y="{top + plot_h - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}" fill="{color}"/>')
    if len(labels) == 2 and bins > 2:
        parts.append(svg_text(0, height - 4, labels[0]))
        parts.append(svg_text(width, height - 4, labels[1], anchor="end"))
    else:
        for i, label in enumerate(labels):
            parts.append(svg_text(i * slot + slot / 2, height - 4, str(label)[:max(3, int(slot / 7))], anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


def _feature_name(feature) -> str:
    return feature.path.step[-1] if feature.path.step else feature.name


def _features(statistics) -> dict[str, object]:
    """A split's FeatureNameStatistics by name (its first dataset: StatisticsGen writes one), with its row count."""
    if statistics is None or not statistics.datasets:
        return {}
    dataset = statistics.datasets[0]
    return {_feature_name(f): (f, dataset.num_examples) for f in dataset.features}


def _common(feature):
    return feature.num_stats.common_stats if feature.HasField("num_stats") else feature.string_stats.common_stats


def _summary(feature, rows: int) -> tuple[str, str]:
    """(missing share, centre) of one feature in one dataset: "-" for a centre with no value present."""
    common = _common(feature)
    missing = int(common.num_missing) + artifact_files.empty_rows(common)[0]
    share = f"{missing / rows:.1%}" if rows else "-"
    present = rows - missing
    if feature.HasField("num_stats"):
        centre = f"mean {format_statistic(feature.num_stats.mean)}" if present > 0 else "-"
    else:
        top = feature.string_stats.top_values
        centre = f"top {top[0].value} ({top[0].frequency / rows:.0%})" if present > 0 and top and rows else "-"
    return share, centre


def statistics_views(statistics_uri: str, previous_uri: str | None = None) -> str:
    """Each feature's histogram, the train split beside the eval split and, when given, beside the
    statistics the data gate compared with (the last data it passed; its train split), each as shares of
    its rows so that splits of different sizes compare; and a table of missing shares and centres."""
    splits = artifact_files.load_statistics(statistics_uri)
    previous = artifact_files.load_statistics(previous_uri) if previous_uri else {}
    datasets = [("train", CANDIDATE, _features(splits.get("train"))), ("eval", EVAL, _features(splits.get("eval")))]
    if previous:
        datasets.append(("previous train", PREVIOUS, _features(previous.get("train"))))
    datasets = [d for d in datasets if d[2]]
    if not datasets:
        return view("statistics", "Statistics", "<p>No statistics recorded.</p>", wide=True)
    names = sorted({name for _, _, features in datasets for name in features})
    header = ["feature", "kind"] + [f"{name}: missing, centre" for name, _, _ in datasets] + ["histogram (share of rows)"]
    rows = []
    for name in names:
        present = [(label, color, features[name]) for label, color, features in datasets if name in features]
        feature = present[0][2][0]
        numeric = feature.HasField("num_stats")
        cells = [html.escape(name), "number" if numeric else "string"]
        for label, _, features in datasets:
            if name in features:
                share, centre = _summary(*features[name])
                cells.append(f"{html.escape(share)} missing; {html.escape(centre)}")
            else:
                cells.append("-")
        if numeric:
            ranges = [_numeric_histogram(f) for _, _, (f, _) in present]
            edges = [v for buckets in ranges for b in buckets for v in b[:2] if math.isfinite(v)]
            if edges:
                low, high = min(edges), max(edges)
                # A long tail (the top 3% of rows spread wider than the rest, as fares and trip times are)
                # goes into the last bin, so that the bulk of the rows stays visible.
                tails = [t for _, _, (f, _) in present if (t := _tail_start(f)) is not None and math.isfinite(t)]
                tail = max(tails, default=high)
                clipped = low < tail < high and high - tail > tail - low
                if clipped:
                    high = tail
                shares = [(label, color, _rebin(buckets, low, high, HISTOGRAM_BINS))
                          for (label, color, _), buckets in zip(present, ranges)]
                right = ("≥ " if clipped else "") + format_statistic(high)
                cells.append(histogram_svg(shares, (format_statistic(low), right)))
            else:
                cells.append("-")
        else:
            top = [v.value for v in feature.string_stats.top_values[:6]]
            shares = []
            for label, color, (f, count) in present:
                frequency = {v.value: v.frequency for v in f.string_stats.top_values}
                shares.append((label, color, [frequency.get(v, 0) / count if count else 0 for v in top]))
            cells.append(histogram_svg(shares, top) if top else "-")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>")
    note = ("" if previous else "<p>No earlier statistics: the data gate had nothing to compare with (the first "
            "data this store has passed).</p>")
    return view("statistics", "Statistics: train, eval and the data the gate compared with",
                _legend([(label, color) for label, color, _ in datasets]) + note + table, wide=True)


# ---------------------------------------------------------------------------------------------- training


def training_views(model_run_uri: str) -> str:
    """The Trainer's curves from its TensorBoard logs: each scalar by epoch (step + 1), train beside
    validation (Keras's layout: `train/epoch_loss`, `validation/epoch_loss`)."""
    curves = artifact_files.training_curves(model_run_uri)
    by_metric: dict[str, list[tuple[str, list[tuple[int, float]]]]] = {}
    for run, tags in sorted(curves.items()):
        for tag, points in tags.items():
            metric = tag.removeprefix("epoch_")
            if metric != "learning_rate":
                by_metric.setdefault(metric, []).append((run, [(step + 1, value) for step, value in points]))
    if not by_metric:
        return view("training-curves", "Training curves", "<p>The Trainer left no TensorBoard scalars.</p>",
                    wide=True)
    colors = {"train": CANDIDATE, "validation": EVAL}
    charts = []
    for metric in sorted(by_metric, key=lambda m: (m != "loss", m)):
        lines = [(run, colors.get(run, PREVIOUS), points) for run, points in by_metric[metric]]
        steps = [x for _, _, points in lines for x, _ in points]
        x_range = (min(steps) - 0.5, max(steps) + 0.5)
        charts.append(f'<div style="display:inline-block; margin-right:1em"><b>{html.escape(metric)}</b>'
                      + line_chart_svg(lines, "epoch", metric, x_range=x_range, whole_x=True)
                      + _legend([(run, color) for run, color, _ in lines]) + "</div>")
    return view("training-curves", "Training curves (per epoch, from the Trainer's TensorBoard logs)",
                "".join(charts), wide=True)
