"""Runs the pipeline on TFX's local orchestrator: the default runner (one process, SQLite MLMD).

    python pipeline/local_runner.py
    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python pipeline/local_runner.py, or re-executed by the tfx CLI): Python put pipeline/
    # first on sys.path, where pipeline.py would shadow the `pipeline` package. The project root goes first.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# isort: off
import pipeline  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfx import v1 as tfx  # noqa: E402

from pipeline import configs, data_gate, progress, run_record, run_summary  # noqa: E402
from pipeline import pipeline as taxi_pipeline  # noqa: E402
# isort: on


def run(config: configs.PipelineConfig | None = None) -> run_summary.RunSummary | None:
    """Run the whole pipeline once and print what it did; None when the run was only being compiled."""
    config = config or configs.load_config()
    configs.check_local_inputs(config)
    progress.configure_logging(config.log_level)
    record = run_record.collect(config, runner="local")
    rejected = None
    with progress.component_progress() as tracker:
        try:
            tfx.orchestration.LocalDagRunner().run(taxi_pipeline.create_pipeline(config))
        except data_gate.DataGateError as error:
            rejected = error
            tracker.report_failure()
    if not tracker.started:
        # `tfx pipeline create` executes this file only to read the pipeline: nothing ran.
        return None
    connection = taxi_pipeline.metadata_connection_config(config)
    if rejected is not None:
        record[run_record.PREFIX + "data_gate"] = str(rejected)
    summary = run_summary.summarize_latest_run(connection, config.pipeline_name)
    if summary.blessing_reason:
        record[run_record.PREFIX + "blessing_reason"] = summary.blessing_reason
    run_record.record_run(connection, config, runner="local", record=record)
    print(run_summary.format_summary(summary), flush=True)
    if rejected is not None:
        raise rejected
    return summary


def main() -> int:
    try:
        run()
    except configs.ConfigError as error:
        # The message says what to fix; a traceback would not.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except data_gate.DataGateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
