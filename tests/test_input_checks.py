"""The pre-flight check of input CSV files, on its own (tests/test_gates.py runs it through the runner)."""

from __future__ import annotations

import pytest

from pipeline import configs, input_checks, inputs
from tests.conftest import DATA_CSV


def test_the_shipped_data_passes_and_its_rows_are_counted_once():
    header = input_checks.check_csv_file(DATA_CSV)
    assert "tips" in header and len(header) == 18
    # Arrow read the clean file and kept its row count for the run's closing rows-in/rows-out check.
    assert input_checks._row_counts[input_checks._file_key(DATA_CSV)] == 15002
    assert inputs.count_rows([str(DATA_CSV)]) == 15002


def test_rows_are_counted_like_csv_records(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('a,tips\n1,"two\nlines"\n2,3\n')
    assert inputs.count_rows([str(path)]) == 2
    (tmp_path / "odd.csv").write_bytes(b"a,tips\n1,2\n\xe9,3\n")  # not UTF-8: counted by Python's csv
    assert inputs.count_rows([str(tmp_path / "odd.csv")]) == 2


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
