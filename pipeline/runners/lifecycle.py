"""One run of the pipeline, the same on every runner: its lifecycle, step by step.

The input check (and a line naming the files the run reads; a warning when the filesystem the outputs go to
has clearly too little free space for them), the engine check, the upstream patches
(pipeline/upstream), the store's run lock (pipeline/guards/store_lock.py), the clean-up after a run killed
earlier and of recorded outputs whose files are gone, the run itself, the run record, the closing summary
and the rows-in/rows-out check. A failure whose cause it can name stops the run with one line saying what
to change: a full disk (pipeline/guards/disk_space.py), a Beam worker lost mid-bundle
(pipeline/beam/worker_loss.py), the MySQL store gone (pipeline/metadata/store.py). A runner whose run is one process (local, Beam, and the scheduler, which
starts the Beam runner) hands `run` its TFX DAG runner. An orchestrator that runs each node as its own
task (Airflow, Luigi) runs the same steps as tasks: `begin_tasks` first, `node_task` for each node,
`end_tasks` last, whatever came before.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from typing import Callable, Iterator, Sequence

from tfx.orchestration import pipeline as tfx_pipeline

from pipeline import configs, inputs, logs, upstream
from pipeline.beam import profiles, worker_loss
from pipeline.components import data_gate
from pipeline.guards import disk_space, input_checks, recovery, store_lock
from pipeline.metadata import run_names, run_record, run_summary
from pipeline.runners import node_launch, progress
from pipeline import pipeline as pipeline_definition
from pipeline.metadata import artifact_files, store
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


class RunNotFinished(RuntimeError):
    """A task-per-node run reached its last task with nodes that did not finish."""


def check_input(config: configs.PipelineConfig, runner: str | None = None) -> inputs.RunInput:
    """A run's first step on every runner: bad input files or settings, or an engine that does not answer,
    stop it here, before anything is written. With `runner`, the run's log goes to its file from here on
    (a task-per-node orchestrator keeps its own task logs)."""
    run_input = input_checks.preflight(config)
    profiles.beam_args(config, run_input)
    profiles.check_engine(config)
    if runner:
        logs.configure(config.log_level, logs.log_file_for(config, runner))
    # What the components run in this process, patched where pipeline/upstream's versions allow; a patch
    # the pipeline needs on other versions stops the run here.
    upstream.install()
    progress.report_input(run_input, input_checks.count_rows(run_input.files))
    disk_space.warn_if_short(config, run_input)
    return run_input


def run(
    dag_runner, runner: str, config: configs.PipelineConfig | None = None, stop_after: str | None = None
) -> run_summary.RunSummary | None:
    """Run the whole pipeline once on `dag_runner`, in this process, and print what it did.

    With `stop_after` (a node id), only that node and the nodes it depends on run: TFX's partial run,
    whose nodes share the cache with whole runs (a later whole run finds them done).

    Returns None when the run was only being compiled (`tfx pipeline create` executes the runner file
    to read the pipeline). Raises store_lock.LockBusy when another run holds the store past
    run_lock_timeout_s, and store.StoreUnreachable when a MySQL store stops answering during the run. A
    run killed earlier, and recorded outputs whose files are gone, are cleaned up first, and a failed run
    is retried unless it lost the store or found the disk full (pipeline/guards/recovery.py). A run the
    data gate stopped is summarized and recorded, then its DataGateError raised: that is the user's data
    to fix, never retried.
    """
    config = config or configs.load_config()
    run_input = check_input(config, runner)
    record = run_record.collect(config, runner=runner)
    # The store lost once the lock is held (a server that went away) stops the run with one line.
    with store_lock.hold(config, runner), store.reached(config):
        recovery.clean_up_before_run(config)
        tracker, rejected = recovery.call_with_retries(
            lambda: _run_once(dag_runner, config, run_input, stop_after), config.retries, config.retry_backoff_s,
            # A full disk stays full until someone frees space: a retry would fail the same way.
            never_retry=(configs.ConfigError, disk_space.OutOfSpace),
        )
        if not tracker.started:
            return None
        summary = _record(config, runner, record, rejected=rejected)
    print(closing_summary(config, summary), flush=True)
    if rejected is not None:
        raise rejected
    check_rows_read(config, summary)
    return summary


def _record(
    config: configs.PipelineConfig, runner: str, record: dict, run_id: str | None = None,
    rejected: data_gate.DataGateError | None = None,
) -> run_summary.RunSummary:
    """Record the run (this store's newest, since the lock keeps runs apart) and read its summary."""
    connection = connection_config(config)
    if rejected is not None:
        record[run_record.PREFIX + "data_gate"] = str(rejected)
    summary = run_summary.summarize_latest_run(connection, config.pipeline_name)
    if summary.blessing_reason:
        record[run_record.PREFIX + "blessing_reason"] = summary.blessing_reason
    run_record.record_run(connection, config, runner=runner, record=record, run_id=run_id)
    return summary


def closing_summary(config: configs.PipelineConfig, summary: run_summary.RunSummary) -> str:
    """The summary every runner prints last, naming the run's log file (none on Airflow, whose task logs
    are the run's) and its report."""
    return progress.format_summary(summary, logs.log_file(), config.report_file(summary.run_id))


def begin_tasks(
    config: configs.PipelineConfig, runner: str, run_id: str, log_to_file: bool = False
) -> inputs.RunInput:
    """The first task of a task-per-node run: the input check, then the store's lease for `run_id`
    (refused with LockBusy, naming the holder, while another run holds the store)."""
    run_input = check_input(config, runner if log_to_file else None)
    if store_lock.claim(config, runner, run_id):
        recovery.clean_up_before_run(config)
    return run_input


def node_task(config: configs.PipelineConfig, runner: str, run_id: str, node_id: str) -> None:
    """One node's task: its launch for `run_id`, renewing the run's lease on the store while it runs."""
    with store_lock.renewing(config, runner, run_id) as fresh:
        if fresh:  # The lease had lapsed or was released (a resumed run): nothing else runs now.
            recovery.clean_up_before_run(config)
        upstream.install()  # in this task's process, as in the in-process runners'
        try:
            with _explaining(config, None, lambda: [node_id]):
                node_launch.launch(node_launch.compile_pipeline(config), node_id, run_id)
        except Exception as error:
            _record_failure(config, run_id, error)
            raise


@contextlib.contextmanager
def _explaining(
    config: configs.PipelineConfig, run_input: inputs.RunInput | None, running: Callable[[], list[str]]
) -> Iterator[None]:
    """A component's failure whose cause a run can name, whatever library raised it, as one error saying
    what happened and what to change: a write that found its disk full (naming the output folder of the
    node `running` says, when the error names no file), a Beam worker process lost mid-bundle."""
    with worker_loss.watching() as worker_exits:
        try:
            yield
        except Exception as error:
            node_ids = running()
            explained = disk_space.out_of_space(error, config, run_input, node_ids)
            if explained is None:
                explained = worker_loss.explain(error, config, node_ids, worker_exits, run_input)
            if explained is None:
                raise
            raise explained from error


def end_tasks(config: configs.PipelineConfig, runner: str, run_id: str) -> run_summary.RunSummary:
    """The last task of a task-per-node run, whatever happened before it: the run's record, summary and
    rows check when every node finished (else RunNotFinished naming those that did not), and the store
    released either way."""
    try:
        connection = connection_config(config)
        unfinished = [
            node_id for node_id in node_launch.upstream_node_ids(node_launch.compile_pipeline(config))
            if not node_launch.node_succeeded(connection, config.pipeline_name, run_id, node_id)
        ]
        if unfinished:
            raise RunNotFinished(f"run {run_id} did not finish: {', '.join(unfinished)} did not run or failed")
        summary = _record(config, runner, run_record.collect(config, runner=runner), run_id=run_id)
    finally:
        store_lock.release(config, run_id)
    print(closing_summary(config, summary), flush=True)
    check_rows_read(config, summary)
    return summary


def _run_once(
    dag_runner, config: configs.PipelineConfig, run_input: inputs.RunInput, stop_after: str | None = None
) -> tuple[progress.ComponentProgress, data_gate.DataGateError | None]:
    run_id = run_names.new_run_id(config)
    with progress.component_progress(interval_s=config.progress_interval_s) as tracker:
        try:
            definition = pipeline_definition.create_pipeline(config, run_input=run_input)
            run_options = tfx_pipeline.RunOptions(to_nodes=[stop_after]) if stop_after else None
            with _explaining(config, run_input, tracker.unfinished):
                _run_named(dag_runner, run_id, definition, run_options)
        except data_gate.DataGateError as error:
            tracker.report_failure()
            return tracker, error
        except Exception as error:
            _record_failure(config, run_id, error)
            raise
    return tracker, None


def _record_failure(config: configs.PipelineConfig, run_id: str, error: Exception) -> None:
    """The failed run's error line and log file into its record, for the report; best effort."""
    log_file = logs.log_file()
    try:
        run_record.record_failure(connection_config(config), run_id, logs.failure_text(error),
                                  str(log_file) if log_file else None)
    except Exception:  # noqa: BLE001  (the store may be what failed, lost or on a full disk: the run's error stands)
        pass


def _run_named(dag_runner, run_id: str, definition, run_options) -> None:
    """dag_runner.run(definition) as the run `run_id` (pipeline/metadata/run_names.py).

    TFX's LocalDagRunner and BeamDagRunner name the run from the clock inside `run_with_ir`, where the IR
    still holds the run id as a runtime parameter; they are handed an IR already bound to `run_id`. The
    call stays `run`, which `tfx pipeline create` intercepts to read the pipeline without running it.
    """
    run_with_ir = dag_runner.run_with_ir
    dag_runner.run_with_ir = lambda ir, run_options=None, **kwargs: run_with_ir(
        pipeline_definition.for_run(ir, run_id), run_options=run_options, **kwargs
    )
    try:
        dag_runner.run(definition, run_options=run_options)
    finally:
        del dag_runner.run_with_ir


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
    # cost every run would pay (bench/README.md). No collection before the freeze: it took 0.6 s, a
    # seventh of a cached run, to free some 4,000 objects the imports left, which now stay.
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
    except (RowCountMismatch, data_gate.DataGateError, RunNotFinished) as error:
        print(f"error: {error}", file=sys.stderr)
        logs.name_log_file()
        return 1
    except logs.ExplainedFailure as error:
        # A full disk, a lost store or Beam worker: one line saying what to do; what lies behind it, in the log file.
        logs.report_failure(error)
        return 1
    except Exception as error:  # noqa: BLE001  (a component failed: the error, where, and the full log)
        logs.report_failure(error)
        return 1
    return 0
