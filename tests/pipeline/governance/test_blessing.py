"""The blessing verdict as a CI job reads it: the Markdown table and the exit status. The verdicts read from
real stores (blessed, not blessed, no model) are checked end to end in tests/ci/test_make_targets.py."""

from __future__ import annotations

from pipeline.governance import blessing


def _verdict(**changes) -> blessing.Verdict:
    found = blessing.Verdict(
        pipeline="p", run="2026-01-02T03:04:05.000001", status="complete", blessed=False,
        reason="auc (overall) 0.9412 is below the lower bound 0.999",
        checks=[
            blessing.Check("auc", "overall", "at least 0.999", "0.9412", "-", "FAIL"),
            blessing.Check("auc", "overall", "may fall by at most 0.05 against the blessed baseline's", "0.9412",
                           "0.9500 (change -0.0088)", "pass"),
        ],
        metrics={"auc": 0.9412, "example_count": 384.0, "precision": 0.7294},
        record={"user": "ci", "host": "runner", "runner": "local", "git_commit": "0123456789abcdef"},
        pushed_version=None,
    )
    for name, value in changes.items():
        setattr(found, name, value)
    return found


def test_a_model_not_blessed_exits_non_zero_with_the_failed_threshold_in_bold():
    found = _verdict()
    assert found.exit_status == blessing.EXIT_NOT_BLESSED != 0
    text = blessing.markdown(found)
    assert text.splitlines()[:3] == [
        "### Model NOT blessed: run 2026-01-02T03:04:05.000001 of p", "",
        "**Why:** auc (overall) 0.9412 is below the lower bound 0.999",
    ]
    assert "| auc | overall | at least 0.999 | 0.9412 | - | **FAIL** |" in text
    assert "| auc | overall | may fall by at most 0.05 against the blessed baseline's | 0.9412 | 0.9500 (change -0.0088) | pass |" in text
    # Metrics no threshold judged are listed once, below the table; the judged one is not repeated.
    assert "Other metrics (overall): example_count 384, precision 0.7294" in text
    assert "Run by ci@runner, runner local, commit 0123456789ab." in text


def test_a_blessed_model_exits_zero_and_names_its_serving_version():
    found = _verdict(blessed=True, reason="", pushed_version="1795845930")
    assert found.exit_status == 0
    text = blessing.markdown(found)
    assert text.startswith("### Model blessed: ") and "**Why:**" not in text
    assert "as version 1795845930" in text


def test_a_run_without_a_model_keeps_the_gate_message_whole_and_table_cells_stay_cells():
    gate = "the data gate stopped the run, so no model was trained: data gate: 1 problem(s)\n  [train] column 'a|b': bad"
    found = _verdict(blessed=None, reason=gate, checks=[], metrics={})
    assert found.exit_status == blessing.EXIT_NOT_BLESSED
    text = blessing.markdown(found)
    assert text.startswith("### No model evaluated: ")
    assert "**Why:** the data gate stopped the run, so no model was trained: data gate: 1 problem(s)\n\n```\n" \
           "  [train] column 'a|b': bad\n```" in text
    found = _verdict(checks=[blessing.Check("recall (class 1)", "trip_start_day | payment_type", "at least 0.5",
                                            "0.4", "-", "FAIL")])
    assert "| recall (class 1) | trip_start_day \\| payment_type | at least 0.5 | 0.4 | - | **FAIL** |" in \
        blessing.markdown(found)
