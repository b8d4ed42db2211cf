"""TFX's CsvExampleGen with an executor that converts CSV to examples a block at a time.

TFX's own executor reads each file in one Beam element, parses every line with Python's csv module,
builds every tf.Example field by field in Python and reshuffles all records through one group-by-key:
Python per field (bench/README.md), with no parallelism within a file and the whole dataset held by
the shuffle. This one cuts each file into byte ranges (Beam spreads them over its workers, locally or on
Dataflow/Flink/Spark), parses a range with Arrow's CSV reader, encodes it with tfx_bsl's C++ encoder and
writes one shard per range and split. Output, split names and properties are those of CsvExampleGen, and
so is each example: column types inferred over all rows (INT, else FLOAT, else STRING, else no type), an
empty cell as an empty list, rows split by a hash of their cells (identical rows land in the same
split, and a row stays in its split from run to run). Rows are shuffled within each range instead of
across the whole dataset. The work on the ranges, which Beam's workers run, is pipeline/components/csv_ranges.py;
here are the executor, the plan of ranges and splits, and the component.

The payload is the component's `output_data_format`: gzipped tf.Example TFRecords (TFX's default) or
Parquet (`FORMAT_PARQUET` with `FILE_FORMAT_PARQUET`): the same rows in the same order, as list columns
of the types tfx_bsl decodes tf.Examples to (large lists of int64, float or large binary; a column with
no value anywhere has Arrow's null type), which StatisticsGen, Transform and the Evaluator read without
decoding a tf.Example.
"""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import numpy as np
from absl import logging
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, utils
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.csv_example_gen import component as csv_component
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from pipeline import inputs
from pipeline.components.csv_ranges import Chunk, InferTypes, MergeTypes, SplitPlan, WriteChunk, log_rows

# Bytes of CSV per Beam element: small enough to keep a worker's memory in the hundreds of MB, large
# enough that per-range overhead (a few ms) is noise.
CHUNK_BYTES = 32 * 2**20

def plan_chunks(paths: list[str], chunk_bytes: int = CHUNK_BYTES) -> list[Chunk]:
    """Byte ranges of every file; one range for a compressed file (it is read from the top) and for a
    file with a line break inside a quoted value, where only a reader that starts at the top knows
    where its rows end."""
    chunks: list[Chunk] = []
    for path in paths:
        size = fileio.stat(path).length
        if size > chunk_bytes and not inputs.is_compressed(path) and not has_line_break_in_quotes(path):
            chunks += [Chunk(path, s, min(s + chunk_bytes, size), 0) for s in range(0, size, chunk_bytes)]
        else:
            chunks.append(Chunk(path, 0, -1, 0))
    return [chunk._replace(index=i) for i, chunk in enumerate(chunks)]


def has_line_break_in_quotes(path: str, block_bytes: int = 16 * 2**20) -> bool:
    """Whether a line break follows an odd number of quote characters (a byte scan, cheap beside parsing)."""
    parity = 0
    with fileio.open(path, "rb") as f:
        while data := f.read(block_bytes):
            if b'"' not in data:
                if parity:
                    return True
                continue
            array = np.frombuffer(data, np.uint8)
            quotes = np.flatnonzero(array == ord('"'))
            line_breaks = np.flatnonzero(array == ord("\n"))
            if ((np.searchsorted(quotes, line_breaks) + parity) & 1).any():
                return True
            parity = (parity + len(quotes)) & 1
    return False



def remove_abandoned_staging(directory: str) -> None:
    """Removes staging files of attempts that died mid-write (a killed worker whose bundle was retried).

    Once the Beam pipeline has finished none is being written, and the components downstream read every
    file in a split's directory: a truncated one would fail them, or feed them half a range twice.
    """
    for path in fileio.glob(os.path.join(directory, "*.tmp-*")):
        fileio.remove(path)



def split_plans(
    input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output
) -> list[SplitPlan]:
    names = utils.generate_output_split_names(input_config, output_config)
    if output_config.split_config.splits:
        if len(input_config.splits) != 1:
            raise ValueError("input must have only one split when output splits are specified")
        buckets = list(np.cumsum([s.hash_buckets for s in output_config.split_config.splits]))
        return [SplitPlan(input_config.splits[0].pattern, names, [int(b) for b in buckets])]
    return [SplitPlan(split.pattern, [name], [1]) for split, name in zip(input_config.splits, names)]


# The payloads this executor writes, each with the file format it goes in and that format's name on the
# artifact (TFX's readers parse the name: `tfrecords_gzip` or a FileFormat enum name).
_FILE_FORMATS = {
    example_gen_pb2.FORMAT_TF_EXAMPLE: (example_gen_pb2.FORMAT_TFRECORDS_GZIP, "tfrecords_gzip"),
    example_gen_pb2.FORMAT_PARQUET: (example_gen_pb2.FILE_FORMAT_PARQUET, "FILE_FORMAT_PARQUET"),
}


def output_formats(exec_properties: dict[str, Any]) -> tuple[int, str]:
    """The payload format to write and the file format's name for the artifact, from the component's
    `output_data_format` and `output_file_format` (unset: TFX's defaults, tf.Examples in gzipped TFRecords)."""
    payload_format = (
        exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY) or example_gen_pb2.FORMAT_TF_EXAMPLE
    )
    if payload_format not in _FILE_FORMATS:
        raise ValueError(
            f"output_data_format {example_gen_pb2.PayloadFormat.Name(payload_format)} is not one this "
            "CsvExampleGen writes: FORMAT_TF_EXAMPLE or FORMAT_PARQUET"
        )
    file_format, file_format_name = _FILE_FORMATS[payload_format]
    requested = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
    # TFX's component defaults the file format to gzipped TFRecords whatever the payload, so only a
    # Parquet file format with a tf.Example payload is a contradiction.
    if requested == example_gen_pb2.FILE_FORMAT_PARQUET and file_format != requested:
        raise ValueError(
            "output_file_format FILE_FORMAT_PARQUET needs output_data_format FORMAT_PARQUET, not "
            f"{example_gen_pb2.PayloadFormat.Name(payload_format)}"
        )
    return payload_format, file_format_name


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("this executor writes its splits itself; see Do")

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        if output_config.split_config.HasField("partition_feature_name"):
            raise ValueError("this CsvExampleGen splits by row content only, not by partition_feature_name")
        payload_format, file_format = output_formats(exec_properties)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        split_names = utils.generate_output_split_names(input_config, output_config)
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        with self._make_beam_pipeline() as pipeline:
            for plan in split_plans(input_config, output_config):
                self._add_split(pipeline, plan, input_base, examples, payload_format)
        for name in split_names:
            remove_abandoned_staging(artifact_utils.get_split_uri(examples, name))
        examples_utils.set_payload_format(artifact, payload_format)
        examples_utils.set_file_format(artifact, file_format)
        logging.info("Examples generated.")

    @staticmethod
    def _add_split(
        pipeline: beam.Pipeline, plan: SplitPlan, input_base: str, examples, payload_format: int
    ) -> None:
        pattern = os.path.join(input_base, plan.pattern)
        paths = list(inputs.list_files(input_base, plan.pattern))
        if not paths:
            raise RuntimeError(f"Split pattern {pattern} does not match any files.")
        column_names = inputs.read_header(paths[0])
        for path in paths[1:]:
            if inputs.read_header(path) != column_names:
                raise RuntimeError(f"Files in same split {pattern} have different header.")
        chunks = plan_chunks(paths, CHUNK_BYTES)
        split_uris = {name: artifact_utils.get_split_uri(examples, name) for name in plan.names}
        for uri in split_uris.values():
            fileio.makedirs(uri)
        label = plan.pattern
        ranges = (
            pipeline
            | f"Ranges[{label}]" >> beam.Create(chunks)
            # Breaks fusion, so that the ranges are spread over Beam's workers.
            | f"Distribute[{label}]" >> beam.Reshuffle()
        )
        kinds = ranges | f"InferTypes[{label}]" >> beam.ParDo(InferTypes(column_names)) | (
            f"MergeTypes[{label}]" >> beam.CombineGlobally(MergeTypes())
        )
        _ = (
            ranges
            | f"Write[{label}]"
            >> beam.ParDo(
                WriteChunk(
                    column_names, plan, split_uris, len(chunks), parquet=payload_format == example_gen_pb2.FORMAT_PARQUET
                ),
                beam.pvalue.AsSingleton(kinds),
            )
            | f"CountRows[{label}]" >> beam.CombinePerKey(sum)
            | f"LogRows[{label}]" >> beam.Map(log_rows)
        )


class CsvExampleGen(csv_component.CsvExampleGen):
    """CsvExampleGen, same parameters and outputs, with the block-at-a-time executor; and, as TFX's
    file-based ExampleGen has them, `output_data_format` and `output_file_format` (TFX's CsvExampleGen
    leaves them out), to write Parquet."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str | None = None,
        input_config: example_gen_pb2.Input | None = None,
        output_config: example_gen_pb2.Output | None = None,
        range_config: Any = None,
        output_data_format: int = example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format: int = example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    ):
        output_formats({"output_data_format": output_data_format, "output_file_format": output_file_format})
        example_gen_component.FileBasedExampleGen.__init__(
            self,
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            range_config=range_config,
            output_data_format=output_data_format,
            output_file_format=output_file_format,
        )
