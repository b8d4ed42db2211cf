"""One run of the pipeline on any TFX DAG runner: what every in-process runner does around `run()`.

The pre-flight check of the input (and a line naming the files the run reads), the upstream patches
(pipeline/upstream), one run per store at a time, progress lines, the run record, the closing summary and the rows-in/rows-out check live here once;
`local_runner.py` and `beam_runner.py` only pick the DAG runner.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Callable, Sequence

from tfx.orchestration import pipeline as tfx_pipeline

from pipeline import configs, inputs, logs, upstream
from pipeline.beam import profiles
from pipeline.components import data_gate
from pipeline.guards import input_checks, recovery, store_lock
from pipeline.metadata import run_record, run_summary
from pipeline.runners import progress
from pipeline import pipeline as pipeline_definition
from pipeline.metadata import artifact_files
from pipeline.metadata.store import connection_config

# What `--validate-only` runs: the pipeline up to and including this node (TFX's partial run), so the
# pre-flight check, ExampleGen, the statistics, the curated schema, ExampleValidator and the data gate.
VALIDATE_ONLY_LAST_NODE = data_gate.DATA_GATE_ID


class RowCountMismatch(RuntimeError):
    """ExampleGen's splits hold a different number of rows than the input files: records were lost."""


def check_rows_read(config: configs.PipelineConfig, summary: run_summary.RunSummary) -> None:
    """Rows in the run's input files must equal the rows StatisticsGen counted over all splits."""
    examples = summary.component("CsvExampleGen").output("examples")
    if examples is None or not summary.rows_per_split:
        return
    try:
        run_input = inputs.resolve_for(
            config, artifact_files.int_property(examples, "span") or 0, artifact_files.int_property(examples, "version")
        )
    except configs.ConfigError:  # The files ExampleGen read are gone: nothing left to count.
        return
    rows_in, rows_out = input_checks.count_rows(run_input.files), sum(summary.rows_per_split.values())
    if rows_in != rows_out:
        raise RowCountMismatch(
            f"the input files ({run_input.describe()}) hold {rows_in:,} rows but ExampleGen's splits hold "
            f"{rows_out:,} ({', '.join(f'{k} {v:,}' for k, v in summary.rows_per_split.items())}) with Beam "
            f"args {' '.join(profiles.beam_args(config, run_input))}: records were lost or duplicated"
        )


def run(
    dag_runner, runner: str, config: configs.PipelineConfig | None = None, stop_after: str | None = None
) -> run_summary.RunSummary | None:
    """Run the whole pipeline once on `dag_runner` and print what it did.

    With `stop_after` (a node id), only that node and the nodes it depends on run: TFX's partial run,
    whose nodes share the cache with whole runs (a later whole run finds them done).

    Returns None when the run was only being compiled (`tfx pipeline create` executes the runner file
    to read the pipeline). Raises store_lock.LockBusy when another run holds the store past
    run_lock_timeout_s. A run killed earlier is cleaned up first, and a failed run is retried
    (pipeline/guards/recovery.py). A run the data gate stopped is summarized and recorded, then its
    DataGateError raised: that is the user's data to fix, never retried.
    """
    config = config or configs.load_config()
    run_input = input_checks.preflight(config)
    # A profile missing a setting, or whose job service does not answer, fails here, before anything runs.
    profiles.beam_args(config, run_input)
    profiles.check_engine(config)
    logs.configure(config.log_level, logs.log_file_for(config, runner))
    # What the components run in this process, patched where pipeline/upstream's versions allow; a patch
    # the pipeline needs on other versions stops the run here.
    upstream.install()
    progress.report_input(run_input, input_checks.count_rows(run_input.files))
    record = run_record.collect(config, runner=runner)
    connection = connection_config(config)
    with recovery.hold_run_lock(config):
        recovery.clean_up_interrupted_runs(config, connection)
        tracker, rejected = recovery.call_with_retries(
            lambda: _run_once(dag_runner, config, run_input, stop_after), config.retries, config.retry_backoff_s
        )
        if not tracker.started:
            return None
        if rejected is not None:
            record[run_record.PREFIX + "data_gate"] = str(rejected)
        summary = run_summary.summarize_latest_run(connection, config.pipeline_name)
        if summary.blessing_reason:
            record[run_record.PREFIX + "blessing_reason"] = summary.blessing_reason
        run_record.record_run(connection, config, runner=runner, record=record)
    print(progress.format_summary(summary), flush=True)
    if rejected is not None:
        raise rejected
    check_rows_read(config, summary)
    return summary


def _run_once(
    dag_runner, config: configs.PipelineConfig, run_input: inputs.RunInput, stop_after: str | None = None
) -> tuple[progress.ComponentProgress, data_gate.DataGateError | None]:
    with progress.component_progress(interval_s=config.progress_interval_s) as tracker:
        try:
            definition = pipeline_definition.create_pipeline(config, run_input=run_input)
            if stop_after:
                dag_runner.run(definition, run_options=tfx_pipeline.RunOptions(to_nodes=[stop_after]))
            else:
                dag_runner.run(definition)
        except data_gate.DataGateError as error:
            tracker.report_failure()
            return tracker, error
    return tracker, None


def parse_args(argv: Sequence[str], description: str) -> argparse.Namespace:
    """The options every in-process runner takes (none are needed: `tfx run create` passes none)."""
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument(
        "--validate-only", action="store_true",
        help="check the input and run the pipeline up to the data gate, training nothing; exits 1 when "
             "the gate rejects the data (what `make validate-data` and the CI's data validation run)",
    )
    return parser.parse_args(argv)


def stop_after(args: argparse.Namespace) -> str | None:
    """The node a run stops after, from the runner's options; None runs the whole pipeline."""
    return VALIDATE_ONLY_LAST_NODE if args.validate_only else None


def main(run_once: Callable[[], object]) -> int:
    """A runner's command line: the exit status, with errors a user can act on in one line."""
    # TensorFlow, TFX and Beam are imported by now and live as long as the process: frozen, they are
    # no longer re-scanned by every full collection. The runner files, run as scripts, keep the collector
    # off while they import them: collections during those imports only re-scan the same objects, a
    # cost every run would pay (bench/README.md).
    gc.collect()
    gc.freeze()
    gc.enable()
    try:
        run_once()
    except configs.ConfigError as error:
        # The message says what to fix; a traceback would not.
        print(f"error: {error}", file=sys.stderr)
        return configs.EXIT_CONFIG_ERROR
    except store_lock.LockBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return store_lock.EXIT_BUSY
    except (RowCountMismatch, data_gate.DataGateError) as error:
        print(f"error: {error}", file=sys.stderr)
        logs.name_log_file()
        return 1
    except Exception as error:  # noqa: BLE001  (a component failed: the error, where, and the full log)
        logs.report_failure(error)
        return 1
    return 0
