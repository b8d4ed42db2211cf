"""Progress lines: each component's start and finish, and a line now and then while a long one runs."""

from __future__ import annotations

import io
import re
import threading
import time

import absl.logging

from pipeline import configs
from pipeline.metadata import artifact_files, run_summary
from pipeline.runners import progress
from tests.tfma_evaluations import evaluator_run


def test_a_long_component_says_it_is_still_running_and_a_short_one_does_not():
    out = io.StringIO()
    with progress.component_progress(out, interval_s=1.0):
        absl.logging.info("Component %s is running.", "StatisticsGen")
        time.sleep(3.5)
        absl.logging.info("Component %s is finished.", "StatisticsGen")
        absl.logging.info("Component %s is running.", "SchemaGen")
        absl.logging.info("Component %s is finished.", "SchemaGen")
        time.sleep(1.5)
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in out.getvalue().splitlines()]
    assert lines[0] == f"{'StatisticsGen':<32} started"
    assert re.fullmatch(rf"{'StatisticsGen':<32} finished in 3\.\ds", lines[-3])
    assert lines[-2:] == [f"{'SchemaGen':<32} started", f"{'SchemaGen':<32} finished in 0.0s"]
    # A line a second while it ran (on a busy machine a line may come late, never twice for one second).
    running = [int(re.fullmatch(rf"{'StatisticsGen':<32} running for (\d)s", line)[1]) for line in lines[1:-3]]
    assert running[0] <= 2 and len(running) >= 2 and running == sorted(set(running)) and running[-1] <= 3
    assert "component-heartbeat" not in {thread.name for thread in threading.enumerate()}


def test_durations_read_as_minutes_and_seconds():
    assert [progress._duration(s) for s in (0.4, 30, 59.9, 60, 754)] == ["0s", "30s", "59s", "1m00s", "12m34s"]


def _summary(evaluator: run_summary.ComponentRun) -> run_summary.RunSummary:
    """A run's summary around its Evaluator, as summarize_latest_run reads it from the store."""
    evaluation = evaluator.output("evaluation").uri
    blessed = bool(evaluator.output("blessing").custom_properties["blessed"].int_value)
    return run_summary.RunSummary(
        pipeline_name="chicago-taxi", run_id="2026-01-02T03:04:05.000001", components=[evaluator],
        rows_per_split={}, anomalies={}, eval_metrics=artifact_files.overall_metrics(evaluation), blessed=blessed,
        pushed_to=None, blessing_reason=None if blessed else "; ".join(artifact_files.blessing_failures(evaluation)),
        blessing_checks=run_summary.threshold_checks(evaluator),
    )


def test_the_summary_lists_each_threshold_per_slice_and_names_a_failed_slice(tmp_path):
    config = configs.load_config(
        blessing_lower_bound=0.7, blessing_max_decrease=0.0,
        blessing_slice_thresholds='{"payment_type=Credit Card": {"lower_bound": 0.6, "max_decrease": 0.03}}')
    card = (("payment_type", "Credit Card"),)
    first = {"overall": {"auc": 0.95}, card: {"auc": 0.63}}
    text = progress.format_summary(_summary(evaluator_run(tmp_path / "first", config, first)))
    lines = text.splitlines()
    assert lines[lines.index("Eval metrics (overall): auc 0.9500"):][:6] == [
        "Eval metrics (overall): auc 0.9500",
        "Blessing thresholds (TFMA's verdict on each):",
        "  auc (overall) 0.9500, at least 0.7: pass",
        "  auc (overall): no decrease against the baseline: not applied (no baseline: the first model judged)",
        "  auc (payment_type=Credit Card) 0.6300, at least 0.6: pass",
        "  auc (payment_type=Credit Card): a decrease of at most 0.03 against the baseline: not applied "
        "(no baseline: the first model judged)",
    ]
    worse_on_cards = {"overall": {"auc": 0.96}, card: {"auc": 0.62}}
    text = progress.format_summary(_summary(evaluator_run(tmp_path / "second", config, worse_on_cards, first)))
    assert ("  auc (payment_type=Credit Card) 0.6200 against the baseline's 0.6300, change -0.0100, a decrease of at "
            "most 0.03 against the baseline: pass") in text.splitlines()
    assert "Blessed: yes" in text.splitlines()
    worse_on_cards[card]["auc"] = 0.59
    text = progress.format_summary(_summary(evaluator_run(tmp_path / "third", config, worse_on_cards, first)))
    assert "  auc (payment_type=Credit Card) 0.5900, at least 0.6: FAIL" in text.splitlines()
    assert "Blessed: no" in text.splitlines()
    assert ("Not blessed because: auc (payment_type=Credit Card) 0.5900 is below the lower bound 0.6; auc "
            "(payment_type=Credit Card) 0.5900 against the blessed baseline's 0.6300: a change of -0.0400, the "
            "threshold allows no less than -0.0300") in text.splitlines()


def test_a_component_served_from_the_cache_says_cached():
    """TFX's launcher logs the cache hit between the orchestrator's two lines, in the node's own thread;
    two nodes running side by side (the Beam runner) each get their own word."""
    out = io.StringIO()
    with progress.component_progress(out):
        absl.logging.info("node %s is running.", "Trainer")

        def cached_node():
            absl.logging.info("node %s is running.", "SchemaGen")
            absl.logging.info("A cached execution %d is used.", 7)
            absl.logging.info("node %s is finished.", "SchemaGen")

        other = threading.Thread(target=cached_node)
        other.start()
        other.join()
        absl.logging.info("node %s is finished.", "Trainer")
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in out.getvalue().splitlines()]
    assert lines[:3] == [f"{'Trainer':<32} started", f"{'SchemaGen':<32} started", f"{'SchemaGen':<32} cached"]
    assert re.fullmatch(rf"{'Trainer':<32} finished in \d\.\ds", lines[3])


def test_the_summary_ends_naming_the_log_file_and_the_reports_command():
    summary = run_summary.RunSummary(
        pipeline_name="chicago-taxi", run_id="2026-12-07T06:39:20.182398", components=[], rows_per_split={},
        anomalies={}, eval_metrics={}, blessed=None, pushed_to=None,
    )
    text = progress.format_summary(summary, "/out/logs/run.log", "/out/reports/my reports/report-x.html")
    assert text.splitlines()[-3:] == [
        "Pushed: no",
        "Log: /out/logs/run.log",
        "Report: pipeline report 2026-12-07T06:39:20.182398 -o '/out/reports/my reports/report-x.html'",
    ]
    # A run on Airflow has no log file of its own (its task logs are the run's): no Log line.
    assert progress.format_summary(summary, None, "/r.html").splitlines()[-2:] == [
        "Pushed: no", "Report: pipeline report 2026-12-07T06:39:20.182398 -o /r.html"
    ]
