"""tfx_bsl's ParquetTFXIO completed: batches of the schema's Arrow types, and readers outside Beam.

tfx_bsl 1.16's ParquetTFXIO passes each Parquet table on with the types its file has, while the tensor
adapter Transform builds from a schema accepts only the types the schema gives: a column with no value in
any row is of Arrow's null type in the file and a typed list in the schema. Here, given a schema, batches
are cast to its types, as tfx_bsl's tf.Example decoder produces them, and a value that does not fit fails
naming its column. Its `TensorFlowDataset` and `RecordBatches` raise NotImplementedError, so a `run_fn`
calling `fn_args.data_accessor.tf_dataset_factory` (as every TFX trainer module does) fails; here they
read with Arrow's Parquet reader and TFXIO's tensor adapter, so a trainer module reads Parquet as it reads
tf.Examples: the same dict of dense, sparse or ragged tensors. Transform and the Trainer run executors
that install this (pipeline/components/parquet_components.py), so it is there wherever they run:
in-process, on a Beam or Airflow worker, in a Kubeflow or Vertex container.
"""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import tensorflow as tf
from tfx_bsl.tfxio import dataset_options, parquet_tfxio, tensor_adapter

# tfx_bsl's own methods (the completed BeamSource reads with tfx_bsl's), whatever was installed when this
# module was (re)loaded.
_STOCK = {
    name: getattr(getattr(parquet_tfxio.ParquetTFXIO, name), "stock", getattr(parquet_tfxio.ParquetTFXIO, name))
    for name in ("BeamSource", "TensorFlowDataset", "RecordBatches")
}


# Rows turned into tensors at a time by the tf.data reader: enough that the tensor adapter's fixed cost
# per call is small beside the rows (a conversion per batch reads several times slower than the
# tf.Example reader), few enough that the rows tf.data holds to cut batches from stay a small part of
# the process's memory.
CONVERSION_ROWS = 2048


def parquet_files(patterns: list[str]) -> list[str]:
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise ValueError(f"no Parquet file matches {patterns}")
    return files


def _open(path: str) -> pq.ParquetFile:
    filesystem, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
    return pq.ParquetFile(filesystem.open_input_file(inner))


def record_batches(
    files: list[str],
    columns: list[str] | None,
    batch_size: int,
    num_epochs: int | None,
    shuffle: bool,
    shuffle_buffer_size: int,
    seed: int | None,
    drop_final_batch: bool,
) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `batch_size` rows (but a last shorter one, unless dropped) over `num_epochs`
    passes (None: without end). Shuffled: the files in a new order each pass and the rows in windows of
    `shuffle_buffer_size` (CsvExampleGen has shuffled them within each range already)."""
    rng = np.random.default_rng(seed)
    window = max(batch_size, shuffle_buffer_size if shuffle else batch_size)
    held: pa.Table | None = None  # rows read and not yet yielded; slicing it copies nothing
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        read_any = False
        for index in rng.permutation(len(files)) if shuffle else range(len(files)):
            for batch in _open(files[index]).iter_batches(batch_size=window, columns=columns):
                if not batch.num_rows:
                    continue
                read_any = True
                if shuffle:
                    batch = batch.take(pa.array(rng.permutation(batch.num_rows)))
                table = pa.Table.from_batches([batch])
                held = table if held is None else pa.concat_tables([held, table])
                while held.num_rows >= batch_size:
                    yield _one_batch(held.slice(0, batch_size))
                    held = held.slice(batch_size)
        if not read_any:
            raise ValueError(f"the Parquet files {files} hold no rows")
        epoch += 1
    if held is not None and held.num_rows and not drop_final_batch:
        yield _one_batch(held)


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    return table.combine_chunks().to_batches()[0]


def _columns(tfxio: parquet_tfxio.ParquetTFXIO) -> list[str] | None:
    # pylint: disable=protected-access
    if tfxio._column_names:
        return list(tfxio._column_names)
    if tfxio._schema is not None:
        return [feature.name for feature in tfxio._schema.feature]
    return None


def _source(tfxio: parquet_tfxio.ParquetTFXIO) -> tuple[list[str], list[str] | None, pa.Schema]:
    """The files, the columns read (None: all) and the batches' Arrow schema: the schema's types when
    there is a schema (`conform` casts to them), else the files'. A column the schema names and the
    files lack is an error that names it."""
    files = parquet_files(tfxio._file_pattern)  # pylint: disable=protected-access
    columns = _columns(tfxio)
    arrow_schema = _open(files[0]).schema_arrow
    if columns is not None:
        missing = sorted(set(columns) - set(arrow_schema.names))
        if missing:
            raise ValueError(f"the schema's features {missing} are not columns of {files[0]}")
        arrow_schema = pa.schema([arrow_schema.field(name) for name in columns])
    if tfxio._schema is not None:  # pylint: disable=protected-access
        arrow_schema = tfxio._ArrowSchemaNoRawRecordColumn()  # pylint: disable=protected-access
    return files, columns, arrow_schema


def _record_batches(files: list[str], columns: list[str] | None, schema: pa.Schema, options) -> Iterator[pa.RecordBatch]:
    batches = record_batches(
        files,
        columns,
        options.batch_size,
        options.num_epochs,
        options.shuffle,
        options.shuffle_buffer_size,
        options.shuffle_seed,
        options.drop_final_batch,
    )
    return (conform(batch, schema) for batch in batches)


def tensorflow_dataset(
    self: parquet_tfxio.ParquetTFXIO, options: dataset_options.TensorFlowDatasetOptions
) -> tf.data.Dataset:
    """Batches as the schema's tensor representations say, as TFXIO's tf.Example reader gives them;
    with `label_key`, (features, label) pairs."""
    files, columns, arrow_schema = _source(self)
    representations = {
        name: representation
        for name, representation in self.TensorRepresentations().items()
        if name in arrow_schema.names
    }
    adapter = tensor_adapter.TensorAdapter(tensor_adapter.TensorAdapterConfig(arrow_schema, representations))

    # Small batches are made CONVERSION_ROWS rows at a time and cut by tf.data: TFXIO's tensor adapter
    # and tf.data's generator have a fixed cost per call in Python, whatever the rows. Cutting costs
    # about as much per row as making the tensors, so batches of CONVERSION_ROWS or more are made whole.
    rebatch = options.batch_size < CONVERSION_ROWS
    window = options._replace(batch_size=CONVERSION_ROWS, drop_final_batch=False) if rebatch else options

    def generate():
        for batch in _record_batches(files, columns, arrow_schema, window):
            yield adapter.ToBatchTensors(batch)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=adapter.TypeSpecs())
    if rebatch:
        dataset = dataset.unbatch().batch(options.batch_size, drop_remainder=options.drop_final_batch)
    if options.label_key is not None:
        label_key = options.label_key

        def split_label(features):
            features = dict(features)
            return features, features.pop(label_key)

        dataset = dataset.map(split_label)
    return dataset.prefetch(options.prefetch_buffer_size)


def record_batches_of(
    self: parquet_tfxio.ParquetTFXIO, options: dataset_options.RecordBatchesOptions
) -> Iterator[pa.RecordBatch]:
    return _record_batches(*_source(self), options)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with each column of `schema` cast to its type there (no copy when it has it already)."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        if field.name not in batch.schema.names:
            raise ValueError(f"the Parquet examples have no column {field.name!r}, which the schema names")
        column = batch.column(field.name)
        try:
            columns.append(column if column.type == field.type else column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(
                f"column {field.name!r} of the Parquet examples is {column.type}, which does not convert to "
                f"the schema's {field.type}: {error}"
            ) from error
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _to_batches(table: pa.Table, batch_size: int | None) -> list[pa.RecordBatch]:
    return table.to_batches(batch_size)


def beam_source(self: parquet_tfxio.ParquetTFXIO, batch_size: int | None = None) -> beam.PTransform:
    """tfx_bsl's batched Parquet read (a table per row group, cut into batches of at most `batch_size`
    rows); with a schema, each batch conformed to the schema's types. Without tfx_bsl's record-batch
    telemetry: it walks every column of every batch in Python to feed Beam metrics nothing here reads
    (a measurable share of Transform's time; bench/README.md)."""
    # pylint: disable=protected-access
    schema = None if self._schema is None else self._ArrowSchemaNoRawRecordColumn()
    patterns, columns = list(self._file_pattern), self._column_names
    min_bundle_size, validate = self._min_bundle_size, self._validate

    @beam.ptransform_fn
    @beam.typehints.with_output_types(pa.RecordBatch)
    def _read(pcoll_or_pipeline):
        tables = [
            pcoll_or_pipeline
            | f"ReadFromParquetBatched[{i}]"
            >> beam.io.ReadFromParquetBatched(
                file_pattern=pattern, min_bundle_size=min_bundle_size, validate=validate, columns=columns
            )
            for i, pattern in enumerate(patterns)
        ]
        batches = tables | "FlattenPCollsFromPatterns" >> beam.Flatten() | "ToRecordBatch" >> beam.FlatMap(
            _to_batches, batch_size
        )
        if schema is None:
            return batches
        return batches | "ConformToSchema" >> beam.Map(conform, schema)

    return _read()


_COMPLETED = {"BeamSource": beam_source, "TensorFlowDataset": tensorflow_dataset, "RecordBatches": record_batches_of}


def install() -> None:
    """Completes ParquetTFXIO; calling it again changes nothing."""
    for name, method in _COMPLETED.items():
        method.stock = _STOCK[name]
        setattr(parquet_tfxio.ParquetTFXIO, name, method)

