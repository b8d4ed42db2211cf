"""CSV byte ranges to example shards: the part of CsvExampleGen (pipeline/components/csv_example_gen.py)
that runs on Beam's workers.

Each range is parsed with Arrow's CSV reader as strings; one pass infers each column's type (INT, else
FLOAT, else STRING, else no type, by Python's int() and float() as TFX's CsvExampleGen decides), merged
over all ranges; a second converts the range's rows to those types, shuffles them, splits them by the
sha256 of their cells and writes one shard per range and split, whole or not at all.

Beam's workers import this module to run its DoFns, so it imports neither TensorFlow nor TFX: a local
worker that loaded them (as the component's module does) would spend seconds of each run on that before
its first range (bench/README.md). TensorFlow is imported only to write the tf.Example payload's TFRecords.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import os
import uuid
from typing import Any, Iterable, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from absl import logging
from apache_beam.io.filesystems import FileSystems
from tfx_bsl.coders import example_coder

from pipeline import inputs
from pipeline.configs import ConfigError
from pipeline.guards import input_checks

# Rows encoded at a time within a range: a range's encoded records and row keys are held a slice at a time
# rather than all at once (a worker's memory stays far lower; bench/README.md), and a slice is large enough that
# the encoder's per-call cost is noise.
SLICE_ROWS = 32_768
# The fewest rows a Parquet row group holds, but a shard's last: a split's rows of several slices are
# written together when each slice gives it fewer.
MIN_ROW_GROUP_ROWS = SLICE_ROWS // 2
# Compression of the output shards: level 1 is several times faster than zlib's default 6 and the
# files are read a handful of times, not archived.
GZIP_LEVEL = 1
# Shard names as TFX's ExampleGen writes them (tfx.components.example_gen.write_split).
TFRECORD_PREFIX = "data_tfrecord"
PARQUET_PREFIX = "data_parquet"


class ColumnType(enum.IntEnum):
    """A column's type, in the order in which one value widens it (as tfx_bsl's CSV decoder does)."""

    UNKNOWN = 0
    INT = 1
    FLOAT = 2
    STRING = 3


class Chunk(NamedTuple):
    path: str
    start: int
    end: int  # -1: to the end of the file, which may have line breaks inside quoted values.
    index: int  # Position among all chunks of the input split: the shard number.


class SplitPlan(NamedTuple):
    """Where the rows of one input split go: output split names with their cumulative hash buckets."""

    pattern: str
    names: list[str]
    buckets: list[int]


def _value_type(value: str) -> ColumnType:
    """The type one non-empty cell implies, by Python's int() and float() as CsvExampleGen decides."""
    try:
        number = int(value)
    except ValueError:
        try:
            float(value)
        except ValueError:
            return ColumnType.STRING
        return ColumnType.FLOAT
    # Integers beyond int64 do not fit an Int64List: CsvExampleGen keeps them as strings.
    return ColumnType.INT if -(2**63) <= number < 2**63 else ColumnType.STRING


def column_type(values: pa.Array) -> ColumnType:
    """The narrowest type that holds every non-empty value of a string column."""
    values = pc.drop_null(values)
    if len(values) == 0:
        return ColumnType.UNKNOWN
    # The first value bounds the type from below; it also spares Arrow a cast that fails on every value,
    # which is slow: it builds an error message for each value (bench/README.md).
    first = _value_type(values[0].as_py())
    if first == ColumnType.STRING:
        return first
    if first == ColumnType.INT:
        try:
            pc.cast(values, pa.int64())
            return ColumnType.INT
        except pa.ArrowInvalid:
            pass
    if _is_float_column(values, first):
        return ColumnType.FLOAT
    # Python's rules, once per distinct value: string columns have few distinct values, and numeric
    # ones rarely get here (only with values such as " 7" that int() accepts and Arrow does not).
    return max((_value_type(v) for v in pc.unique(values).to_pylist()), default=ColumnType.UNKNOWN)


def _is_float_column(values: pa.Array, first: ColumnType) -> bool:
    """True when Python's rules make the column FLOAT, decided by Arrow without a Python call per value.

    Every value Arrow reads as a double, float() reads too, so no value is a STRING unless it is an
    integer beyond int64 (which CsvExampleGen keeps as a string): a column with a magnitude from 2**63
    up is left undecided. Then the first value, or else one with a fractional part (which int()
    rejects), makes the column FLOAT. False means undecided: the caller applies Python's rules to every
    distinct value (a float column of 10M rows has millions).
    """
    try:
        floats = pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        return False
    largest = pc.max(pc.abs(floats)).as_py()
    if largest is None or not largest < 2.0**63:
        return False
    if first == ColumnType.FLOAT:
        return True
    fractional = pc.filter(values, pc.not_equal(floats, pc.floor(floats)))
    return len(fractional) > 0 and _value_type(fractional[0].as_py()) == ColumnType.FLOAT


def _convert(values: pa.Array, target: pa.DataType, python_type: type) -> pa.Array:
    """String values to numbers; Arrow's parser first, Python's int()/float() for what it rejects."""
    try:
        return pc.cast(values, target)
    except pa.ArrowInvalid:
        distinct = pc.unique(values)
        converted = pa.array([python_type(v) for v in distinct.to_pylist()], target)
        return pc.take(converted, pc.index_in(values, distinct))


def to_feature_column(values: pa.Array, kind: ColumnType) -> pa.Array:
    """A string column as the list column tf.Example encoding wants: one value, or none if empty."""
    valid = np.asarray(values.is_valid(), dtype=bool)
    offsets = pa.array(np.concatenate([[0], np.cumsum(valid)]), pa.int32())
    present = pc.drop_null(values)
    if kind == ColumnType.INT:
        items = _convert(present, pa.int64(), int)
    elif kind == ColumnType.FLOAT:
        # Parsed as double and rounded once to float, as float(cell) into a FloatList does.
        items = pc.cast(_convert(present, pa.float64(), float), pa.float32(), safe=False)
    else:
        items = pc.cast(present, pa.binary())
    return pa.ListArray.from_arrays(offsets, items)


# Arrow's own default block: rows longer than it are read with larger blocks (read_chunk).
_BLOCK_BYTES = 2**20


def read_chunk(chunk: Chunk, column_names: list[str]) -> pa.Table:
    """The rows whose first byte lies in [start, end), every column as nullable strings."""
    with inputs.open_input(chunk.path) as f:
        if chunk.start == 0:
            f.readline()  # The header.
        else:
            f.seek(chunk.start - 1)
            f.readline()  # The end of a row that began in the previous range.
        if chunk.end < 0:  # The whole file: the only range of a compressed file, which cannot seek.
            data = f.read()
        else:
            begin = f.tell()
            data = f.read(chunk.end - begin) if begin < chunk.end else b""
            if data and not data.endswith(b"\n"):
                data += f.readline()
    return parse_rows(data, column_names, newlines_in_values=chunk.end < 0, path=chunk.path)


def parse_rows(data: bytes, column_names: list[str], newlines_in_values: bool = True, path: str = "") -> pa.Table:
    """CSV rows (no header) as ExampleGen reads them: every column a nullable string, an empty cell null.

    The benchmark's generator parses its rows with it too, to put each in the split ExampleGen will."""
    if not data.strip():
        return pa.table({name: pa.array([], pa.string()) for name in column_names})
    # Arrow parses a block at a time and refuses a row longer than a block ("straddles two block
    # boundaries"): a long value (tens of MB in one cell) is read with blocks grown to hold its row.
    block_bytes = _BLOCK_BYTES
    while True:
        try:
            return pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(column_names=column_names, use_threads=False, block_size=block_bytes),
                parse_options=pcsv.ParseOptions(newlines_in_values=newlines_in_values),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in column_names},
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid as error:
            if "straddl" in str(error) and block_bytes <= len(data):
                block_bytes *= 4
                continue
            raise ValueError(_parse_failure(path, error)) from error


def _parse_failure(path: str, error: Exception) -> str:
    """What is wrong with a file Arrow could not parse, by line, as the pre-flight check says it."""
    if not path:
        return f"cannot parse CSV rows: {error}"
    try:
        input_checks.check_csv_file(path)
    except ConfigError as problem:
        return str(problem)
    return f"cannot parse input file {path}: {error}"


def merge_types(types: Iterable[list[ColumnType]]) -> list[ColumnType]:
    """Each column's widest type; an empty list (nothing seen yet) stands for no constraint."""
    merged: list[ColumnType] = []
    for chunk_types in types:
        merged = [max(a, b) for a, b in zip(merged, chunk_types)] if merged else list(chunk_types)
    return merged


class MergeTypes(beam.CombineFn):
    """Each column's widest type over all ranges."""

    def create_accumulator(self):
        return []

    def add_input(self, accumulator, chunk_types):
        return merge_types([accumulator, chunk_types])

    def merge_accumulators(self, accumulators):
        return merge_types(accumulators)

    def extract_output(self, accumulator):
        return accumulator


def encode(table: pa.Table, kinds: list[ColumnType]) -> list[bytes]:
    """Serialized tf.Examples; a column with no value anywhere becomes a feature without a type."""
    serialized = serialize_rows(feature_batch(table, kinds))
    untyped = [name for name, kind in zip(table.column_names, kinds) if kind == ColumnType.UNKNOWN]
    if untyped:
        serialized = [_with_untyped_features(s, untyped) for s in serialized]
    return serialized


def _with_untyped_features(serialized: bytes, names: list[str]) -> bytes:
    """Adds `name: Feature()` entries to a serialized Example's feature map."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  # the tf.Example payload only

    example = tf.train.Example.FromString(serialized)
    for name in names:
        example.features.feature[name].Clear()
        example.features.feature[name].SetInParent()
    return example.SerializeToString(deterministic=True)


def serialize_rows(batch: pa.RecordBatch) -> list[bytes]:
    """The rows of a batch of list columns as serialized tf.Examples (tfx_bsl's C++ encoder). A column of
    Arrow's null type (no value in any row) is left out: the encoder takes no such column, and a feature
    without a value parses as missing either way."""
    typed = [i for i, field in enumerate(batch.schema) if not pa.types.is_null(field.type)]
    if not typed:
        return [b""] * batch.num_rows  # an Example without features
    return example_coder.RecordBatchToExamplesEncoder().encode(
        pa.RecordBatch.from_arrays([batch.column(i) for i in typed], [batch.schema.names[i] for i in typed])
    )


def row_keys(table: pa.Table) -> pa.Array:
    """Each row's cells joined, an empty cell as empty text: what a row's split is decided by.

    Not the serialized example, as TFX's ExampleGen hashes: tfx_bsl's encoder writes a row's features
    in an order that changes from call to call, so the same row would not stay in the same split.
    """
    cells = [pc.fill_null(table.column(name).combine_chunks(), "") for name in table.column_names]
    return pc.binary_join_element_wise(*cells, "\x1f")


def split_indices(keys: pa.Array, buckets: list[int]) -> np.ndarray:
    """Output split of each row: sha256 of its key (UTF-8) modulo the total of hash buckets, the split
    whose cumulative buckets first exceed it (TFX's ExampleGen's rule).

    Hashed straight from the keys' Arrow buffer, and the digests reduced modulo the total with numpy
    (Horner's rule over their 32 big-endian bytes: the same remainder as Python's int of the digest)."""
    keys = keys.cast(pa.large_string())
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset : keys.offset + len(keys) + 1]
    buffer = keys.buffers()[2]
    data = memoryview(buffer if buffer is not None else b"")
    sha256 = hashlib.sha256
    digests = [sha256(data[start:end]).digest() for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    total = buckets[-1]
    if total >= 2**48:  # beyond where remainder * 256 + 255 is an exact int64: Python's ints
        return np.array(
            [bisect.bisect(buckets, int.from_bytes(digest, "big") % total) for digest in digests], dtype=np.int64
        )
    digest_bytes = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(keys), 32).astype(np.int64)
    remainders = np.zeros(len(keys), dtype=np.int64)
    for column in range(32):
        remainders = (remainders * 256 + digest_bytes[:, column]) % total
    return np.searchsorted(np.asarray(buckets), remainders, side="right")


def shard_name(index: int, count: int, prefix: str = TFRECORD_PREFIX, suffix: str = ".gz") -> str:
    return f"{prefix}-{index:05d}-of-{count:05d}{suffix}"


# The Arrow types tfx_bsl decodes tf.Examples to and derives from a schema (csv_decoder.GetArrowSchema),
# which TFXIO's tensor adapters compare batches with.
_ARROW_TYPES = {
    ColumnType.INT: pa.large_list(pa.int64()),
    ColumnType.FLOAT: pa.large_list(pa.float32()),
    ColumnType.STRING: pa.large_list(pa.large_binary()),
    ColumnType.UNKNOWN: pa.null(),
}


def arrow_schema(column_names: list[str], kinds: list[ColumnType]) -> pa.Schema:
    """The Parquet payload's columns: a list of the column's type, or Arrow's null type if untyped."""
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in zip(column_names, kinds)])


def feature_batch(table: pa.Table, kinds: list[ColumnType]) -> pa.RecordBatch:
    """The rows as the Parquet payload holds them: the list columns tf.Example encoding starts from."""
    schema = arrow_schema(table.column_names, kinds)
    columns = [
        to_feature_column(table.column(name).combine_chunks(), kind).cast(schema.field(name).type)
        if kind != ColumnType.UNKNOWN
        else pa.nulls(table.num_rows)
        for name, kind in zip(table.column_names, kinds)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _StagedShards:
    """One shard per output split that appears whole or not at all: written under a staging name and
    renamed once every row is in (a retried bundle rewrites it), or removed. Subclasses say how rows are
    encoded and written."""

    prefix = ""
    suffix = ""

    def __init__(self, directories: dict[str, str], index: int, count: int, kinds: list[ColumnType]):
        self.kinds = kinds
        name = shard_name(index, count, self.prefix, self.suffix)
        self._paths = {split: os.path.join(directory, name) for split, directory in directories.items()}
        self._staging = {split: f"{path}.tmp-{uuid.uuid4().hex}" for split, path in self._paths.items()}
        self._writers: dict[str, Any] = {}
        self.counts = dict.fromkeys(self._paths, 0)

    def open(self, staging: str) -> Any:
        raise NotImplementedError

    def encode(self, rows: pa.Table) -> Any:
        raise NotImplementedError

    def write(self, split: str, encoded: Any, rows: np.ndarray | None = None) -> None:
        """Writes the encoded rows at positions `rows` (all when None) to the split's shard."""
        raise NotImplementedError

    def __enter__(self) -> "_StagedShards":
        self._writers = {split: self.open(staging) for split, staging in self._staging.items()}
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        for writer in self._writers.values():
            writer.close()
        for split, staging in self._staging.items():
            if error_type is None:
                FileSystems.rename([staging], [self._paths[split]])  # replaces a shard a retry left
            elif FileSystems.exists(staging):
                FileSystems.delete([staging])


class _TFRecordShards(_StagedShards):
    """Gzipped TFRecords of serialized tf.Examples, named as TFX's ExampleGen names them."""

    prefix = TFRECORD_PREFIX
    suffix = ".gz"

    def open(self, staging: str) -> Any:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel  # the tf.Example payload only

        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=GZIP_LEVEL)
        return tf.io.TFRecordWriter(staging, options)

    def encode(self, rows: pa.Table) -> list[bytes]:
        return encode(rows, self.kinds)

    def write(self, split: str, encoded: list[bytes], rows: np.ndarray | None = None) -> None:
        writer = self._writers[split]
        for record in encoded if rows is None else (encoded[i] for i in rows):
            writer.write(record)
        self.counts[split] += len(encoded) if rows is None else len(rows)


class _ParquetShards(_StagedShards):
    """Parquet files (snappy, as TFX's ExampleGen writes them), a row group per slice of a range, or per
    several slices for a split that gets a small part of each (the eval split of a large input): readers
    batch a row group at a time, and the Evaluator's cost grows with its number of batches."""

    prefix = PARQUET_PREFIX
    suffix = ".parquet"

    def __init__(self, directories, index, count, kinds, column_names: list[str]):
        super().__init__(directories, index, count, kinds)
        self._schema = arrow_schema(column_names, kinds)
        self._pending: dict[str, list[pa.RecordBatch]] = {split: [] for split in self._paths}

    def open(self, staging: str) -> Any:
        # A shard no row goes to is still a valid file, with the columns and no row group. Arrow resolves
        # the path's scheme itself (local, gs://, s3://, hdfs://).
        return pq.ParquetWriter(staging, self._schema, compression="snappy")

    def encode(self, rows: pa.Table) -> pa.RecordBatch:
        return feature_batch(rows, self.kinds)

    def write(self, split: str, encoded: pa.RecordBatch, rows: np.ndarray | None = None) -> None:
        batch = encoded if rows is None else encoded.take(pa.array(rows, pa.int64()))
        if batch.num_rows:
            self._pending[split].append(batch)
            if sum(pending.num_rows for pending in self._pending[split]) >= MIN_ROW_GROUP_ROWS:
                self._flush(split)
        self.counts[split] += batch.num_rows

    def _flush(self, split: str) -> None:
        """The split's pending rows as one row group."""
        pending, self._pending[split] = self._pending[split], []
        if pending:
            table = pa.Table.from_batches(pending, schema=self._schema)
            self._writers[split].write_table(table, row_group_size=table.num_rows)

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            try:
                for split in self._pending:
                    self._flush(split)
            except BaseException as flush_error:
                super().__exit__(type(flush_error), flush_error, flush_error.__traceback__)
                raise
        super().__exit__(error_type, error, traceback)



class InferTypes(beam.DoFn):
    """A range's column types (ColumnType per column)."""

    def __init__(self, column_names: list[str]):
        self._column_names = column_names

    def process(self, chunk: Chunk):
        table = read_chunk(chunk, self._column_names)
        yield [column_type(table.column(name).combine_chunks()) for name in self._column_names]


class WriteChunk(beam.DoFn):
    """One range of CSV to one shard per output split, Parquet or gzipped tf.Example TFRecords; emits
    (split name, rows written)."""

    def __init__(
        self,
        column_names: list[str],
        plan: SplitPlan,
        split_uris: dict[str, str],
        shards: int,
        parquet: bool = False,
    ):
        self._column_names = column_names
        self._plan = plan
        self._split_uris = split_uris
        self._shards = shards
        self._parquet = parquet
        self._rows = beam.metrics.Metrics.counter("ExampleGen", "num_instances")

    def _staged_shards(self, index: int, kinds: list[ColumnType]) -> _StagedShards:
        directories = {name: self._split_uris[name] for name in self._plan.names}
        if self._parquet:
            return _ParquetShards(directories, index, self._shards, kinds, self._column_names)
        return _TFRecordShards(directories, index, self._shards, kinds)

    def process(self, chunk: Chunk, kinds: list[ColumnType]):
        table = read_chunk(chunk, self._column_names)
        # Rows of one range in random but repeatable order (TFX's ExampleGen shuffles all rows), taken a
        # slice at a time: only one slice's copy, encoding and keys are held besides the range's table.
        order = np.random.default_rng(chunk.index).permutation(table.num_rows)
        with self._staged_shards(chunk.index, kinds) as shards:
            for start in range(0, table.num_rows, SLICE_ROWS):
                rows = table.take(order[start : start + SLICE_ROWS])
                encoded = shards.encode(rows)
                if len(self._plan.names) == 1:
                    shards.write(self._plan.names[0], encoded)
                    continue
                splits = split_indices(row_keys(rows), self._plan.buckets)
                for index, name in enumerate(self._plan.names):
                    shards.write(name, encoded, np.flatnonzero(splits == index))
        for name in self._plan.names:
            yield name, shards.counts[name]
        self._rows.inc(table.num_rows)


def log_rows(split_and_rows: tuple[str, int]) -> None:
    logging.info("split %s: %d rows", *split_and_rows)
