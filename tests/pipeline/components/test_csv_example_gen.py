"""The block-at-a-time CsvExampleGen writes the same examples as TFX's own, split the same way, and reads
what TFX 1.16's own cannot: compressed files and a header with a byte order mark."""

from __future__ import annotations

import collections
import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from pipeline import inputs
from pipeline.components import csv_ranges
from pipeline.components import csv_example_gen
from pipeline.guards import input_checks
from tests.conftest import DATA_CSV

SPLITS = ["train", "eval"]


def _exec_properties(input_dir: Path, pattern: str) -> dict:
    return {
        "input_base": str(input_dir),
        "input_config": proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)])
        ),
        "output_config": proto_utils.proto_to_json(
            example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
                    ]
                )
            )
        ),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
    }


def _run(executor_class, input_dir: Path, output_dir: Path, pattern: str = "*") -> dict[str, list[bytes]]:
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    executor_class().Do({}, {"examples": [examples]}, _exec_properties(input_dir, pattern))
    assert json.loads(examples.split_names) == SPLITS
    records = {}
    for split in SPLITS:
        files = sorted(str(p) for p in (output_dir / f"Split-{split}").glob("*.gz"))
        assert files, f"no files in split {split}"
        records[split] = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    return records


def _as_examples(records: list[bytes]) -> collections.Counter:
    """Parsed and re-serialized deterministically: equal examples compare equal whatever the map order."""
    return collections.Counter(
        tf.train.Example.FromString(r).SerializeToString(deterministic=True) for r in records
    )


EDGE_CSV = (
    "id,amount,name,empty,wide,spaced,note\n"
    '1,1.5,"Smith, J.",,1,5,plain\n'
    "2,,Lee,,2.5,7,\n"
    '3,3,"",,99999999999999999999,8,"two\nlines"\n'
    "\n"
    '4,-0.25,"say ""hi""",,4,9,x\n'
    "4,-0.25,dup,,4,9,x\n"
    "4,-0.25,dup,,4,9,x\n"
    "5,1e3,Ann,,5, 12,y\n"
)


def test_edge_cases_match_tfx(tmp_path):
    """Quoted commas and line breaks, escaped quotes, empty and all-empty columns, a blank line, an integer
    too long for int64, numbers Arrow's parser rejects and Python accepts, duplicate rows."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text(EDGE_CSV)
    theirs = _run(tfx_csv_executor.Executor, data, tmp_path / "theirs")
    ours = _run(csv_example_gen.Executor, data, tmp_path / "ours")
    assert _as_examples(ours["train"] + ours["eval"]) == _as_examples(theirs["train"] + theirs["eval"])
    example = tf.train.Example.FromString(next(r for r in ours["train"] + ours["eval"] if b"Ann" in r))
    features = example.features.feature
    assert features["id"].int64_list.value == [5]
    assert features["amount"].float_list.value == [1000.0]
    assert not features["empty"].HasField("kind")
    assert features["wide"].bytes_list.value == [b"5"]  # 99999999999999999999 makes the column STRING
    assert features["spaced"].int64_list.value == [12]  # int(" 12") == 12
    duplicates = [s for s in SPLITS for r in ours[s] if b"dup" in r]
    assert len(duplicates) == 2 and len(set(duplicates)) == 1  # identical rows share a split


@pytest.mark.parametrize("chunk_bytes", [1, 7, 97, 4096, 10**9])
def test_every_row_read_once_whatever_the_ranges(tmp_path, chunk_bytes):
    # 40 rows: with 1-byte ranges a range ends at every byte of them, each a read of its own.
    path = tmp_path / "data.csv"
    path.write_bytes(b"".join(DATA_CSV.read_bytes().splitlines(keepends=True)[:41]))
    names = inputs.read_header(str(path))
    whole = csv_ranges.read_chunk(csv_ranges.Chunk(str(path), 0, -1, 0), names)
    chunks = csv_example_gen.plan_chunks([str(path)], chunk_bytes)
    assert (len(chunks) > 1) == (chunk_bytes < 10**9)
    parts = [csv_ranges.read_chunk(c, names) for c in chunks]
    assert whole.num_rows == 40
    assert pa.concat_tables(parts).equals(whole)


def test_a_value_of_tens_of_megabytes_is_read_like_any_other(tmp_path):
    """Arrow parses a block at a time and refused a row longer than its block ("straddles two block
    boundaries"); the pre-flight check passed such a file, and CsvExampleGen failed on it."""
    lines = DATA_CSV.read_bytes().splitlines(keepends=True)[:41]
    names = inputs.parse_header(lines[0])
    cells = next(csv.reader([lines[20].decode()]))
    cells[names.index("company")] = "x" * 20_000_000
    lines[20] = (",".join(cells) + "\n").encode()
    path = tmp_path / "data.csv"
    path.write_bytes(b"".join(lines))
    assert input_checks.check_csv_file(str(path), ["tips"]) == names
    # The whole file, and in ranges, one of which holds the long row.
    for chunks in ([csv_ranges.Chunk(str(path), 0, -1, 0)], csv_example_gen.plan_chunks([str(path)], 2**20)):
        table = pa.concat_tables([csv_ranges.read_chunk(chunk, names) for chunk in chunks])
        assert table.num_rows == 40
        assert table.column("company")[19].as_py() == "x" * 20_000_000


def test_full_sample_in_ranges_matches_tfx(tmp_path, monkeypatch):
    """The real sample cut into many ranges (and so many shards) gives TFX's examples in TFX's splits."""
    monkeypatch.setattr(csv_example_gen, "CHUNK_BYTES", 256 * 1024)
    theirs = _run(tfx_csv_executor.Executor, DATA_CSV.parent, tmp_path / "theirs", pattern="data.csv")
    ours = _run(csv_example_gen.Executor, DATA_CSV.parent, tmp_path / "ours", pattern="data.csv")
    assert len(list((tmp_path / "ours" / "Split-train").glob("*.gz"))) == 8
    assert sum(len(r) for r in ours.values()) == 15002
    assert _as_examples(ours["train"] + ours["eval"]) == _as_examples(theirs["train"] + theirs["eval"])
    # Hash buckets 2:1, as configured: about 2 in 3 rows train.
    assert 0.63 < len(ours["train"]) / 15002 < 0.70
    # The same input splits the same way again: a row's split depends on its cells only.
    again = _run(csv_example_gen.Executor, DATA_CSV.parent, tmp_path / "again", pattern="data.csv")
    for split in SPLITS:
        assert _as_examples(again[split]) == _as_examples(ours[split]), split


@pytest.mark.parametrize("buckets", [[2, 3], [18, 20], [1, 2**50, 2**60]], ids=["2:1", "18:2", "beyond int64"])
def test_a_rows_split_is_the_sha256_of_its_cells_modulo_the_buckets(buckets):
    """The split rule rows were split by before, on the sample and edge cases: a row never moves."""
    import bisect
    import hashlib

    table = pcsv.read_csv(DATA_CSV, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    table = table.cast(pa.schema([pa.field(name, pa.string()) for name in table.column_names]))
    edge = pa.table({name: pa.array([None, "", "é\x1f"], pa.string()) for name in table.column_names})
    for rows in (table, table.slice(7, 100), edge, table.slice(0, 0)):
        keys = [
            "\x1f".join("" if cell is None else cell for cell in row.values()).encode()
            for row in rows.to_pylist()
        ]
        expected = [bisect.bisect(buckets, int.from_bytes(hashlib.sha256(key).digest(), "big") % buckets[-1])
                    for key in keys]
        got = csv_ranges.split_indices(csv_ranges.row_keys(rows), buckets)
        assert got.dtype == np.int64 and got.tolist() == expected


def _in_order(records: list[bytes]) -> list[bytes]:
    return [tf.train.Example.FromString(r).SerializeToString(deterministic=True) for r in records]


def test_a_range_written_in_slices_gives_the_same_shards(tmp_path, monkeypatch):
    """Encoding a range a few rows at a time writes the records of encoding it whole, in the same order
    (the edge cases: an untyped column, quoted line breaks, duplicates split together)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_text(EDGE_CSV)
    whole = _run(csv_example_gen.Executor, tmp_path / "data", tmp_path / "whole")
    monkeypatch.setattr(csv_ranges, "SLICE_ROWS", 2)
    sliced = _run(csv_example_gen.Executor, tmp_path / "data", tmp_path / "sliced")
    for split in SPLITS:
        assert _in_order(sliced[split]) == _in_order(whole[split]), split
    assert sum(len(r) for r in sliced.values()) == 7


@pytest.mark.parametrize("payload", ["tf_example", "parquet"])
def test_a_failed_range_leaves_no_shard_and_keeps_the_last_one(tmp_path, monkeypatch, payload):
    """A range that fails after some slices were written leaves neither a partial shard nor a staging
    file, and a shard written by an earlier attempt of the bundle stays as it was."""
    parquet = payload == "parquet"
    path = tmp_path / "data.csv"
    path.write_text("".join(DATA_CSV.read_text().splitlines(keepends=True)[:101]))
    names = inputs.read_header(str(path))
    (chunk,) = csv_example_gen.plan_chunks([str(path)])
    kinds = [csv_ranges.column_type(csv_ranges.read_chunk(chunk, names).column(n)) for n in names]
    uris = {split: tmp_path / split for split in SPLITS}
    for uri in uris.values():
        uri.mkdir()
    name = csv_ranges.shard_name(0, 1, *((csv_ranges.PARQUET_PREFIX, ".parquet") if parquet else ()))
    earlier = uris["train"] / name
    earlier.write_bytes(b"an earlier attempt")
    encoder = "feature_batch" if parquet else "encode"
    encode = getattr(csv_ranges, encoder)
    calls = []

    def fail_on_third_slice(table, column_kinds):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        return encode(table, column_kinds)

    monkeypatch.setattr(csv_ranges, "SLICE_ROWS", 10)
    monkeypatch.setattr(csv_ranges, encoder, fail_on_third_slice)
    plan = csv_ranges.SplitPlan("*", SPLITS, [2, 3])
    write = csv_ranges.WriteChunk(names, plan, {s: str(u) for s, u in uris.items()}, 1, parquet)
    with pytest.raises(RuntimeError, match="worker lost"):
        list(write.process(chunk, kinds))
    assert calls == [10, 10, 10]
    assert sorted(p.name for p in tmp_path.glob("*/*")) == [earlier.name]
    assert earlier.read_bytes() == b"an earlier attempt"


def test_beam_workers_write_the_examples_without_tensorflow(tmp_path):
    """The ranges' work runs in Beam's worker processes with neither TensorFlow nor TFX loaded (each local
    worker spent about 6 s importing them before its first range): a plugin makes those imports fail in
    the workers, and the run, two workers as the multi_processing profile has them, still writes every row."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_text("".join(DATA_CSV.read_text().splitlines(keepends=True)[:301]))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    exec_properties = _exec_properties(tmp_path / "data", "*")
    exec_properties["output_data_format"] = example_gen_pb2.FORMAT_PARQUET
    exec_properties["output_file_format"] = example_gen_pb2.FILE_FORMAT_PARQUET
    beam_args = [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
        "--pickle_library=cloudpickle",
        "--beam_plugins=pipeline.beam.worker_start",
        "--beam_plugins=tests.pipeline.components.no_tensorflow_worker",
    ]
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args, tmp_dir=str(tmp_path / "tmp"))
    csv_example_gen.Executor(context).Do({}, {"examples": [examples]}, exec_properties)
    assert sum(sum(_parquet_rows(tmp_path / "out" / f"Split-{split}").values()) for split in SPLITS) == 300


def test_shards_are_named_as_tfxs_example_gen_names_them():
    assert csv_ranges.TFRECORD_PREFIX == write_split.DEFAULT_TF_RECORD_FILE_NAME
    assert csv_ranges.PARQUET_PREFIX == write_split.DEFAULT_PARQUET_FILE_NAME


def test_staging_left_by_a_killed_attempt_is_removed_once_the_run_ends(tmp_path):
    """A worker killed mid-range leaves its staging file (no clean-up runs) and Beam retries the range;
    downstream components read every file of a split, so the executor removes what is left."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_text("".join(DATA_CSV.read_text().splitlines(keepends=True)[:101]))
    split_dir = tmp_path / "out" / "Split-train"
    split_dir.mkdir(parents=True)
    abandoned = split_dir / f"{csv_ranges.shard_name(0, 1)}.tmp-0123456789abcdef"
    abandoned.write_bytes(b"half a gzip stream")
    records = _run(csv_example_gen.Executor, tmp_path / "data", tmp_path / "out")
    assert not abandoned.exists()
    assert sorted(p.name for p in split_dir.iterdir()) == [csv_ranges.shard_name(0, 1)]
    assert sum(len(r) for r in records.values()) == 100


def test_line_break_in_quotes_keeps_the_file_whole(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('a,b\n1,"x\ny"\n' * 50)
    assert csv_example_gen.has_line_break_in_quotes(str(path))
    assert [c.end for c in csv_example_gen.plan_chunks([str(path)], 64)] == [-1]
    plain = tmp_path / "plain.csv"
    plain.write_text('a,b\n1,"x, y"\n' * 50)
    assert not csv_example_gen.has_line_break_in_quotes(str(plain))
    assert len(csv_example_gen.plan_chunks([str(plain)], 64)) > 1


def _variant(text: str, variant: str) -> tuple[str, bytes]:
    """The same rows written another valid way: (file name, bytes)."""
    import bz2
    import gzip

    if variant == "gzip":
        return "data.csv.gz", gzip.compress(text.encode())
    if variant == "bzip2":
        return "data.csv.bz2", bz2.compress(text.encode())
    if variant == "byte order mark":
        return "data.csv", ("\ufeff" + text).encode()
    if variant == "CRLF":
        return "data.csv", text.replace("\n", "\r\n").encode()
    if variant == "columns reordered":
        rows = list(csv.reader(io.StringIO(text)))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([row[::-1] for row in rows])
        return "data.csv", out.getvalue().encode()
    raise ValueError(variant)


@pytest.mark.parametrize("variant", ["gzip", "bzip2", "byte order mark", "CRLF", "columns reordered"])
def test_valid_variants_give_the_same_examples(tmp_path, variant):
    text = "".join(DATA_CSV.read_text().splitlines(keepends=True)[:301])
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.csv").write_text(text)
    name, data = _variant(text, variant)
    (tmp_path / "variant").mkdir()
    (tmp_path / "variant" / name).write_bytes(data)
    plain = _run(csv_example_gen.Executor, tmp_path / "plain", tmp_path / "plain_out")
    ours = _run(csv_example_gen.Executor, tmp_path / "variant", tmp_path / "variant_out")
    assert sum(len(r) for r in ours.values()) == 300
    # Same examples in the same splits (a row's split is a hash of its cells in file order, which a
    # reordering changes; only then are the splits compared as a whole).
    if variant == "columns reordered":
        assert _as_examples(ours["train"] + ours["eval"]) == _as_examples(plain["train"] + plain["eval"])
    else:
        for split in SPLITS:
            assert _as_examples(ours[split]) == _as_examples(plain[split]), split


def test_a_malformed_range_is_named_by_file_and_line(tmp_path):
    lines = DATA_CSV.read_text().splitlines(keepends=True)[:50]
    lines[9] = "1,2,3\n"
    (tmp_path / "data.csv").write_text("".join(lines))
    with pytest.raises(Exception, match=r"input file .*data\.csv: line 10 has 3 fields, the header has 18"):
        _run(csv_example_gen.Executor, tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    "cells",
    [
        ["1.5", "2", "-3"],
        ["2", "1.5"],
        ["1e5", "7"],
        ["inf", "1"],
        ["nan", "-0"],
        ["+7", "0.25"],
        ["007", ".5", "5."],
        ["99999999999999999999", "1.5"],  # an integer beyond int64 keeps the column a string
        ["99999999999999999999", "1"],
        [" 7", "1.5"],
        ["1_000", "2.5"],
        ["0x10", "1.5"],
        ["1.5", "abc"],
        ["1.5", None, "2.25"],
        ["abc", "1"],
        ["1", "2.0", "3"],
        ["2.0", "3"],
        ["-9223372036854775808", "0.5"],
        ["1e20", "1"],
    ],
)
def test_column_type_is_python_rules(cells):
    """Arrow's shortcut for float columns decides as Python's int()/float() on every value would."""
    expected = max(
        (csv_ranges._value_type(c) for c in cells if c is not None),
        default=csv_ranges.ColumnType.UNKNOWN,
    )
    assert csv_ranges.column_type(pa.array(cells, pa.string())) == expected


def test_float_columns_are_decided_without_python_per_value():
    int_first = csv_ranges.ColumnType.INT
    assert csv_ranges._is_float_column(pa.array(["2", "-3", "1.5", "1e5"], pa.string()), int_first)
    assert not csv_ranges._is_float_column(pa.array(["2", "1.5", "abc"], pa.string()), int_first)


def _example_rows(records: list[bytes]) -> collections.Counter:
    """Each tf.Example as (name, values) pairs; None for a feature without a type."""
    rows = collections.Counter()
    for record in records:
        features = tf.train.Example.FromString(record).features.feature
        row = []
        for name, feature in sorted(features.items()):
            kind = feature.WhichOneof("kind")
            row.append((name, tuple(getattr(feature, kind).value) if kind else None))
        rows[tuple(row)] += 1
    return rows


def _parquet_rows(split_dir: Path) -> collections.Counter:
    """Each Parquet row as (name, values) pairs, a null-typed column's value as None."""
    rows = collections.Counter()
    for path in sorted(split_dir.glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows[tuple((name, None if value is None else tuple(value)) for name, value in sorted(row.items()))] += 1
    return rows


@pytest.mark.parametrize("source", ["edge", "sample"])
def test_parquet_payload_holds_the_tf_examples_rows(tmp_path, monkeypatch, source):
    """FORMAT_PARQUET writes the rows FORMAT_TF_EXAMPLE writes, in the same splits, shard for shard, and
    marks the artifact so that TFX's readers read it as Parquet."""
    monkeypatch.setattr(csv_example_gen, "CHUNK_BYTES", 256 * 1024)
    if source == "edge":
        data = tmp_path / "data"
        data.mkdir()
        (data / "data.csv").write_text(EDGE_CSV)
    else:
        data = DATA_CSV.parent
    records = _run(csv_example_gen.Executor, data, tmp_path / "tf_example", pattern="data.csv")
    parquet = standard_artifacts.Examples()
    parquet.uri = str(tmp_path / "parquet")
    exec_properties = _exec_properties(data, "data.csv")
    exec_properties["output_data_format"] = example_gen_pb2.FORMAT_PARQUET
    exec_properties["output_file_format"] = example_gen_pb2.FILE_FORMAT_PARQUET
    csv_example_gen.Executor().Do({}, {"examples": [parquet]}, exec_properties)
    assert examples_utils.get_payload_format(parquet) == example_gen_pb2.FORMAT_PARQUET
    assert examples_utils.get_file_format(parquet) == "FILE_FORMAT_PARQUET"
    for split in SPLITS:
        split_dir = tmp_path / "parquet" / f"Split-{split}"
        shards = sorted(p.name for p in split_dir.iterdir())
        assert shards == [
            p.name.replace("data_tfrecord", "data_parquet").replace(".gz", ".parquet")
            for p in sorted((tmp_path / "tf_example" / f"Split-{split}").iterdir())
        ]
        assert _parquet_rows(split_dir) == _example_rows(records[split]), split
    if source == "edge":
        table = pq.read_table(tmp_path / "parquet" / "Split-train")
        assert table.schema.field("empty").type == pa.null()
        assert table.schema.field("id").type == pa.large_list(pa.int64())
        assert table.schema.field("amount").type == pa.large_list(pa.float32())
        assert table.schema.field("wide").type == pa.large_list(pa.large_binary())


def test_a_split_given_few_rows_per_slice_gets_row_groups_of_several_slices(tmp_path, monkeypatch):
    """Readers batch a Parquet row group at a time: the eval split of a large input, a few hundred rows of
    each slice, is written a row group per several slices, the same rows in the same order."""
    monkeypatch.setattr(csv_ranges, "SLICE_ROWS", 1_000)
    monkeypatch.setattr(csv_ranges, "MIN_ROW_GROUP_ROWS", 500)  # train gets ~667 rows a slice, eval ~333
    records = _run(csv_example_gen.Executor, DATA_CSV.parent, tmp_path / "tf_example", pattern="data.csv")
    parquet = standard_artifacts.Examples()
    parquet.uri = str(tmp_path / "parquet")
    exec_properties = _exec_properties(DATA_CSV.parent, "data.csv")
    exec_properties["output_data_format"] = example_gen_pb2.FORMAT_PARQUET
    exec_properties["output_file_format"] = example_gen_pb2.FILE_FORMAT_PARQUET
    csv_example_gen.Executor().Do({}, {"examples": [parquet]}, exec_properties)
    groups = {}
    for split in SPLITS:
        split_dir = tmp_path / "parquet" / f"Split-{split}"
        assert _parquet_rows(split_dir) == _example_rows(records[split]), split
        groups[split] = [
            [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            for metadata in (pq.ParquetFile(path).metadata for path in sorted(split_dir.iterdir()))
        ]
        for shard in groups[split]:
            assert all(rows >= 500 for rows in shard[:-1]), (split, shard)
    # Train's slices are row groups as they come; eval's go two at a time.
    assert len(groups["train"][0]) == 15 and len(groups["eval"][0]) == 8


def test_contradictory_formats_are_refused():
    with pytest.raises(ValueError, match="FILE_FORMAT_PARQUET needs output_data_format FORMAT_PARQUET"):
        csv_example_gen.output_formats(
            {"output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE, "output_file_format": example_gen_pb2.FILE_FORMAT_PARQUET}
        )
    with pytest.raises(ValueError, match="FORMAT_PROTO is not one this CsvExampleGen writes"):
        csv_example_gen.output_formats({"output_data_format": example_gen_pb2.FORMAT_PROTO})
