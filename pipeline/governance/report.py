"""One self-contained HTML report of a pipeline run, read from ML Metadata and the run's artifacts.

Everything is inline (styles, tables, images as base64), so the file opens in a browser without
network access and can be attached to a review or an audit ticket. TFDV's Facets statistics view
loads its code from the internet, so statistics are shown as TFDV's numbers in a plain table instead;
anomalies and schema in the columns of TFDV's own table views. Everything is read with protobuf alone
(pipeline/metadata/artifact_files.py), without TensorFlow, TFDV or TFMA.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os

from google.protobuf import text_format
from ml_metadata import metadata_store
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import configs
from pipeline.logs import format_number
from pipeline.governance import views
from pipeline.governance.lineage import model_lineage
from pipeline.governance.runs import ROLLBACK_TYPE, BadArgument, RunInfo, find_run, property_value, run_task
from pipeline.metadata import artifact_files, events, run_summary

_STYLE = """
body { font-family: -apple-system, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 72em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #11703a; font-weight: bold; } .bad { color: #b3261e; font-weight: bold; }
img { max-width: 100%; height: auto; } code { font-size: .9em; }
.warn { border: 1px solid #c77700; background: #fff6e5; padding: .4em 1em; margin: .5em 0 1em; }
.outcome { border-left: 4px solid #888; padding: .2em 1em; } pre { white-space: pre-wrap; }
""" + views.STYLE


def _image(svg: str, alt: str) -> str:
    """An SVG drawing as an embedded image: no script, no network, any browser."""
    encoded = base64.b64encode(svg.encode()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{encoded}">'


def _svg_text(x, y, text, size=11, anchor="start", weight="normal") -> str:
    """views.svg_text in the bar charts' and the lineage's black, 11 px unless given."""
    return views.svg_text(x, y, text, size, anchor, weight, color="black")


def bar_chart_svg(title: str, labels: list[str], values: list[float | None], notes: list[str],
                  reference: float | None) -> str:
    """Horizontal bars of values from 0 to 1 (to the largest value, for a metric such as an error that can
    exceed 1), one per label, with an optional reference line; a value of None draws no bar, only its note
    (a metric the slice has no value of)."""
    left, width, row = 170, 360, 20
    height = 40 + row * len(labels) + 30
    top = max([1.0, *(v for v in [*values, reference] if v is not None and math.isfinite(v))])
    scale = lambda v: left + width * max(0.0, min(v / top, 1.0))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}">',
             '<rect width="100%" height="100%" fill="white"/>', _svg_text(10, 20, title, 13, weight="bold")]
    for i, (label, value, note) in enumerate(zip(labels, values, notes)):
        y = 35 + i * row
        parts.append(_svg_text(left - 6, y + 13, label[:28], anchor="end"))
        if value is None:
            parts.append(_svg_text(left + 4, y + 13, note, 10))
            continue
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{scale(value) - left:.1f}" height="{row - 5}" fill="#4a7fd4"/>')
        parts.append(_svg_text(scale(value) + 4, y + 13, f"{value:.3f} {note}", 10))
    axis_y = 35 + row * len(labels) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + width}" y2="{axis_y}" stroke="#888"/>')
    for tick in (0, 0.25 * top, 0.5 * top, 0.75 * top, top):
        parts.append(_svg_text(scale(tick), axis_y + 14, f"{tick:.3g}", 10, anchor="middle"))
    if reference is not None:
        x = scale(reference)
        parts.append(f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{axis_y}" stroke="#b3261e" stroke-dasharray="4 3"/>')
        parts.append(_svg_text(x, 30, f"overall {reference:.3f}", 10, anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(str(v))}</td>' if i in numeric else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ------------------------------------------------------------------------------------------- sections


def _missing(common, rows: int) -> tuple[int, str]:
    """(rows with a value, "missing" cell): a missing value is an absent feature or an empty one."""
    empty, exact = artifact_files.empty_rows(common)
    missing = int(common.num_missing) + empty
    share = f"{missing / rows:.1%}" if rows else "-"
    return int(common.num_non_missing) - empty, f"{'' if exact else '~'}{missing:,} ({share})"


def statistics_section(statistics_uri: str) -> str:
    parts = []
    for split, stats in artifact_files.load_statistics(statistics_uri).items():
        for dataset in stats.datasets:
            rows = []
            for feature in dataset.features:
                name = feature.path.step[-1] if feature.path.step else feature.name
                if feature.HasField("num_stats"):
                    s = feature.num_stats
                    present, missing = _missing(s.common_stats, dataset.num_examples)
                    # A feature no row has a value of has no mean: TFDV writes 0 there.
                    summary = [s.mean, s.std_dev, s.min, s.max] if present > 0 else [None] * 4
                    rows.append([name, "number", f"{present:,}", missing,
                                 *(views.format_statistic(v) for v in summary), ""])
                elif feature.HasField("string_stats"):
                    s = feature.string_stats
                    present, missing = _missing(s.common_stats, dataset.num_examples)
                    top = ", ".join(f"{v.value} ({int(v.frequency)})" for v in s.top_values[:3])
                    rows.append([name, "string", f"{present:,}", missing,
                                 "", "", "", "", f"{s.unique} unique; top: {top}"])
            parts.append(f"<h3>{html.escape(split)}: {dataset.num_examples:,} examples</h3>")
            parts.append(_table(["feature", "kind", "present", "missing", "mean", "std", "min", "max", "values"],
                                rows, numeric={2, 3, 4, 5, 6, 7}))
    if not parts:
        return "<p>No statistics recorded.</p>"
    return ("<p>Missing: rows with no value for the feature, an empty CSV cell included (TFX writes it as a "
            "feature with no values); a share marked ~ is estimated.</p>" + "".join(parts))


def _quoted(name: str) -> str:
    return f"'{name}'"


def _joined_reasons(short: str, long: str, reasons) -> tuple[str, str]:
    """An anomaly's short and long description, from its reasons when not given (as TFDV's view shows them)."""
    return (short or "; ".join(r.short_description for r in reasons),
            long or "; ".join(r.description for r in reasons))


def anomalies_section(anomalies_uri: str) -> str:
    parts = []
    for split, anomalies in artifact_files.load_anomalies(anomalies_uri).items():
        rows = [
            [_quoted(feature), *_joined_reasons(info.short_description, info.description, info.reason)]
            # By name: a protobuf map's order is unspecified (TFDV's view shows it unsorted).
            for feature, info in sorted(anomalies.anomaly_info.items())
        ]
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            rows.append(["[dataset anomaly]", *_joined_reasons(info.short_description, info.description, info.reason)])
        parts.append(f"<h3>{html.escape(split)}</h3>")
        if not rows:
            parts.append('<p class="ok">No anomalies against the curated schema.</p>')
        else:
            parts.append(_table(["Feature name", "Anomaly short description", "Anomaly long description"], rows))
    return "".join(parts) or "<p>No validation recorded.</p>"


def _min_max(low: str | None, high: str | None) -> str:
    return "; ".join(part for part in (low, high) if part is not None) or "-"


def _domain(feature, domain_rows: list[list[str]]) -> str:
    """A feature's domain as TFDV's schema view shows it; a string domain's values go to `domain_rows`."""
    if feature.HasField("domain"):
        return _quoted(feature.domain)
    if feature.HasField("int_domain"):
        bounds = feature.int_domain
        return _min_max(f"min: {bounds.min}" if bounds.HasField("min") else None,
                        f"max: {bounds.max}" if bounds.HasField("max") else None)
    if feature.HasField("float_domain"):
        bounds = feature.float_domain
        low = f"min: {bounds.min:f}" if bounds.HasField("min") else None if bounds.disallow_inf else "min: -inf"
        high = f"max: {bounds.max:f}" if bounds.HasField("max") else None if bounds.disallow_inf else "max: inf"
        return _min_max(low, high)
    if feature.HasField("string_domain"):
        name = _quoted(feature.string_domain.name or feature.name + "_domain")
        domain_rows.append([name, ", ".join(_quoted(v) for v in feature.string_domain.value)])
        return name
    return "-"


def schema_section(schema_uri: str) -> str:
    """The curated schema in the columns of TFDV's schema view: each feature, then each string domain."""
    with open(os.path.join(schema_uri, "schema.pbtxt"), encoding="utf-8") as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    domain_rows = [[_quoted(d.name), ", ".join(_quoted(v) for v in d.value)] for d in schema.string_domain]
    feature_rows = []
    for feature in schema.feature:
        presence = ("required" if feature.presence.min_fraction == 1.0 else "optional") if feature.HasField(
            "presence") else ""
        valency = ""
        if feature.HasField("value_count"):
            counts = feature.value_count
            valency = "single" if counts.min == counts.max == 1 else (
                f"[{counts.min if counts.HasField('min') else 0},"
                f"{f'{counts.max}]' if counts.HasField('max') else 'inf)'}"
            )
        kind = schema_pb2.FeatureType.Name(feature.type)
        if kind == "BYTES" and (feature.HasField("domain") or feature.HasField("string_domain")):
            kind = "STRING"
        feature_rows.append([_quoted(feature.name), kind, presence, valency, _domain(feature, domain_rows)])
    return _table(["Feature name", "Type", "Presence", "Valency", "Domain"], feature_rows) + (
        _table(["Domain", "Values"], domain_rows) if domain_rows else "")


def metrics_by_slice(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """The candidate's metrics per slice ("Overall", "<feature> = <value>", ...)."""
    found: dict[str, dict[str, float]] = {}
    for slice_metrics in artifact_files.load_metrics(evaluation_uri):
        keys = slice_metrics.slice_key.single_slice_keys
        name = " & ".join(
            f"{k.column} = {k.bytes_value.decode() if k.HasField('bytes_value') else k.int64_value if k.HasField('int64_value') else k.float_value}"
            for k in keys
        ) or "Overall"
        for key_and_value in slice_metrics.metric_keys_and_values:
            key = key_and_value.key
            if key.is_diff or key.model_name == artifact_files.BASELINE_KEY:
                continue
            if key_and_value.value.HasField("double_value"):
                found.setdefault(name, {})[artifact_files.metric_name(key)] = key_and_value.value.double_value.value
    return found


# Metrics that rank one class against the other: a slice whose labels are all one class has none. TFMA
# 0.47 reports them as 0.0 there (which reads as the worst model possible); others may give NaN or nothing.
RANKING_METRICS = ("auc", "auc_precision_recall")


def one_class(metrics: dict[str, float], name: str) -> bool:
    """Whether the slice's labels (for a per-class metric "auc (class 1)", that class against the rest) are
    all one class: their mean is 0 or 1, or, without MeanLabel, recall is undefined (no positive label)."""
    suffix = name[len(name.partition(" (")[0]):]
    mean_label = metrics.get("mean_label" + suffix)
    if mean_label is not None:
        return mean_label in (0.0, 1.0)
    recall = metrics.get("recall" + suffix)
    return recall is not None and math.isnan(recall)


def metric_cell(metrics: dict[str, float], name: str) -> tuple[float | None, str]:
    """(the value to draw, or None when there is none; the text to show) of one metric on one slice."""
    if name.partition(" (")[0] in RANKING_METRICS and one_class(metrics, name):
        return None, "n/a (one class)"
    value = metrics.get(name)
    if value is None:
        return None, ""
    if math.isnan(value):
        return None, "n/a"
    return value, format_number(value)


# A slice is trivial when a constant guess is right on at least this share of its rows (its labels nearly all
# one class), or when its blessing metric is perfect (at least PERFECT_SCORE): its value says little of the model.
TRIVIAL_MAJORITY_SHARE = 0.95
PERFECT_SCORE = 0.999
# A slice is far below overall when its blessing metric is lower than the overall value by more than this
# (0.1 AUC is the gap between a good and a mediocre ranking).
FAR_BELOW_MARGIN = 0.1


# For a regression (no classes), whose blessing metric is an error: a slice is far worse than overall when
# its error exceeds the overall error by more than this share of it.
FAR_WORSE_SHARE = 0.5


def slice_warnings(by_slice: dict[str, dict[str, float]], metric: str, classification: bool = True) -> list[str]:
    """One line per slice whose value of the blessing metric `metric` needs a second look, slices by name:

    - trivial: its labels are one class (mean label 0 or 1, or recall undefined), or one class holds at least
      TRIVIAL_MAJORITY_SHARE of its rows, or its value is perfect (>= PERFECT_SCORE);
    - far below overall: its value is lower than the overall value by more than FAR_BELOW_MARGIN.
    For a regression (`classification` False) there are no classes and the metric is an error (lower is
    better): only a slice whose error exceeds the overall one by more than FAR_WORSE_SHARE is named.
    Each line names the slice, its value and its example count.
    """
    overall = metric_cell(by_slice.get("Overall", {}), metric)[0]
    lines = []
    for name in sorted(s for s in by_slice if s != "Overall"):
        metrics = by_slice[name]
        count = f"{int(metrics.get('example_count', 0)):,} examples"
        value, text = metric_cell(metrics, metric)
        mean_label = metrics.get("mean_label")
        if not classification:
            if value is not None and overall is not None and value > overall * (1 + FAR_WORSE_SHARE):
                lines.append(f"{name}: far worse than overall, {metric} {text} against {format_number(overall)} "
                             f"overall ({count}).")
        elif one_class(metrics, metric):
            lines.append(f"{name}: trivial, its labels are all one class ({metric} {text or 'n/a'}; {count}).")
        elif mean_label is not None and max(mean_label, 1 - mean_label) >= TRIVIAL_MAJORITY_SHARE:
            lines.append(f"{name}: trivial, one class holds {max(mean_label, 1 - mean_label):.1%} of its rows, so "
                         f"a constant guess is right on most of them ({metric} {text}; {count}).")
        elif value is not None and value >= PERFECT_SCORE:
            lines.append(f"{name}: trivial, a perfect {metric} ({text}; {count}).")
        elif value is not None and overall is not None and value < overall - FAR_BELOW_MARGIN:
            lines.append(f"{name}: far below overall, {metric} {text} against {format_number(overall)} overall, "
                         f"{overall - value:.4f} lower ({count}).")
    return lines


def metrics_section(evaluation_uri: str, chart_metrics: list[str], blessing_metric: str | None = None,
                    class_names: list[str] = (), classification: bool = True) -> str:
    return metrics_html(metrics_by_slice(evaluation_uri), chart_metrics, blessing_metric, class_names, classification)


def metrics_html(
    by_slice: dict[str, dict[str, float]], chart_metrics: list[str], blessing_metric: str | None = None,
    class_names: list[str] = (),
    classification: bool = True,
) -> str:
    """The table of every metric per slice, a warning box of slices whose value of the blessing metric
    needs a second look (slice_warnings) and, for each metric that judged the model, a chart per slice
    feature."""
    if not by_slice:
        return "<p>No metrics recorded.</p>"
    names = sorted({m for metrics in by_slice.values() for m in metrics})
    ordered = ["Overall"] + sorted(s for s in by_slice if s != "Overall")
    rows = [[s] + [metric_cell(by_slice[s], m)[1] for m in names] for s in ordered if s in by_slice]
    header = ["slice", *(views.class_label(name, list(class_names)) for name in names)]
    parts = ["<h3>Overall and per slice</h3>", _table(header, rows, numeric=set(range(1, len(names) + 1)))]
    warnings = slice_warnings(by_slice, blessing_metric, classification) if blessing_metric else []
    if warnings:
        rule = (f"trivial: one class, nearly one class or a perfect score; far below: more than {FAR_BELOW_MARGIN:g} "
                f"under the overall {html.escape(blessing_metric)}" if classification else
                f"far worse: {html.escape(blessing_metric)} more than {FAR_WORSE_SHARE:.0%} above the overall one")
        parts.append(
            f'<div class="warn"><p><b>Slices to look at twice</b> ({rule}):</p><ul>'
            + "".join(f"<li>{html.escape(line)}</li>" for line in warnings) + "</ul></div>"
        )
    columns = sorted({s.split(" = ")[0] for s in by_slice if s != "Overall"})
    for metric in chart_metrics:
        for column in columns:
            slices = sorted(s for s in by_slice if s.startswith(column + " = "))
            if not any(metric in by_slice[s] for s in slices):
                continue
            labels = [s.split(" = ", 1)[1] for s in slices]
            values, notes = [], []
            for s in slices:
                value, text = metric_cell(by_slice[s], metric)
                count = f"(n={int(by_slice[s].get('example_count', 0))})"
                values.append(value)
                notes.append(count if value is not None else f"{text or 'n/a'} {count}")
            overall = metric_cell(by_slice.get("Overall", {}), metric)[0]
            title = f"{metric} by {column}"
            parts.append(_image(bar_chart_svg(title, labels, values, notes, overall), title))
    return "".join(parts)


def slices_against_baseline(evaluation_uri: str, metrics: list[str], class_names: list[str]) -> str:
    """Each slice's value of each metric, the candidate's beside the baseline's and the change (the candidate's
    minus the baseline's), with the report's rules: "n/a (one class)" where the slice has no such value."""
    candidate = artifact_files.slice_metrics(evaluation_uri)
    baseline = artifact_files.slice_metrics(evaluation_uri, baseline=True)
    if not candidate:
        return views.view("slices-vs-baseline", "Per slice: candidate against baseline", "<p>No metrics recorded.</p>",
                    wide=True)
    header = ["slice", "examples"]
    for metric in metrics:
        label = views.class_label(metric, class_names)
        header += [f"{label} candidate", f"{label} baseline", "change"]
    rows = []
    order = ["overall"] + sorted(s for s in candidate if s != "overall")
    for where in order:
        values = candidate.get(where, {})
        count = values.get("example_count")
        row = [f"<td>{html.escape(where)}</td>", f'<td class="num">{views.format_statistic(count)}</td>']
        for metric in metrics:
            ours, text = metric_cell(values, metric)
            theirs, base_text = metric_cell(baseline.get(where, {}), metric) if baseline else (None, "-")
            change = None if ours is None or theirs is None else ours - theirs
            css = "" if change is None or abs(change) < 5e-5 else (' style="color:#11703a"' if change > 0
                                                                     else ' style="color:#b3261e"')
            row += [f'<td class="num">{html.escape(text or "-")}</td>',
                    f'<td class="num">{html.escape(base_text or "-")}</td>',
                    f'<td class="num"{css}>{"-" if change is None else f"{change:+.4f}"}</td>']
        rows.append("<tr>" + "".join(row) + "</tr>")
    table = ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>")
    note = ("<p>The baseline is the model the candidate would replace, evaluated on the same rows.</p>" if baseline
            else "<p>No baseline: no model was serving, so there is nothing to compare with (\"-\").</p>")
    return views.view("slices-vs-baseline", "Per slice: candidate against baseline", note + table, wide=True)


# The columns of the thresholds table, in the report and in `pipeline blessing`'s Markdown.
THRESHOLD_COLUMNS = ["metric", "slice", "threshold", "candidate", "baseline", "change", "result"]


def threshold_row(check: artifact_files.ThresholdCheck) -> list[str]:
    """One threshold on one slice as a table row: the values compared and TFMA's verdict."""
    change = check.change
    return [
        check.metric, check.slice, check.bound,
        "no rows" if check.value is None else format_number(check.value),
        "-" if check.baseline is None else format_number(check.baseline),
        "-" if change is None or check.kind != "change" else f"{change:+.4f}",
        "not applied (no baseline)" if check.passed is None else check.result,
    ]


def baseline_text(checks: list[artifact_files.ThresholdCheck], baseline_model_id: int | None) -> str:
    """Which model the candidate was compared with, or that there was none (so no change threshold applied)."""
    if any(check.baseline is not None for check in checks) or baseline_model_id:
        model = f"model {baseline_model_id}" if baseline_model_id else "a baseline model"
        return (f"Baseline: {model}, the model the candidate would replace; the change is the candidate's value "
                "minus the baseline's.")
    return ("No baseline: no model was serving, so this is the first model judged and the change thresholds "
            "did not apply.")


def blessing_section(evaluator: run_summary.ComponentRun | None) -> str:
    """The Evaluator's decision, and every threshold per slice with the values it compared."""
    if evaluator is None:
        return "<p>The run did not evaluate a model.</p>"
    blessing = evaluator.output("blessing")
    blessed = bool(property_value(blessing.custom_properties, "blessed")) if blessing else None
    parts = [
        '<p>Decision: <span class="ok">BLESSED</span></p>' if blessed
        else '<p>Decision: <span class="bad">NOT BLESSED</span></p>'
    ]
    try:
        checks = run_summary.threshold_checks(evaluator)
    except artifact_files.UnreadableArtifact as error:  # An old or partial evaluation: say so, go on.
        return "".join(parts) + f"<p>Evaluation unreadable: {html.escape(str(error))}</p>"
    if checks:
        baseline_id = property_value(blessing.custom_properties, "baseline_model_id") if blessing else None
        parts.append(f"<p>{html.escape(baseline_text(checks, baseline_id))}</p>")
        parts.append(_table(THRESHOLD_COLUMNS, [threshold_row(check) for check in checks], numeric={3, 4, 5}))
        if blessed:
            parts.append("<p>Every threshold that applied was met.</p>")
        else:
            evaluation = evaluator.output("evaluation")
            parts += [f"<p class='bad'>Failed: {html.escape(line)}</p>"
                      for line in artifact_files.blessing_failures(evaluation.uri)]
    parts.append("<p>The thresholds are the task's (its <code>task.py</code>) or the settings blessing_lower_bound "
                 "and blessing_max_decrease (blessing_upper_bound and blessing_max_increase for a metric where lower "
                 "is better) and blessing_slice_thresholds (docs/configuration.md).</p>")
    return "".join(parts)


# -------------------------------------------------------------------------------------------- outcome


def _tfx_error(component: run_summary.ComponentRun) -> str:
    """The error message TFX kept on a failed execution (its `__execution_result__`), if any: it keeps one
    only when the executor returned it, never an executor's exception."""
    kept = component.execution.custom_properties.get("__execution_result__")
    if kept is None or not kept.string_value:
        return ""
    try:
        return json.loads(kept.string_value).get("resultMessage", "")
    except ValueError:
        return kept.string_value


def outcome(info: RunInfo) -> tuple[str, str, str]:
    """(kind, headline, detail) of how a run ended, as the console said it: `detail` is the full reason
    (the data gate's message, the failed component's error, the blessing refusal), empty when none."""
    record = info.record
    by_node = {c.node_id: c for c in info.components}
    failed = next((c for c in info.components if c.state == "failed"), None)
    if record.get("data_gate"):
        return "bad", f"Stopped by the data gate ({run_summary.DATA_GATE_ID}): no model was trained.", record["data_gate"]
    if failed is not None or record.get("error"):
        where = failed.node_id if failed is not None else "the run"
        error = record.get("error") or (_tfx_error(failed) if failed is not None else "")
        if not error:
            log = record.get("log_file")
            error = ("ML Metadata holds no error for it (TFX marks the execution failed and keeps no exception)"
                     + (f"; the run's log file: {log}" if log else "; the run's log file, under logs/ in the output root, "
                        "has it"))
        elif record.get("log_file"):
            error += f"\n(the full log: {record['log_file']})"
        return "bad", f"Stopped: {where} failed.", error
    if info.status != "complete":
        last = info.components[-1].node_id if info.components else "none"
        return "bad", f"The run is {info.status}: its last component was {last} (still running, or killed).", ""
    evaluator = by_node.get("Evaluator")
    if info.blessed:
        pusher = by_node.get("Pusher")
        pushed = pusher.output("pushed_model") if pusher else None
        if pushed is not None and property_value(pushed.custom_properties, "pushed"):
            where = property_value(pushed.custom_properties, "pushed_destination")
            return "ok", f"Blessed, and pushed as version {info.pushed_version} to {where}.", ""
        return "ok", "Blessed; not pushed (the model was already serving, or the run had no Pusher).", ""
    if evaluator is not None:
        reason = record.get("blessing_reason")
        evaluation = evaluator.output("evaluation")
        if not reason and evaluation is not None:
            try:
                reason = "; ".join(artifact_files.blessing_failures(evaluation.uri))
            except (OSError, artifact_files.UnreadableArtifact) as error:  # Its files are gone: say so.
                reason = f"the evaluation is unreadable: {error}"
        return "bad", "Not blessed, so not pushed.", reason
    if info.components and info.components[-1].node_id == run_summary.DATA_GATE_ID:
        return "ok", "A validation run: the data gate passed the data and the run stopped there, training nothing.", ""
    return "ok", "Complete; no model was evaluated.", ""


def outcome_section(info: RunInfo) -> str:
    """The run's outcome, first in the report: one line, and the full reason of a stop or a refusal."""
    kind, headline, detail = outcome(info)
    parts = [f'<div class="outcome"><p class="{kind}">{html.escape(headline)}</p>']
    if detail:
        parts.append(f"<pre>{html.escape(detail)}</pre>")
    return "".join(parts) + "</div>"


# -------------------------------------------------------------------------------------------- lineage


def lineage_image(graph: dict) -> str:
    """The lineage graph (lineage.lineage_graph's, as a dict), drawn into the page at its own size
    (graph_svg), so its text reads as drawn."""
    return views.view("lineage", "Lineage of the model (the baseline it was compared with in orange)",
                      graph_svg(graph), wide=True)


# The lineage drawing: boxes per row, so that it is drawn at its size in the report's column (72em).
LINEAGE_PER_ROW = 5


def graph_svg(graph: dict) -> str:
    """A top-to-bottom layered drawing of the lineage graph: each layer a row of at most LINEAGE_PER_ROW
    boxes (a wider layer wraps), text of 12 and 11 px, drawn unscaled (about 1,000 px wide). Artifacts are
    boxes (the baseline model orange), executions rounded (a rollback red)."""
    nodes = {f"a{i}": a for i, a in graph["artifacts"].items()}
    nodes |= {f"e{i}": e for i, e in graph["executions"].items()}
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target in graph["edges"]:
        if source in nodes and target in nodes:
            parents[target].append(source)
    depth: dict[str, int] = {}

    def depth_of(node: str, trail: tuple = ()) -> int:
        if node not in depth:
            depth[node] = 1 + max(
                (depth_of(p, trail + (node,)) for p in parents[node] if p not in trail), default=-1
            )
        return depth[node]

    for node in nodes:
        depth_of(node)
    layers: dict[int, list[str]] = {}
    for node in sorted(nodes, key=lambda n: (depth[n], n[0], int(n[1:]))):
        layers.setdefault(depth[node], []).append(node)
    rows = [members[i:i + LINEAGE_PER_ROW] for _, members in sorted(layers.items())
            for i in range(0, len(members), LINEAGE_PER_ROW)]
    box_w, box_h, gap_x, gap_y = 178, 40, 22, 30
    width = LINEAGE_PER_ROW * (box_w + gap_x) + gap_x
    height = len(rows) * (box_h + gap_y) + gap_y
    position = {}
    for r, members in enumerate(rows):
        left = (width - len(members) * (box_w + gap_x) + gap_x) / 2
        for index, node in enumerate(members):
            position[node] = (left + index * (box_w + gap_x), gap_y / 2 + r * (box_h + gap_y))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             '<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>',
             '<rect width="100%" height="100%" fill="white"/>']
    for source, target in graph["edges"]:
        if source in position and target in position:
            (x0, y0), (x1, y1) = position[source], position[target]
            parts.append(f'<line x1="{x0 + box_w / 2:.1f}" y1="{y0 + box_h}" x2="{x1 + box_w / 2:.1f}" y2="{y1}" '
                         'stroke="#999" marker-end="url(#lineage-arrow)"/>')
    for node, (x, y) in position.items():
        info = nodes[node]
        if node.startswith("a"):
            first, second, fill, stroke, rx = info["type"], f"#{info['id']}", "#e8f0fe", "#4a7fd4", 0
            version = info["properties"].get("pushed_version")
            if version:
                second += f" v{version}"
            if info.get("baseline"):
                first, fill, stroke = f"{info['type']} (baseline)", "#fde9cf", "#d9731a"
        else:
            rollback = info["node"] == ROLLBACK_TYPE
            first, second = info["node"][:26], f"#{info['id']} {info['state'].lower()}"
            fill, stroke, rx = ("#fde8e8" if rollback else "#eef7e8"), "#3d8b40", 14
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="{rx}" fill="{fill}" '
                     f'stroke="{stroke}"/>')
        parts.append(_svg_text(x + box_w / 2, y + 17, first, 12, anchor="middle", weight="bold"))
        parts.append(_svg_text(x + box_w / 2, y + 32, second, 11, anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------- report


def previous_statistics(store: metadata_store.MetadataStore, data_gate: run_summary.ComponentRun | None):
    """The statistics the data gate compared the run's data with (its `baseline_statistics` input: the last
    data it passed), or None when it had none."""
    if data_gate is None:
        return None
    ids = [e.artifact_id for e in events.inputs(store, [data_gate.execution.id])
           if events.key(e) == "baseline_statistics"]
    return store.get_artifacts_by_id(ids)[0] if ids else None


def render_report(store: metadata_store.MetadataStore, config: configs.PipelineConfig, run: str) -> str:
    info = find_run(store, config.pipeline_name, run)
    by_node = {c.node_id: c for c in info.components}

    def output(node: str, key: str):
        component = by_node.get(node)
        return component.output(key) if component else None

    record = info.record
    sections = [f"<h1>Run {html.escape(info.name)} of {html.escape(config.pipeline_name)}</h1>",
                "<h2>Outcome</h2>" + outcome_section(info)]
    # A failed run's record holds only its error (run_record.record_failure).
    provenance = bool(record.get("user"))
    who = (
        f"{record.get('user')}@{record.get('host')}, runner {record.get('runner')}, commit "
        f"{record.get('git_commit') or 'none'}{' (dirty)' if record.get('git_dirty') == 1 else ''}"
        if provenance else "not recorded (a failed run, or one made before run records existed)"
    )
    sections.append(_table(["", ""], [
        ["status", info.status], ["duration", f"{info.seconds:.1f}s"], ["run by", who],
        ["blessed", {True: "yes", False: "no", None: "not evaluated"}[info.blessed]],
        ["pushed version", info.pushed_version or "not pushed"],
    ]))
    sections.append("<h2>Components</h2>")
    sections.append(_table(["component", "state", "seconds"],
                           [[c.node_id, c.state, f"{c.seconds:.1f}"] for c in info.components], numeric={2}))
    if provenance:
        code_rows = [[k.removesuffix("_sha256"), v] for k, v in sorted(record.items()) if k.endswith("_sha256")]
        task_files = record.get("task_files") or {}
        code_rows += [[f"{record.get('task')}/{name}", digest] for name, digest in sorted(task_files.items())]
        sections.append("<h2>Code and data fingerprints</h2>" + _table(["file", "sha256"], code_rows))
        files = record.get("input_files") or {}
        sections.append(_table(["input file", "sha256", "bytes"],
                               [[n, f["sha256"], f"{f['bytes']:,}"] for n, f in files.items()], numeric={2}))
        sections.append(f"<p>Data spans: {html.escape(str(record.get('spans')))}</p>")
        config_rows = sorted((record.get("config") or {}).items())
        sections.append("<details><summary>Configuration</summary>"
                        + _table(["setting", "value"], [[k, json.dumps(v)] for k, v in config_rows]) + "</details>")
    statistics = output("StatisticsGen", "statistics")
    if statistics:
        previous = previous_statistics(store, by_node.get(run_summary.DATA_GATE_ID))
        sections.append("<h2>Data statistics</h2>" + views.statistics_views(statistics.uri, previous and previous.uri)
                        + "<details><summary>Every statistic per split</summary>"
                        + statistics_section(statistics.uri) + "</details>")
    else:
        sections.append("<h2>Data statistics</h2><p>None.</p>")
    anomalies = output("ExampleValidator", "anomalies")
    sections.append("<h2>Anomalies</h2>" + (anomalies_section(anomalies.uri) if anomalies else "<p>None.</p>"))
    schema = output("CuratedSchemaImporter", "schema")
    sections.append("<h2>Schema (curated)</h2>" + (schema_section(schema.uri) if schema else "<p>None.</p>"))
    evaluation = output("Evaluator", "evaluation")
    checks = run_summary.threshold_checks(by_node["Evaluator"]) if "Evaluator" in by_node else []
    judged_by = sorted({check.metric for check in checks})
    task = run_task(record, config)
    sections.append(
        "<h2>Evaluation</h2>"
        + (metrics_section(evaluation.uri, judged_by, task.blessing_metric, list(task.classes), not task.regression)
           if evaluation else "<p>None.</p>")
    )
    classes = list(task.classes)
    if evaluation:  # The views under the metrics table, the plots first.
        judged = [c.slice for c in checks if c.slice != "overall"]
        sections.append("<h3>Plots</h3>" + views.evaluation_views(evaluation.uri, classes, ["overall", *dict.fromkeys(judged)]))
        sections.append(slices_against_baseline(evaluation.uri, judged_by or [task.blessing_metric],
                                                      classes))
    model_run = output("Trainer", "model_run")
    if model_run is not None:
        sections.append("<h2>Training</h2>" + views.training_views(model_run.uri))
    sections.append("<h2>Blessing</h2>" + blessing_section(by_node.get("Evaluator")))
    pushed = output("Pusher", "pushed_model")
    model = output("Trainer", "model")
    target = pushed if pushed is not None and property_value(pushed.custom_properties, "pushed") else model
    if target is not None:
        story = model_lineage(store, config.serving_model_dir, str(target.id))
        sections.append("<h2>Lineage</h2>" + lineage_image(story["graph"]))
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Run {html.escape(info.name)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(store, config: configs.PipelineConfig, run: str, output: str | None = None) -> str:
    """Render the report and write it atomically; returns its path."""
    page = render_report(store, config, run)
    if output is None:
        output = config.report_file(find_run(store, config.pipeline_name, run).name)
    output = os.path.abspath(output)
    partial = output + ".partial"
    try:
        os.makedirs(os.path.dirname(output), exist_ok=True)
        with open(partial, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(partial, output)
    except OSError as error:
        raise BadArgument(f"cannot write {output}: {error.strerror or error}") from None
    return output
