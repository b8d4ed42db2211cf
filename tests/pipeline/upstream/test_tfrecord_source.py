"""TFExampleRecord.BeamSource reading a file per element in batches gives what tfx_bsl's own source gives:
the same rows, decoded the same way, with the same raw records, for gzip, uncompressed and (through
Beam's reader) other compressions; a damaged file fails the read."""

from __future__ import annotations

import base64
import pickle

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.tfxio import tf_example_record

from pipeline.upstream import tfrecord_source

tfrecord_source.install()  # ours; each test puts tfx_bsl's back to compare, then ours again

RAW = "__raw_record__"


def _example(i: int) -> bytes:
    features = {
        "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[i / 4] if i % 5 else [])),
        "company": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"c%d" % (i % 3)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _write(path, records, compression: str) -> None:
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type=compression)) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture
def examples_dir(tmp_path):
    records = [_example(i) for i in range(2500)]
    _write(tmp_path / "data_tfrecord-00000-of-00003.gz", records[:1200], "GZIP")
    _write(tmp_path / "data_tfrecord-00001-of-00003.gz", records[1200:1201], "GZIP")
    _write(tmp_path / "data_tfrecord-00002-of-00003", records[1201:], "")
    return tmp_path, records


def _schema() -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    for name, kind in (("id", schema_pb2.INT), ("fare", schema_pb2.FLOAT), ("company", schema_pb2.BYTES)):
        schema.feature.add(name=name, type=kind)
    return schema


def _rows(batch) -> list[tuple]:
    return [tuple(sorted((k, tuple(v or ())) for k, v in row.items())) for row in batch.to_pylist()]


def _encode(value) -> str:
    return base64.b64encode(pickle.dumps(value)).decode()


def _read(pattern: str, batch_size: int | None, raw: str | None, out_dir, schema=None) -> tuple[list, list]:
    """Rows and batch sizes of one read (through files: a Beam pipeline's functions run on copies)."""
    source = tf_example_record.TFExampleRecord(pattern, schema=schema, raw_record_column_name=raw)
    with beam.Pipeline() as p:
        batches = p | source.BeamSource(batch_size)
        _ = batches | "Rows" >> beam.Map(_rows) | "EncodeRows" >> beam.Map(_encode) | (
            "WriteRows" >> beam.io.WriteToText(str(out_dir / "rows"))
        )
        _ = batches | "Sizes" >> beam.Map(lambda b: b.num_rows) | "EncodeSizes" >> beam.Map(_encode) | (
            "WriteSizes" >> beam.io.WriteToText(str(out_dir / "sizes"))
        )

    def decoded(prefix):
        return [pickle.loads(base64.b64decode(line)) for f in out_dir.glob(prefix + "*") for line in f.open()]

    return sorted(row for rows in decoded("rows") for row in rows), decoded("sizes")


@pytest.mark.parametrize(("batch_size", "raw", "with_schema"), [(None, RAW, True), (7, None, False)])
def test_same_rows_as_tfx_bsl(examples_dir, tmp_path_factory, batch_size, raw, with_schema):
    directory, records = examples_dir
    schema = _schema() if with_schema else None
    ours, sizes = _read(str(directory / "*"), batch_size, raw, tmp_path_factory.mktemp("ours"), schema)
    tfrecord_source.uninstall()
    try:
        theirs, _ = _read(str(directory / "*"), batch_size, raw, tmp_path_factory.mktemp("theirs"), schema)
    finally:
        tfrecord_source.install()
    assert len(ours) == len(records)
    assert ours == theirs
    assert max(sizes) == (batch_size or tfrecord_source.DEFAULT_BATCH_SIZE)
    if raw:
        assert sorted(dict(row)[raw][0] for row in ours) == sorted(records)


def test_compressions_tensorflow_cannot_read_go_through_beam(tmp_path):
    records = [_example(i) for i in range(10)]
    with beam.Pipeline() as p:
        _ = p | beam.Create(records) | beam.io.WriteToTFRecord(
            str(tmp_path / "data"), file_name_suffix=".bz2", compression_type=CompressionTypes.BZIP2
        )
    [path] = [str(p) for p in tmp_path.glob("data*.bz2")]
    assert [r for batch in tfrecord_source.read_batches(path, 4) for r in batch] == records
    assert [len(batch) for batch in tfrecord_source.read_batches(path, 4)] == [4, 4, 2]


def test_a_damaged_file_fails_the_read(tmp_path):
    path = tmp_path / "data_tfrecord-00000-of-00001"
    _write(path, [_example(i) for i in range(20)], "")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="(?i)corrupt|checksum|crc"):
        list(tfrecord_source.read_batches(str(path), 1000))


def test_installed_by_the_pipeline_definition():
    assert tf_example_record.TFExampleRecord.BeamSource is tfrecord_source.beam_source
