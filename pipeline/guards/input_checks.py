"""The pre-flight check: the run's input files, read once before any component starts.

Some inputs make TFX fail before the data gate can judge them, with a stack trace from deep inside a Beam
worker: an empty file, a header without rows, a row with the wrong number of fields, bytes that are not
UTF-8, no label, a header whose columns the curated schema does not have. Every runner checks the files
the run will read (`inputs.resolve`: in the span layout, the newest span's) before it starts anything:
the local and Beam runners (and so the scheduler's runs), Airflow and Luigi before the ExampleGen node,
the notebook before its first component. Arrow reads each file once, cheap beside the run
(bench/README.md); only a file it finds something wrong with is read again line by line, slower, to name
the file, its span, and the line or column.
"""

from __future__ import annotations

import codecs
import csv
import functools
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import inputs
from pipeline.guards import numeric_drift
from pipeline.configs import ENV_PREFIX, ConfigError, PipelineConfig

# Problems listed per file before the rest are only counted.
MAX_PROBLEMS_SHOWN = 5
_BLOCK_BYTES = 16 * 2**20
# Rows of files checked in this process, by (path, size, modification time): the run's closing
# rows-in/rows-out check reads them from here instead of reading the files again.
_row_counts: dict[tuple[str, int, int], int] = {}


def preflight(config: PipelineConfig) -> inputs.RunInput:
    """Everything a run checks before its first component starts; returns the input it checked."""
    for name in ("schema_path", "transform_module_file", "trainer_module_file"):
        if not os.path.isfile(getattr(config, name)):
            raise ConfigError(f"{name} {getattr(config, name)} does not exist (set {ENV_PREFIX}{name.upper()})")
    if not inputs.is_local(config):
        raise ConfigError(
            f"data folder {config.data_root} is not on this machine: this runner checks the input files "
            "before it starts (set PIPELINE_DATA_ROOT to a local folder, or compile for Kubeflow/Vertex)"
        )
    schema = load_schema(config.schema_path)
    try:
        numeric_drift.parse_overrides(config.numeric_drift_overrides, schema)
    except ValueError as error:
        raise ConfigError(f"{error} (set PIPELINE_NUMERIC_DRIFT_OVERRIDES)") from None
    run_input = inputs.resolve_for(config)
    check_files(run_input, schema, config.task_spec.label_source_keys)
    return run_input


def load_schema(path: str) -> schema_pb2.Schema:
    try:
        with open(path) as f:
            return text_format.Parse(f.read(), schema_pb2.Schema())
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise ConfigError(f"the curated schema {path} does not parse: {error}") from None


def required_columns(schema: schema_pb2.Schema) -> list[str]:
    """Features the schema needs in every input: present in some row, by its presence constraint."""
    return [
        f.name for f in schema.feature
        if f.presence.min_count > 0 or f.presence.min_fraction > 0
    ]


def check_files(
    run_input: inputs.RunInput, schema: schema_pb2.Schema | None = None, label_columns: Iterable[str] = ()
) -> None:
    """Every input file is readable CSV with one header, the schema's columns and a label in every row."""
    first: tuple[str, list[str]] | None = None
    for path in run_input.files:
        header = check_csv_file(path, label_columns, schema, where=run_input.where(path))
        if first is None:
            first = (path, header)
        elif header != first[1]:
            raise ConfigError(
                f"input file {run_input.where(path)} has a different header from {first[0]}: CsvExampleGen "
                f"reads all files of a split with one header ({', '.join(header)} vs {', '.join(first[1])})"
            )


def _file_key(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


def _is_utf8(path: str) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with inputs.open_input(path) as f:
            while block := f.read(_BLOCK_BYTES):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _arrow_source(path: str):
    # A plain file by its path: Arrow reads it natively, without a Python file object in between.
    return inputs.open_input(path) if inputs.is_compressed(path) else path


def _clean_row_count(path: str, header: list[str], label_columns: list[str]) -> int | None:
    """Rows of a file Arrow reads cleanly: UTF-8 throughout, every row with the header's number of
    fields, no blank line and a value in every label column. None if anything is off."""
    if not _is_utf8(path):
        return None
    # A blank line reads as a row of empty cells: one in a label column gives it away; without label
    # columns, every column is read and a row with no value at all goes to the line-by-line pass.
    columns = label_columns or header
    try:
        reader = pcsv.open_csv(
            _arrow_source(path),
            read_options=pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=_BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                include_columns=columns, column_types={c: pa.string() for c in columns}
            ),
        )
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            empty = [pc.equal(pc.utf8_trim_whitespace(column), "") for column in batch.columns]
            if label_columns and any(pc.any(cells).as_py() for cells in empty):
                return None
            if not label_columns and pc.any(functools.reduce(pc.and_, empty)).as_py():
                return None
    except pa.ArrowInvalid:
        return None
    return rows


def row_count(path: str | os.PathLike) -> int:
    """CSV records in the file, header excluded (a quoted field may span lines)."""
    path = str(path)
    key = _file_key(path)
    if key not in _row_counts:
        with inputs.open_input(path) as f:
            header = inputs.parse_header(f.readline()) if f.peek(1) else []
        rows = _clean_row_count(path, header, []) if header else 0
        if rows is None:
            with inputs.open_input(path) as f:
                text = (line.decode("utf-8", errors="replace") for line in f)
                rows = max(sum(1 for _ in csv.reader(text)) - 1, 0)
        _row_counts[key] = rows
    return _row_counts[key]


def count_rows(paths: Iterable[str]) -> int:
    """CSV records in the files, header lines excluded."""
    return sum(row_count(path) for path in paths)


class _Problems:
    def __init__(self, where: str):
        self.where = where
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
        message = f"input file {self.where}: " + "; ".join(self.lines)
        if more:
            message += f"; and {more} more problem(s)"
        raise ConfigError(message)


def _decoded_lines(f: BinaryIO, problems: _Problems) -> Iterator[str]:
    """The file's lines as text (a byte order mark dropped); a line that is not UTF-8 is reported and
    skipped."""
    for number, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            problems.undecodable_lines.add(number)
            problems.add(
                f"line {number} is not UTF-8 text (byte {error.start + 1} of the line is "
                f"{raw[error.start:error.start + 1]!r})"
            )
            yield "\n"  # Keeps csv's line numbers right.


def _check_columns(
    header: list[str], label_columns: list[str], schema: schema_pb2.Schema | None, problems: _Problems
) -> None:
    for label in label_columns:
        if label not in header:
            problems.add(
                f"the header has no {label!r} column, which the label is computed from "
                f"(columns: {', '.join(header)})"
            )
    if schema is None:
        return
    known = {f.name for f in schema.feature}
    unknown = [name for name in header if name not in known]
    if unknown:
        problems.add(f"the header has column(s) the curated schema does not know: {', '.join(unknown)}")
    missing = [name for name in required_columns(schema) if name not in header and name not in label_columns]
    if missing:
        problems.add(f"the header lacks column(s) the curated schema requires: {', '.join(missing)}")


def check_csv_file(
    path: str | os.PathLike,
    label_columns: Iterable[str] = (),
    schema: schema_pb2.Schema | None = None,
    where: str | None = None,
) -> list[str]:
    """The file's header; raises ConfigError naming each problem found (the first few of them).

    `where` names the file in messages (its path, and its span in the span layout).
    """
    path, label_columns = str(path), list(label_columns)
    where = where or path
    problems = _Problems(where)
    with inputs.open_input(path) as f:
        if not f.peek(1):
            raise ConfigError(f"input file {where} is empty: expected a header line and rows")
        reader = csv.reader(_decoded_lines(f, problems))
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
        _check_columns(header, label_columns, schema, problems)
        labels = [header.index(label) for label in label_columns if label in header]
        if not problems.count:
            rows = _clean_row_count(path, header, label_columns)
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
                continue
            for index in labels:
                if not row[index].strip():
                    problems.add(f"line {reader.line_num} has no value in the label column {header[index]!r}")
    if rows == 0:
        problems.add("it has a header but no rows")
    problems.raise_if_any()
    return header
