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

from pipeline import configs, progress, recovery, run_record, run_summary, store_lock  # noqa: E402
from pipeline import pipeline as taxi_pipeline  # noqa: E402
# isort: on


def run(config: configs.PipelineConfig | None = None) -> run_summary.RunSummary | None:
    """Run the whole pipeline once and print what it did; None when the run was only being compiled."""
    config = config or configs.load_config()
    configs.check_local_inputs(config)
    progress.configure_logging(config.log_level)
    record = run_record.collect(config, runner="local")
    connection = taxi_pipeline.metadata_connection_config(config)
    # One run at a time per store; a run killed earlier is cleaned up first (pipeline/recovery.py).
    with recovery.hold_run_lock(config):
        recovery.clean_up_interrupted_runs(config, connection)
        tracker = recovery.call_with_retries(
            lambda: _run_once(config), config.retries, config.retry_backoff_s
        )
        if not tracker.started:
            # `tfx pipeline create` executes this file only to read the pipeline: nothing ran.
            return None
        run_record.record_run(connection, config, runner="local", record=record)
        summary = run_summary.summarize_latest_run(connection, config.pipeline_name)
    print(run_summary.format_summary(summary), flush=True)
    return summary


def _run_once(config: configs.PipelineConfig) -> progress.ComponentProgress:
    with progress.component_progress() as tracker:
        tfx.orchestration.LocalDagRunner().run(taxi_pipeline.create_pipeline(config))
    return tracker


def main() -> int:
    try:
        run()
    except (configs.ConfigError, store_lock.LockBusy) as error:
        # The message says what to fix; a traceback would not.
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
