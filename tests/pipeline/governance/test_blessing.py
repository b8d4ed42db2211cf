"""The blessing verdict as a CI job reads it: the Markdown table and the exit status, here from TFMA-shaped
evaluations judged by TFMA against the pipeline's eval config. The verdicts read from real stores (blessed,
not blessed, no model) are checked end to end in tests/ci/test_make_targets.py."""

from __future__ import annotations

from pipeline import configs
from pipeline.governance import blessing
from pipeline.metadata.artifact_files import ThresholdCheck
from tests.tfma_evaluations import evaluator_run


def _verdict(**changes) -> blessing.Verdict:
    found = blessing.Verdict(
        pipeline="p", run="2026-01-02T03:04:05.000001", status="complete", blessed=False,
        reason="auc (overall) 0.9412 is below the lower bound 0.999",
        checks=[
            ThresholdCheck("auc", "overall", "value", "at least 0.999", 0.9412, 0.95, False),
            ThresholdCheck("auc", "overall", "change", "a decrease of at most 0.05 against the baseline", 0.9412,
                           0.95, True),
        ],
        baseline="Baseline: model 7, the model the candidate would replace.",
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
    assert "| auc | overall | at least 0.999 | 0.9412 | 0.9500 | - | **FAIL** |" in text
    assert "| auc | overall | a decrease of at most 0.05 against the baseline | 0.9412 | 0.9500 | -0.0088 | pass |" in text
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
    found = _verdict(checks=[ThresholdCheck("recall (class 1)", "trip_start_day | payment_type", "value", "at least 0.5",
                                            0.4, None, False)])
    assert "| recall (class 1) | trip_start_day \\| payment_type | at least 0.5 | 0.4000 | - | - | **FAIL** |" in \
        blessing.markdown(found)


CONFIG = dict(blessing_lower_bound=0.7, blessing_max_decrease=0.0,
              blessing_slice_thresholds='{"payment_type=Credit Card": {"lower_bound": 0.6, "max_decrease": 0.03}}')
CARD = (("payment_type", "Credit Card"),)
FIRST = {"overall": {"auc": 0.95}, CARD: {"auc": 0.63}}


def _judged(tmp_path, candidate, baseline=None) -> blessing.Verdict:
    """The verdict on an evaluation TFMA judged by the pipeline's config, as `verdict` reads it from a store."""
    evaluator = evaluator_run(tmp_path, configs.load_config(**CONFIG), candidate, baseline)
    blessed = bool(evaluator.output("blessing").custom_properties["blessed"].int_value)
    return _verdict(blessed=blessed, **blessing.evaluator_judgment(evaluator))


def _auc_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| auc ")]


def test_a_first_model_says_there_was_no_baseline_and_lists_every_threshold_per_slice(tmp_path):
    text = blessing.markdown(_judged(tmp_path, FIRST))
    assert text.startswith("### Model blessed: ")
    assert ("No baseline: no model was serving, so this is the first model judged and the change thresholds did "
            "not apply.") in text
    assert _auc_rows(text) == [
        "| auc | overall | at least 0.7 | 0.9500 | - | - | pass |",
        "| auc | overall | no decrease against the baseline | 0.9500 | - | - | not applied (no baseline) |",
        "| auc | payment_type=Credit Card | at least 0.6 | 0.6300 | - | - | pass |",
        "| auc | payment_type=Credit Card | a decrease of at most 0.03 against the baseline | 0.6300 | - | - | "
        "not applied (no baseline) |",
    ]


def test_a_model_failing_only_its_slice_is_not_blessed_and_the_table_shows_the_change(tmp_path):
    found = _judged(tmp_path, {"overall": {"auc": 0.96}, CARD: {"auc": 0.58}}, FIRST)
    assert found.exit_status == blessing.EXIT_NOT_BLESSED
    text = blessing.markdown(found)
    assert "Baseline: model 7, the model the candidate would replace" in text and "No baseline" not in text
    assert text.splitlines()[2] == ("**Why:** auc (payment_type=Credit Card) 0.5800 is below the lower bound 0.6; "
                                    "auc (payment_type=Credit Card) 0.5800 against the blessed baseline's 0.6300: a "
                                    "change of -0.0500, the threshold allows no less than -0.0300")
    assert _auc_rows(text) == [
        "| auc | overall | at least 0.7 | 0.9600 | 0.9500 | - | pass |",
        "| auc | overall | no decrease against the baseline | 0.9600 | 0.9500 | +0.0100 | pass |",
        "| auc | payment_type=Credit Card | at least 0.6 | 0.5800 | 0.6300 | - | **FAIL** |",
        "| auc | payment_type=Credit Card | a decrease of at most 0.03 against the baseline | 0.5800 | 0.6300 | "
        "-0.0500 | **FAIL** |",
    ]
