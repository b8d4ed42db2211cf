"""The pre-flight check of input CSV files, on its own (tests/pipeline/components/test_data_gate.py runs it through the runners,
in the plain and the span layout)."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import random

import pytest

from pipeline import configs, inputs
from pipeline.guards import input_checks
from tests.conftest import DATA_CSV, curated_schema, read_rows


def _csv(rows: list[dict[str, str]], columns: list[str] | None = None, line_end: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or list(rows[0]), lineterminator=line_end, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return random.Random(5).sample(read_rows(), 300)


def test_the_shipped_data_passes_and_its_rows_are_counted_once():
    header = input_checks.check_csv_file(DATA_CSV, ["tips"], curated_schema())
    assert "tips" in header and len(header) == 18
    # Arrow read the clean file and kept its row count for the run's closing rows-in/rows-out check.
    assert input_checks._row_counts[input_checks._file_key(str(DATA_CSV))] == 15002
    assert input_checks.count_rows([str(DATA_CSV)]) == 15002


def test_rows_are_counted_like_csv_records(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('a,tips\n1,"two\nlines"\n2,3\n')
    assert input_checks.count_rows([str(path)]) == 2
    (tmp_path / "odd.csv").write_bytes(b"a,tips\n1,2\n\xe9,3\n")  # not UTF-8: counted by Python's csv
    assert input_checks.count_rows([str(tmp_path / "odd.csv")]) == 2
    (tmp_path / "packed.csv.gz").write_bytes(gzip.compress(b"a,tips\n1,2\n3,4\n5,6\n"))
    assert input_checks.count_rows([str(tmp_path / "packed.csv.gz")]) == 3


def test_files_with_different_headers_are_refused(tmp_path):
    (tmp_path / "a.csv").write_text("fare,tips\n1.0,0.5\n")
    (tmp_path / "b.csv").write_text("tips,fare\n0.5,1.0\n")
    with pytest.raises(configs.ConfigError, match=r"b\.csv has a different header from .*a\.csv"):
        input_checks.check_files(inputs.resolve(str(tmp_path), "*.csv"))


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


def test_problems_in_a_span_name_the_span_the_file_and_the_line(tmp_path, rows):
    (tmp_path / "span-3").mkdir()
    (tmp_path / "span-3" / "data.csv").write_text(_csv(rows))
    (tmp_path / "span-4").mkdir()
    bad = _csv(rows).splitlines(keepends=True)
    bad[9] = "1,2,3\n"
    (tmp_path / "span-4" / "data.csv").write_text("".join(bad))
    run_input = inputs.resolve(str(tmp_path), "span-{SPAN}/*.csv")
    assert (run_input.span, run_input.describe()) == (4, "files span-4/data.csv; span 4")
    with pytest.raises(configs.ConfigError) as error:
        input_checks.check_files(run_input, curated_schema(), ["tips"])
    assert str(error.value) == (
        f"input file {tmp_path / 'span-4' / 'data.csv'} (span 4): line 10 has 3 fields, the header has 18"
    )


def test_the_header_must_hold_the_columns_the_curated_schema_knows_and_requires(tmp_path, rows):
    schema = curated_schema()
    path = tmp_path / "data.csv"
    path.write_text(_csv([dict(row, driver_id="7") for row in rows], [*rows[0], "driver_id"]))
    unknown = "the header has column\\(s\\) the curated schema does not know: driver_id"
    with pytest.raises(configs.ConfigError, match=unknown):
        input_checks.check_csv_file(path, ["tips"], schema)
    path.write_text(_csv(rows, [c for c in rows[0] if c not in ("fare", "company")]))
    missing = "the header lacks column\\(s\\) the curated schema requires: company, fare"
    with pytest.raises(configs.ConfigError, match=missing):
        input_checks.check_csv_file(path, ["tips"], schema)
    # The schema lets pickup_census_tract be absent altogether (it is nearly always empty).
    path.write_text(_csv(rows, [c for c in rows[0] if c != "pickup_census_tract"]))
    input_checks.check_csv_file(path, ["tips"], schema)


@pytest.mark.parametrize("variant", ["gzip", "bzip2", "byte order mark", "CRLF", "columns reordered", "quotes"])
def test_valid_variants_pass_with_every_row_counted(variant, tmp_path, rows):
    rows = [dict(row) for row in rows]
    columns, line_end, name = list(rows[0]), "\n", "data.csv"
    if variant == "columns reordered":
        columns = columns[::-1]
    if variant == "CRLF":
        line_end = "\r\n"
    if variant == "quotes":
        rows[0]["company"] = 'Taxi, "the best" Co.'
        rows[1]["company"] = "two\nlines"
    text = _csv(rows, columns, line_end)
    data = ("\ufeff" + text).encode() if variant == "byte order mark" else text.encode()
    if variant == "gzip":
        data, name = gzip.compress(data), "data.csv.gz"
    if variant == "bzip2":
        data, name = bz2.compress(data), "data.csv.bz2"
    (tmp_path / "span-1").mkdir()
    (tmp_path / "span-1" / name).write_bytes(data)
    run_input = inputs.resolve(str(tmp_path), "span-{SPAN}/data.csv*")
    input_checks.check_files(run_input, curated_schema(), ["tips"])
    assert input_checks.count_rows(run_input.files) == len(rows)
    assert inputs.read_header(run_input.files[0]) == columns


def test_a_compressed_file_gets_the_same_messages(tmp_path, rows):
    lines = _csv(rows).splitlines(keepends=True)
    lines[6] = "1,2,3\n"
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress("".join(lines).encode()))
    with pytest.raises(configs.ConfigError, match=r"data\.csv\.gz: line 7 has 3 fields, the header has 18$"):
        input_checks.check_csv_file(tmp_path / "data.csv.gz", ["tips"])
    (tmp_path / "empty.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(configs.ConfigError, match=r"empty\.csv\.gz is empty"):
        input_checks.check_csv_file(tmp_path / "empty.csv.gz")
