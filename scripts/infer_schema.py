"""Infer a new task's schema from its data, before its first run: the task's SCHEMA_FILE, written once.

The pipeline validates and trains against the task's curated schema, so it must exist before the first
run. This command reads the task's input files (its data folder and input_pattern, as
the run would) into rows as CsvExampleGen writes them, computes TFDV's statistics over them and infers a
schema from those as SchemaGen does (infer_feature_shape off), then writes it to the task's schema file, only when that file does not exist
yet: a curated schema is never replaced (after runs, `make schema-candidate` writes SchemaGen's newest
inference beside it for review). Review what it wrote, commit it, run.

    PIPELINE_TASK=<package> python scripts/infer_schema.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

from pipeline import configs, inputs, logs  # noqa: E402
from pipeline.components import csv_ranges  # noqa: E402
from pipeline.guards import numeric_drift  # noqa: E402


def example_rows(files: tuple[str, ...]) -> pa.RecordBatch:
    """The files' rows as CsvExampleGen writes them (each column's type inferred over every file, an empty
    cell as no value), which is what StatisticsGen describes and SchemaGen infers from; all in memory."""
    tables = [csv_ranges.read_chunk(csv_ranges.Chunk(path, 0, -1, 0), inputs.read_header(path)) for path in files]
    kinds = csv_ranges.merge_types(
        [csv_ranges.column_type(table.column(name).combine_chunks()) for name in table.column_names] for table in tables
    )
    table = pa.Table.from_batches([csv_ranges.feature_batch(table, kinds) for table in tables]).combine_chunks()
    return table.to_batches()[0]


def infer_schema(config: configs.PipelineConfig) -> Path:
    """Write the schema inferred from the task's input files to config.schema_path (aside, then renamed, so
    that a failure leaves no schema behind); a ConfigError when the file exists or there is no input."""
    schema_path = Path(config.schema_path)
    if schema_path.exists():
        raise configs.ConfigError(
            f"{schema_path} exists: it is the task's curated schema, which this command never replaces (after "
            "a run, `make schema-candidate` writes SchemaGen's inference beside it for review)"
        )
    run_input = inputs.resolve_for(config)
    if not run_input.files:
        raise configs.ConfigError(f"no input files match {config.input_pattern!r} in {config.data_root}")
    # TFDV only here: importing it (and Beam) costs seconds that no other script pays.
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl

    statistics = stats_impl.generate_statistics_in_memory(example_rows(run_input.files), numeric_drift.stats_options())
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    schema_path.parent.mkdir(parents=True, exist_ok=True)
    staging = schema_path.with_name(f".{schema_path.name}.{os.getpid()}.tmp")
    tfdv.write_schema_text(schema, str(staging))
    os.replace(staging, schema_path)
    return schema_path


def main(argv: list[str] | None = None) -> int:
    logs.set_process_defaults()
    try:
        config = configs.load_config()
        logs.configure(config.log_level)  # What TFDV, Beam and TensorFlow log, only at PIPELINE_LOG_LEVEL=INFO.
        written = infer_schema(config)
    except configs.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return configs.EXIT_CONFIG_ERROR
    schema = written.read_text()
    features = schema.count("\nfeature {") + schema.startswith("feature {")
    print(f"Schema of task {config.task} inferred from {config.data_root} ({features} features): {written}\n"
          "Review it (types, domains, presence), commit it, then run the pipeline.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
