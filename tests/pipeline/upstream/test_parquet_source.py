"""tfx_bsl's ParquetTFXIO completed: CsvExampleGen's Parquet examples read outside Beam give the tensors
TFXIO's tf.Example reader gives for the same rows, in exact batches over every row once an epoch; in
Beam and out, batches come with the schema's types; the Evaluator's extractors serialize Parquet rows
into the tf.Examples the tf.Example payload holds. A whole pipeline on Parquet, Transform to Pusher, is
checked by the end-to-end tests (tests/pipeline/runners/)."""

from __future__ import annotations

import collections
from pathlib import Path

import apache_beam as beam
from apache_beam.testing import util as beam_testing
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tensorflow_model_analysis import constants
from tfx.components.util import examples_utils, tfxio_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils
from tfx_bsl.tfxio import dataset_options, parquet_tfxio, tf_example_record

from pipeline.components import eval_extractors
from pipeline.upstream import parquet_source
from pipeline.components import csv_example_gen
from tests.conftest import curated_schema

parquet_source.install()


def _examples(data_dir: Path, output: Path, payload_format: int) -> Path:
    """The sample through CsvExampleGen's executor into one split, `train`."""
    examples = standard_artifacts.Examples()
    examples.uri = str(output)
    csv_example_gen.Executor().Do(
        {},
        {"examples": [examples]},
        {
            "input_base": str(data_dir),
            "input_config": proto_utils.proto_to_json(
                example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="train", pattern="data.csv")])
            ),
            "output_config": proto_utils.proto_to_json(example_gen_pb2.Output()),
            "output_data_format": payload_format,
        },
    )
    return output / "Split-train"


@pytest.fixture(scope="module")
def payloads(tmp_path_factory, sample_data_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("payloads")
    return {
        "tf_example": _examples(sample_data_dir, root / "tf_example", example_gen_pb2.FORMAT_TF_EXAMPLE),
        "parquet": _examples(sample_data_dir, root / "parquet", example_gen_pb2.FORMAT_PARQUET),
    }


def _rows(batch: dict) -> collections.Counter:
    """Per row, each feature's values (a sparse tensor's by row), as a hashable tuple."""
    columns = {}
    for name, tensor in sorted(batch.items()):
        if isinstance(tensor, tf.SparseTensor):
            dense = tf.sparse.to_dense(tf.sparse.reorder(tensor), default_value=b"" if tensor.dtype == tf.string else 0)
            counts = tf.math.bincount(tf.cast(tensor.indices[:, 0], tf.int32), minlength=int(tensor.dense_shape[0]))
            columns[name] = [tuple(row[:n]) for row, n in zip(dense.numpy().tolist(), counts.numpy().tolist())]
        else:
            columns[name] = [tuple(np.atleast_1d(v).tolist()) for v in tensor.numpy()]
    return collections.Counter(zip(*[[(name, v) for v in values] for name, values in columns.items()]))


@pytest.mark.parametrize("batch_size", [5000, 700])
def test_dataset_gives_the_tf_example_readers_tensors(payloads, batch_size):
    """Every row, as TFXIO's tf.Example reader gives it with the curated schema (sparse tensors for the
    optional features, including the one column no row of the sample has a value in), in batches of the
    size asked: made whole (5000, at least CONVERSION_ROWS) or cut from larger ones (700)."""
    schema = curated_schema()
    options = dataset_options.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=False, num_epochs=1)
    theirs = tf_example_record.TFExampleRecord(str(payloads["tf_example"] / "*"), schema=schema).TensorFlowDataset(options)
    ours = parquet_tfxio.ParquetTFXIO(str(payloads["parquet"] / "*"), schema=schema).TensorFlowDataset(options)
    their_batches, our_batches = list(theirs), list(ours)
    sizes = [int(next(iter(batch.values())).dense_shape[0]) for batch in our_batches]
    assert sizes == [batch_size] * (1500 // batch_size) + [1500 % batch_size]
    for our_batch, their_batch in zip(our_batches, their_batches):
        assert set(our_batch) == set(their_batch) == {f.name for f in schema.feature}
        for name in our_batch:
            assert type(our_batch[name]) is type(their_batch[name]), name
            assert our_batch[name].dtype == their_batch[name].dtype, name
    ours_rows = sum((_rows(batch) for batch in our_batches), collections.Counter())
    assert sum(ours_rows.values()) == 1500
    assert ours_rows == sum((_rows(batch) for batch in their_batches), collections.Counter())


def test_the_trainers_data_accessor_reads_parquet_examples(payloads):
    """What `fn_args.data_accessor.tf_dataset_factory` does with a Parquet Examples artifact, label split off."""
    examples = standard_artifacts.Examples()
    examples.uri = str(payloads["parquet"].parent)
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_PARQUET)
    examples_utils.set_file_format(examples, "FILE_FORMAT_PARQUET")
    factory = tfxio_utils.get_tf_dataset_factory_from_artifact([examples], [])
    options = dataset_options.TensorFlowDatasetOptions(batch_size=32, label_key="tips")
    features, label = next(iter(factory([str(payloads["parquet"] / "*")], options, curated_schema())))
    assert "tips" not in features and "fare" in features
    assert int(label.dense_shape[0]) == 32 and int(features["fare"].dense_shape[0]) == 32


def _files(payloads) -> list[str]:
    return sorted(str(p) for p in payloads["parquet"].glob("*.parquet"))


def _keys(batches) -> collections.Counter:
    return collections.Counter(
        (row["trip_start_timestamp"][0], row["fare"][0] if row["fare"] else None, row["tips"][0] if row["tips"] else None)
        for batch in batches
        for row in batch.to_pylist()
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_are_exact_and_each_epoch_reads_every_row_once(payloads, shuffle):
    files = _files(payloads)
    everything = _keys(pq.read_table(f).to_batches()[0] for f in files)
    batches = list(parquet_source.record_batches(files, None, 64, 2, shuffle, 100, 7, drop_final_batch=False))
    assert [b.num_rows for b in batches] == [64] * (3000 // 64) + [3000 % 64]
    assert _keys(batches) == everything + everything
    first_epoch = _keys(batches[: 1500 // 64])
    assert all(first_epoch[key] <= everything[key] for key in first_epoch)  # no row twice within an epoch
    in_order = [b for b in pq.read_table(files[0]).to_batches()]
    if not shuffle:
        assert batches[0].to_pylist() == pa.Table.from_batches(in_order).slice(0, 64).to_pylist()
    dropped = list(parquet_source.record_batches(files, None, 64, 1, shuffle, 100, 7, drop_final_batch=True))
    assert [b.num_rows for b in dropped] == [64] * (1500 // 64)


def test_conform_casts_to_the_schemas_types_and_names_what_does_not_fit():
    schema = pa.schema([("a", pa.large_list(pa.int64())), ("b", pa.large_list(pa.large_binary()))])
    batch = pa.RecordBatch.from_arrays([pa.nulls(2), pa.array([[b"x"], []], pa.list_(pa.binary()))], ["a", "b"])
    conformed = parquet_source.conform(batch, schema)
    assert conformed.schema.equals(schema)
    assert conformed.to_pylist() == [{"a": None, "b": [b"x"]}, {"a": None, "b": []}]
    floats = pa.RecordBatch.from_arrays([pa.array([[1.5]], pa.large_list(pa.float32())), pa.array([[b"x"]])], ["a", "b"])
    with pytest.raises(ValueError, match=r"column 'a' of the Parquet examples is large_list<item: float>"):
        parquet_source.conform(floats, schema)
    with pytest.raises(ValueError, match=r"no column 'b'"):
        parquet_source.conform(pa.RecordBatch.from_arrays([pa.nulls(1)], ["a"]), schema)


def test_a_feature_the_files_lack_is_named(payloads):
    schema = curated_schema()
    schema.feature.add(name="surcharge", type=schema.feature[0].type)
    options = dataset_options.TensorFlowDatasetOptions(batch_size=8)
    with pytest.raises(ValueError, match=r"features \['surcharge'\] are not columns of"):
        parquet_tfxio.ParquetTFXIO(str(payloads["parquet"] / "*"), schema=schema).TensorFlowDataset(options)


def test_beam_source_gives_the_schemas_types(payloads):
    """In Beam (Transform's read), the batches have the Arrow schema TFXIO's tensor adapter compares with,
    the all-empty column typed too; without a schema, the files' own types (StatisticsGen's read)."""
    schema = curated_schema()
    with_schema = parquet_tfxio.ParquetTFXIO(str(payloads["parquet"] / "*"), schema=schema)
    projected = with_schema.Project(["fare", "pickup_census_tract", "company"])
    for tfxio in (with_schema, projected):
        expected = tfxio.ArrowSchema()
        with beam.Pipeline() as p:
            schemas = (
                p
                | tfxio.BeamSource(batch_size=500)
                | beam.Map(lambda b: (b.schema.equals(expected), b.num_rows))
                | beam.combiners.ToList()
            )
            beam_testing.assert_that(schemas, lambda result: _check(result, expected=[(True, 500)] * 3))
    files_schema = pq.read_schema(_files(payloads)[0])
    assert files_schema.field("pickup_census_tract").type == pa.null()


def test_beam_source_reads_every_row_once_without_telemetry(payloads):
    """Transform's read: every row of the files once, in batches of at most the size asked, and none of
    tfx_bsl's per-batch telemetry (Beam distributions under `tfx.io`), which walked every column of
    every batch in Python."""
    files = _files(payloads)
    expected = pa.concat_tables(pq.read_table(path) for path in files)
    tfxio = parquet_tfxio.ParquetTFXIO(str(payloads["parquet"] / "*"))
    p = beam.Pipeline()
    rows = (
        p
        | tfxio.BeamSource(batch_size=400)
        | beam.FlatMap(lambda b: [(b.num_rows <= 400, row["trip_start_timestamp"], row["fare"]) for row in b.to_pylist()])
        | beam.combiners.ToList()
    )
    wanted = sorted((True, *row) for row in zip(*(expected.column(c).to_pylist() for c in ("trip_start_timestamp", "fare"))))
    beam_testing.assert_that(rows, lambda result: _check(result, expected=wanted))
    result = p.run()
    result.wait_until_finish()
    metrics = result.metrics().query()
    assert not [m for kind in metrics.values() for m in kind if m.key.metric.namespace.startswith("tfx")]


def _check(result, expected):
    [batches] = result
    assert sorted(batches) == expected, batches


def test_evaluator_gets_the_tf_examples_of_the_rows(payloads):
    """The raw input column TFMA feeds `serving_default`: the Parquet rows serialized, the same examples
    (feature for feature) as the tf.Example payload's; a batch that has the column is left alone."""
    batch = pa.Table.from_batches(pq.read_table(_files(payloads)[0]).to_batches()).combine_chunks().to_batches()[0]
    extracts = eval_extractors.with_serialized_examples({constants.ARROW_RECORD_BATCH_KEY: batch})
    with_raw = extracts[constants.ARROW_RECORD_BATCH_KEY]
    serialized = with_raw.column(constants.ARROW_INPUT_COLUMN).flatten().to_pylist()
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(str(p) for p in payloads["tf_example"].glob("*.gz")), "GZIP")]

    def parsed(record):
        features = tf.train.Example.FromString(record).features.feature
        return tuple(sorted((name, tuple(getattr(f, f.WhichOneof("kind")).value)) for name, f in features.items() if f.WhichOneof("kind")))

    assert len(serialized) == batch.num_rows == 1500
    assert collections.Counter(map(parsed, serialized)) == collections.Counter(map(parsed, records))
    assert eval_extractors.with_serialized_examples(extracts) is extracts
