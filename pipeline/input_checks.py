"""A fast look at the input CSV files before any component starts.

Some inputs make TFX fail before the data gate can judge them, with a stack trace from deep inside a Beam
worker: an empty file, a header without rows, a row with the wrong number of fields, bytes that are not
UTF-8, no label. Arrow reads each file once (about 1 s per million rows); only a file it finds something wrong
with is read again line by line (about 0.1 s per 15,000 rows), to name the file and the line or column.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from modules import features
from pipeline.configs import ConfigError

# Problems listed per file before the rest are only counted.
MAX_PROBLEMS_SHOWN = 5
_BLOCK_BYTES = 16 * 2**20
# Rows of files checked in this process, by (path, size, modification time): the run's closing
# rows-in/rows-out check reads them from here instead of reading the files again.
_row_counts: dict[tuple[str, int, int], int] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _is_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as f:
            while block := f.read(_BLOCK_BYTES):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _clean_row_count(path: Path, header: list[str], label_column: str | None) -> int | None:
    """Rows of a file Arrow reads cleanly: UTF-8 throughout, every row with the header's number of
    fields, no blank line and (given label_column) a label in every row. None if anything is off."""
    if not _is_utf8(path):
        return None
    column = label_column or header[0]
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=_BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(include_columns=[column], column_types={column: pa.string()}),
        )
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if label_column and pc.any(pc.equal(pc.utf8_trim_whitespace(batch.column(0)), "")).as_py():
                return None
    except pa.ArrowInvalid:
        return None
    return rows


def row_count(path: Path) -> int:
    """CSV records in the file, header excluded (a quoted field may span lines)."""
    key = _file_key(path)
    if key not in _row_counts:
        with open(path, newline="", errors="replace") as f:
            header = next(csv.reader(f), [])
        rows = _clean_row_count(path, header, None) if header else 0
        if rows is None:
            with open(path, newline="", errors="replace") as f:
                rows = max(sum(1 for _ in csv.reader(f)) - 1, 0)
        _row_counts[key] = rows
    return _row_counts[key]


class _Problems:
    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self.count = 0
        self.undecodable_lines: set[int] = set()

    def add(self, line: str) -> None:
        self.count += 1
        if len(self.lines) < MAX_PROBLEMS_SHOWN:
            self.lines.append(line)

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.lines)
        message = f"input file {self.path}: " + "; ".join(self.lines)
        if more:
            message += f"; and {more} more problem(s)"
        raise ConfigError(message)


def _decoded_lines(path: Path, problems: _Problems) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 is reported and skipped."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.undecodable_lines.add(number)
                problems.add(
                    f"line {number} is not UTF-8 text (byte {error.start + 1} of the line is "
                    f"{raw[error.start:error.start + 1]!r})"
                )
                yield "\n"  # Keeps csv's line numbers right.


def check_csv_file(path: Path, label_column: str = features.TIPS_KEY) -> list[str]:
    """The file's header; raises ConfigError naming each problem found (the first few of them)."""
    if path.stat().st_size == 0:
        raise ConfigError(f"input file {path} is empty: expected a header line and rows")
    problems = _Problems(path)
    reader = csv.reader(_decoded_lines(path, problems))
    header = next(reader, None)
    if not header or not any(name.strip() for name in header):
        problems.add("line 1 should be the header (column names) but is blank")
        problems.raise_if_any()
    for position, name in enumerate(header, start=1):
        if not name.strip():
            problems.add(f"column {position} of the header has no name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        problems.add(f"the header names column(s) {', '.join(duplicates)} more than once")
    label_index = header.index(label_column) if label_column in header else None
    if label_index is None:
        problems.add(
            f"the header has no {label_column!r} column, which the label is computed from "
            f"(columns: {', '.join(header)})"
        )
    if not problems.count and label_index is not None:
        rows = _clean_row_count(path, header, label_column)
        if rows:
            _row_counts[_file_key(path)] = rows
            return header
    # Something is off (or there are no rows): line by line, to say what and where.
    rows = 0
    for row in reader:
        rows += 1
        if reader.line_num in problems.undecodable_lines:
            continue
        if row == [] or row == [""]:
            problems.add(f"line {reader.line_num} is blank")
            continue
        if len(row) != len(header):
            problems.add(f"line {reader.line_num} has {len(row)} fields, the header has {len(header)}")
        elif label_index is not None and not row[label_index].strip():
            problems.add(f"line {reader.line_num} has no value in the label column {label_column!r}")
    if rows == 0:
        problems.add("it has a header but no rows")
    problems.raise_if_any()
    return header


def check_csv_inputs(data_root: str, input_pattern: str) -> None:
    """Every input file matching the pattern is readable CSV with the same header and a label."""
    first: tuple[Path, list[str]] | None = None
    for path in sorted(Path(data_root).glob(input_pattern)):
        if not path.is_file():
            continue
        header = check_csv_file(path)
        if first is None:
            first = (path, header)
        elif header != first[1]:
            raise ConfigError(
                f"input file {path} has a different header from {first[0]}: CsvExampleGen reads all "
                f"files of a split with one header ({', '.join(header)} vs {', '.join(first[1])})"
            )
