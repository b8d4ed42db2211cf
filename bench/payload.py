"""What a columnar payload would buy: TFX's StatisticsGen and Transform executors, with the pipeline's
settings, over one split of a finished run's examples as written (gzipped tf.Example TFRecords) and as the
same rows in Parquet (TFX's FORMAT_PARQUET), side by side in one invocation.

    .venv/bin/python -m bench.payload --examples <a run's CsvExampleGen/examples/<id>> [--split train]

Each executor runs in its own process (imports count, as in a pipeline run), one payload after the other,
with Beam in memory (one process), so the ratio is the payload's and not the worker count's. The outputs
are compared: the statistics' exact parts (counts, missing values, minimum, maximum, zeros, string
statistics) and the transform graphs (vocabularies byte for byte, the transformed values of rows of the
split). Results go to bench/results/payload-<tag>.json. The measurement that decided the payload: the
pipeline writes Parquet since (bench/README.md, sixth round), so it takes a run written as tf.Examples.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pipeline  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2  # noqa: E402
from tfx.components.util import examples_utils  # noqa: E402
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402
from tfx.types import artifact_utils, standard_artifacts  # noqa: E402
from tfx_bsl.tfxio import tf_example_record  # noqa: E402

from bench import measure  # noqa: E402
from pipeline import upstream  # noqa: E402
from pipeline.guards import numeric_drift  # noqa: E402

upstream.install()  # the runners' Beam and reader patches, as a run has them

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PAYLOADS = ("tfrecord", "parquet")
EXECUTORS = ("statistics", "transform")
ROW_GROUP = 65536  # rows per Parquet row group, the batches Beam's Parquet source yields


def convert(split_dir: Path, destination: Path, schema_path: Path) -> int:
    """Each gzipped TFRecord shard of the split as one Parquet file of the same rows (tfx_bsl's decoder)."""
    schema = _schema(schema_path)
    destination.mkdir(parents=True)
    for index, shard in enumerate(sorted(glob.glob(str(split_dir / "*.gz")))):
        source = tf_example_record.TFExampleRecord(shard, schema=schema)
        target = str(destination / f"part-{index:05d}.parquet")
        with beam.Pipeline() as p:
            _ = (
                p
                | source.BeamSource(batch_size=ROW_GROUP)
                | beam.combiners.ToList()
                | beam.Map(lambda batches, target=target: pq.write_table(
                    pa.Table.from_batches(batches), target, row_group_size=ROW_GROUP))
            )
    return sum(pq.ParquetFile(path).metadata.num_rows for path in glob.glob(str(destination / "*.parquet")))


def _schema(schema_path: Path):
    return text_format.Parse(schema_path.read_text(), schema_pb2.Schema())


def _examples(uri: Path, split: str, payload: str):
    examples = standard_artifacts.Examples()
    examples.uri = str(uri)
    examples.split_names = artifact_utils.encode_split_names([split])
    if payload == "parquet":
        examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_PARQUET)
        examples_utils.set_file_format(examples, "FILE_FORMAT_PARQUET")
    else:
        examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    return examples


def child(executor: str, payload: str, examples_uri: Path, split: str, schema_path: Path, out: Path) -> None:
    """One executor over one payload, as the pipeline configures it (pipeline/pipeline.py)."""
    examples = _examples(examples_uri, split, payload)
    context = BaseBeamExecutor.Context(beam_pipeline_args=[], tmp_dir=str(out / "tmp"))
    if executor == "statistics":
        from tfx.components.statistics_gen import executor as statistics_executor  # each child needs one

        statistics = standard_artifacts.ExampleStatistics()
        statistics.uri = str(out / "statistics")
        statistics_executor.Executor(context).Do(
            {"examples": [examples]}, {"statistics": [statistics]},
            {"stats_options_json": numeric_drift.stats_options().to_json(), "exclude_splits": "[]"},
        )
    else:
        from tfx.components.transform import executor as transform_executor  # each child needs one

        schema = standard_artifacts.Schema()
        schema.uri = str(schema_path.parent)
        graph = standard_artifacts.TransformGraph()
        graph.uri = str(out / "transform_graph")
        transform_executor.Executor(context).Do(
            {"examples": [examples], "schema": [schema]}, {"transform_graph": [graph]},
            {"module_file": str(measure.PROJECT_ROOT / "modules" / "transform_module.py"),
             "disable_statistics": True, "splits_config": json.dumps({"analyze": [split]}),
             "force_tf_compat_v1": 0},
        )


def compare_statistics(split: str, first: Path, second: Path) -> dict:
    """The exact parts equal? (Means and sums can differ in their last digits, quantiles slightly: the
    rows reach TFDV in other batches.)"""
    def load(out: Path):
        [path] = glob.glob(str(out / "statistics" / f"Split-{split}" / "FeatureStats.pb"))
        dataset = statistics_pb2.DatasetFeatureStatisticsList.FromString(Path(path).read_bytes()).datasets[0]
        return dataset.num_examples, {feature.path.step[0]: feature for feature in dataset.features}

    (rows_a, a), (rows_b, b) = load(first), load(second)
    exact = rows_a == rows_b and set(a) == set(b)
    largest_mean_difference = 0.0
    for name in a:
        if a[name].HasField("num_stats"):
            x, y = a[name].num_stats, b[name].num_stats
            exact &= x.common_stats == y.common_stats and (x.min, x.max, x.num_zeros) == (y.min, y.max, y.num_zeros)
            largest_mean_difference = max(largest_mean_difference, abs(x.mean - y.mean) / max(abs(x.mean), 1e-12))
        else:
            exact &= a[name] == b[name]
    return {"rows": [rows_a, rows_b], "exact_parts_equal": bool(exact),
            "largest_relative_mean_difference": largest_mean_difference}


def compare_transform(split_dir: Path, first: Path, second: Path, rows: int = 5000) -> dict:
    """Vocabularies byte for byte, and the transformed values of the split's first rows under each graph."""
    assets = sorted(p.name for p in (first / "transform_graph" / "transform_fn" / "assets").iterdir())
    same_vocabularies = all(
        (first / "transform_graph" / "transform_fn" / "assets" / name).read_bytes()
        == (second / "transform_graph" / "transform_fn" / "assets" / name).read_bytes()
        for name in assets
    )
    shards = sorted(glob.glob(str(split_dir / "*.gz")))
    records = list(tf.data.TFRecordDataset(shards[:1], compression_type="GZIP").take(rows).as_numpy_iterator())
    outputs = []
    for out in (first, second):
        graph = tft.TFTransformOutput(str(out / "transform_graph"))
        features = tf.io.parse_example(tf.constant(records), graph.raw_feature_spec())
        outputs.append({k: v.numpy() for k, v in graph.transform_raw_features(features).items()})
    differences = {}
    for name, value in outputs[0].items():
        other = outputs[1][name]
        if value.dtype.kind == "f":
            differences[name] = {"max_abs_difference": float(np.max(np.abs(value - other)))}
        else:
            differences[name] = {"rows_different": int(np.sum(value != other))}
    return {"vocabularies": assets, "vocabularies_equal": same_vocabularies, "rows_compared": len(records),
            "outputs": differences}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=Path, required=True, help="a CsvExampleGen examples artifact's folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--schema", type=Path, default=measure.PROJECT_ROOT / "schema" / "schema.pbtxt")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--child", nargs=3, metavar=("EXECUTOR", "PAYLOAD", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        executor, payload, out = args.child
        child(executor, payload, args.examples, args.split, args.schema, Path(out))
        return 0

    split_dir = args.examples / f"Split-{args.split}"
    if not any(split_dir.glob("*.gz")):
        already = " (its examples are Parquet, the pipeline's payload: give a run written as tf.Examples)"
        parser.error(f"no gzipped TFRecord shards in {split_dir}" + (already if any(split_dir.glob("*.parquet")) else ""))
    work = Path(tempfile.mkdtemp(prefix="taxi-payload-"))
    try:
        parquet_uri = work / "parquet_examples"
        rows = convert(split_dir, parquet_uri / f"Split-{args.split}", args.schema)
        uris = {"tfrecord": args.examples, "parquet": parquet_uri}
        sizes = {payload: sum(p.stat().st_size for p in (uri / f"Split-{args.split}").iterdir())
                 for payload, uri in uris.items()}
        timings: dict[str, dict] = {}
        for executor in EXECUTORS:
            for payload in PAYLOADS:
                out = work / f"{executor}-{payload}"
                run = measure.run_process(
                    [sys.executable, "-m", "bench.payload", "--examples", str(uris[payload]), "--split", args.split,
                     "--schema", str(args.schema), "--child", executor, payload, str(out)],
                    dict(os.environ), work / f"{executor}-{payload}.log", timeout=7200,
                )
                if run.returncode != 0:
                    raise RuntimeError(f"{executor} over {payload} failed:\n{run.log_tail}")
                timings.setdefault(executor, {})[payload] = {
                    "seconds": round(run.seconds, 1), "cpu_seconds": round(run.cpu_seconds, 1),
                    "rows_per_second": round(rows / run.seconds)}
                print(f"{executor} over {payload}: {run.seconds:.1f} s", flush=True)
        result = {
            "examples": str(args.examples), "split": args.split, "rows": rows, "bytes": sizes,
            "timings": timings,
            "statistics": compare_statistics(args.split, work / "statistics-tfrecord", work / "statistics-parquet"),
            "transform": compare_transform(split_dir, work / "transform-tfrecord", work / "transform-parquet"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"payload-{args.tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| executor | tf.Example TFRecords | Parquet | ratio |\n| --- | --- | --- | --- |")
    for executor, by_payload in timings.items():
        a, b = by_payload["tfrecord"]["seconds"], by_payload["parquet"]["seconds"]
        print(f"| {executor} ({rows:,} rows) | {a} s | {b} s | {b / a:.2f}x |")
    print(f"size: {sizes['tfrecord'] / 2**20:.0f} MB as gzipped TFRecords, {sizes['parquet'] / 2**20:.0f} MB as Parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
