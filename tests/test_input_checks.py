"""The pre-flight check of input CSV files, on its own (tests/test_gates.py runs it through the runner)."""

from __future__ import annotations

import time

import pytest

from pipeline import configs, input_checks
from tests.conftest import DATA_CSV


def test_the_shipped_data_passes_quickly():
    started = time.monotonic()
    header = input_checks.check_csv_file(DATA_CSV)
    assert "tips" in header and len(header) == 18
    assert time.monotonic() - started < 5


def test_files_with_different_headers_are_refused(tmp_path):
    (tmp_path / "a.csv").write_text("fare,tips\n1.0,0.5\n")
    (tmp_path / "b.csv").write_text("tips,fare\n0.5,1.0\n")
    with pytest.raises(configs.ConfigError, match=r"b\.csv has a different header from .*a\.csv"):
        input_checks.check_csv_inputs(str(tmp_path), "*.csv")


def test_many_problems_are_listed_up_to_a_limit_then_counted(tmp_path):
    lines = ["fare,tips"] + [f"{i}.0" for i in range(8)]  # every row lacks a field
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(configs.ConfigError) as error:
        input_checks.check_csv_file(path)
    message = str(error.value)
    assert message.startswith(f"input file {path}: line 2 has 1 fields, the header has 2; line 3 ")
    assert message.count("has 1 fields") == input_checks.MAX_PROBLEMS_SHOWN
    assert message.endswith("; and 3 more problem(s)")


def test_a_quoted_field_across_lines_is_one_row_and_a_blank_line_is_named(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('company,tips\n"Taxi\nAffiliation",1.0\n\nFlash Cab,2.0\n')
    with pytest.raises(configs.ConfigError, match=r"line 4 is blank$"):
        input_checks.check_csv_file(path)
