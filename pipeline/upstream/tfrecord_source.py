"""tf.Example TFRecords read a batch at a time, for every component that reads examples through TFXIO.

tfx_bsl's `TFExampleRecord.BeamSource()` (what StatisticsGen, Transform and the Evaluator read with) reads
each record through Beam's pure-Python TFRecord reader, passes it on as its own Beam element and then
groups the records into batches again for decoding: Python per record, which cost StatisticsGen and
Transform more than decoding and TFDV's own statistics together (bench/README.md). Here one Beam element
is one file: its records are read by TensorFlow's C++ reader in batches of the size the components ask for
(tfx_bsl's cap of 1,000 when they leave it to Beam), and each batch is decoded by tfx_bsl's own decoder,
with the raw-record column when one is asked for. The same records, decoded the same way; only how they
are grouped into batches differs, which Beam's tuning already varied from run to run. Files that are not
local, or compressed other than with gzip, are read with Beam's own record reader (still a batch per
element). Put in place by `pipeline.upstream.install()`, with the other Beam patches.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from tfx_bsl.coders import batch_util
from tfx_bsl.tfxio import telemetry, tf_example_record

# What tfx_bsl's BatchElements settles on when the component gives no batch size.
DEFAULT_BATCH_SIZE = batch_util._BATCH_SIZE_CAP  # pylint: disable=protected-access
# Compressions TensorFlow's reader handles, by Beam's name for them (which Beam infers from the suffix).
_TF_COMPRESSION = {CompressionTypes.GZIP: "GZIP", CompressionTypes.UNCOMPRESSED: ""}

_stock_beam_source = tf_example_record.TFExampleRecord.BeamSource


def read_batches(path: str, batch_size: int) -> Iterator[list[bytes]]:
    """The records of one TFRecord file in lists of batch_size (the last one shorter); checksums checked."""
    compression = CompressionTypes.detect_compression_type(path)
    if "://" not in path and os.path.isfile(path) and compression in _TF_COMPRESSION:
        import tensorflow as tf  # Loaded already wherever examples are read; kept off this module's import.

        dataset = tf.data.TFRecordDataset(path, compression_type=_TF_COMPRESSION[compression])
        for batch in dataset.batch(batch_size).as_numpy_iterator():
            yield batch.tolist()
        return
    batch: list[bytes] = []
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        while (record := tfrecordio._TFRecordUtil.read_record(f)) is not None:  # pylint: disable=protected-access
            batch.append(record)
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _matching_files(pattern: str) -> list[str]:
    matched = [m.path for result in FileSystems.match([pattern]) for m in result.metadata_list]
    if not matched:
        raise ValueError(f"no TFRecord file matches {pattern}")
    return sorted(matched)


class _ReadBatches(beam.DoFn):
    def __init__(self, batch_size: int):
        self._batch_size = batch_size

    def process(self, path: str) -> Iterator[list[bytes]]:
        yield from read_batches(path, self._batch_size)


def beam_source(self, batch_size: int | None = None) -> beam.PTransform:
    """`TFExampleRecord.BeamSource`: RecordBatches of the matched files' examples, a file per element."""
    decode = tf_example_record._DecodeBatchExamplesDoFn(  # pylint: disable=protected-access
        self._GetSchemaForDecoding(), self.raw_record_column_name
    )
    patterns = list(self._file_pattern)

    @beam.typehints.with_input_types(Any)
    @beam.typehints.with_output_types(pa.RecordBatch)
    def expand(pipeline: beam.Pipeline) -> beam.pvalue.PCollection:
        return (
            pipeline
            | "Patterns" >> beam.Create(patterns)
            | "MatchFiles" >> beam.FlatMap(_matching_files)
            # Breaks fusion, so that the files are spread over Beam's workers.
            | "Distribute" >> beam.Reshuffle()
            | "ReadBatches" >> beam.ParDo(_ReadBatches(batch_size or DEFAULT_BATCH_SIZE))
            | "Decode" >> beam.ParDo(decode)
            | "CollectRecordBatchTelemetry"
            >> telemetry.ProfileRecordBatches(
                self.telemetry_descriptors, self._logical_format, self._physical_format
            )
        )

    return beam.ptransform_fn(expand)()


def install() -> None:
    """TFExampleRecord.BeamSource reads a batch at a time; calling it again changes nothing."""
    tf_example_record.TFExampleRecord.BeamSource = beam_source


def uninstall() -> None:
    """tfx_bsl's own BeamSource again (tests compare the two)."""
    tf_example_record.TFExampleRecord.BeamSource = _stock_beam_source
