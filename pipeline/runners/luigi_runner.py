"""Runs the pipeline on Luigi: one `luigi.Task` per TFX node, wired by the compiled pipeline's graph.

    python -m pipeline.runners.luigi_runner --local-scheduler             # one process, no server
    python -m pipeline.runners.luigi_runner --scheduler-host HOST          # a central luigid (graph in its UI)
    python -m pipeline.runners.luigi_runner --local-scheduler --run-id ID  # resume run ID after a failure
    luigi --module pipeline.runners.luigi_runner tfx.Pipeline --local-scheduler   # Luigi's own command

The tasks run the lifecycle of every runner (pipeline/runners/lifecycle.py): a first task checks the input
files and takes the store's lease for the run (`tfx.CheckInput`); each node's task renews it while it
launches its node through TFX's portable launcher against the pipeline's MLMD store, so caching and
lineage are TFX's; the last task (`tfx.Pipeline`) records the run and releases the store. A task is
complete when MLMD holds a finished or cached execution of its node in the current run. A failed node fails its task, and Luigi runs nothing downstream of it; running
the same run id again re-runs only what did not finish, and a new run id re-runs everything with
unchanged nodes served from TFX's cache. Configuration comes from PIPELINE_* variables (pipeline/configs.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# isort: off
import pipeline  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import luigi

from pipeline import configs, logs
from pipeline.guards import store_lock
from pipeline.metadata import run_names, run_record
from pipeline.metadata.store import connection_config, open_store
from pipeline.runners import lifecycle, node_launch, progress
# isort: on

RUNNER = "luigi"
# What failed tasks raised in this process, for `run` to report (Luigi keeps only their status).
_FAILURES: list[BaseException] = []


def _config() -> configs.PipelineConfig:
    return configs.load_config()


class Node(luigi.Task):
    """One TFX node of one pipeline run."""

    task_namespace = "tfx"
    node_id = luigi.Parameter()
    run_id = luigi.Parameter()

    def requires(self):
        upstream = node_launch.upstream_node_ids(node_launch.compile_pipeline(_config()))[self.node_id]
        if not upstream:
            return [CheckInput(run_id=self.run_id)]
        return [Node(node_id=node_id, run_id=self.run_id) for node_id in upstream]

    def complete(self) -> bool:
        config = _config()
        return node_launch.node_succeeded(
            connection_config(config), config.pipeline_name, self.run_id, self.node_id
        )

    def run(self) -> None:
        lifecycle.node_task(_config(), RUNNER, self.run_id, self.node_id)


class CheckInput(luigi.Task):
    """The pre-flight check of the run's input files, before every node that waits for no other."""

    task_namespace = "tfx"
    run_id = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        # Written whole (Luigi writes aside and renames) once the check passed; a resumed run finds it.
        config = _config()
        folder = os.path.join(config.output_root, "luigi", config.pipeline_name, "input_checked")
        return luigi.LocalTarget(os.path.join(folder, f"{self.run_id}.json"))

    def run(self) -> None:
        self.passed(lifecycle.begin_tasks(_config(), RUNNER, self.run_id))

    def passed(self, run_input) -> None:
        """Mark the check done for the run (Luigi then finds this task complete)."""
        with self.output().open("w") as f:
            json.dump({"input": run_input.describe(), "fingerprint": run_input.fingerprint}, f)


class Pipeline(luigi.Task):
    """The whole pipeline run: every node, then the run's provenance record in MLMD."""

    task_namespace = "tfx"
    # A fresh id per process; pass the id of an unfinished run to resume it.
    run_id = luigi.Parameter(default=run_names.new_run_id())

    def requires(self):
        node_ids = node_launch.upstream_node_ids(node_launch.compile_pipeline(_config()))
        return [Node(node_id=node_id, run_id=self.run_id) for node_id in node_ids]

    def complete(self) -> bool:
        config = _config()
        connection = connection_config(config)
        if not all(task.complete() for task in self.requires()):
            return False
        context = open_store(connection).get_context_by_type_and_name("pipeline_run", self.run_id)
        return context is not None and bool(run_record.read_record(context))

    def run(self) -> None:
        lifecycle.end_tasks(_config(), RUNNER, self.run_id)


@Pipeline.event_handler(luigi.Event.FAILURE)
@Node.event_handler(luigi.Event.FAILURE)
@CheckInput.event_handler(luigi.Event.FAILURE)
def _remember_failure(task: luigi.Task, error: BaseException) -> None:
    _FAILURES.append(error)


def run(argv: list[str] | None = None) -> int:
    """Run the pipeline with Luigi's command-line options; the exit status."""
    config = _config()
    argv = list(sys.argv[1:] if argv is None else argv)
    # The run's id is chosen here, unless given, so that a failed run can release the store at once.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--run-id")
    run_id = parser.parse_known_args(argv)[0].run_id
    if run_id is None:
        run_id = run_names.new_run_id(config)
        argv += ["--run-id", run_id]
    # The CheckInput task's work, done here so that bad input or a busy store stops the command with one
    # line before Luigi starts; the task is then complete (`luigi --module` runs do it in the task).
    try:
        CheckInput(run_id=run_id).passed(lifecycle.begin_tasks(config, RUNNER, run_id, log_to_file=True))
    except store_lock.LockBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return store_lock.EXIT_BUSY
    # Luigi's own records (scheduling, its execution summary) go through the handlers just set: into the
    # log file, and onto the console at PIPELINE_LOG_LEVEL=INFO.
    luigi.configuration.get_config().set("core", "no_configure_logging", "true")
    _FAILURES.clear()
    with progress.component_progress(interval_s=config.progress_interval_s) as tracker:
        result = luigi.run(argv, main_task_cls=Pipeline, detailed_summary=True)
        succeeded = result.status in (luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY)
        if not succeeded:
            tracker.report_failure()
    # Its last task released the store; a failed run (or one Luigi found already done) does so here, at once
    # rather than when the lease lapses. Resuming the run takes it again.
    store_lock.release(config, run_id)
    if succeeded:
        return 0
    if _FAILURES:
        # A node task's failure with a known cause is one line already (lifecycle.node_task).
        logs.report_failure(_FAILURES[0])
    else:
        print(f"error: the Luigi run did not finish ({result.one_line_summary})", file=sys.stderr)
        logs.name_log_file()
    return 1


def main() -> int:
    try:
        return run()
    except configs.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return configs.EXIT_CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
