"""`pipeline`: ask ML Metadata what ran, where the serving model came from, roll back, report.

    pipeline runs                      recent runs: status, per-component time, cached or not
    pipeline lineage serving           the chain behind what is live now (--format text|json|dot)
    pipeline rollback [VERSION]        serve an earlier blessed model again, recorded in MLMD
    pipeline report latest             one self-contained HTML file for a run
    pipeline blessing latest           the run's metrics against the thresholds, as Markdown; exit 3 if not blessed
    pipeline promote latest            publish the run's blessed model into the production serving directory
    pipeline tensorboard latest        TensorBoard on the Trainer's logs of a run (`make tensorboard`)
    pipeline plan                      what the next run would serve from the cache or run, and why
    eval "$(pipeline env)"             quiet TensorFlow's start-up lines in a shell, for the tfx CLI

Paths default to the pipeline's configuration (PIPELINE_* variables apply), so the commands read the
same store and serving directory as `make run`; --metadata-path and --serving-model-dir point them
at the store of any runner.

A malformed argument (a negative count, an id beyond ML Metadata's 64-bit ids, a path that is not
there or is not a store, a file that cannot be written) stops the command with one line naming it and
exit status 2; a well-formed one the store does not know (no such run, artifact or version), or an
action that fails (a port already taken), with one line and exit status 1. Output cut short by a reader
that stopped (`pipeline runs | head -2`) ends quietly with exit status 0.

Nothing here imports TensorFlow, TFDV or TFMA, except `tensorboard`'s server and `plan`, which compiles
the pipeline (about 6 s, most of it importing TFX and TFMA): every other command reads the store and
the artifacts' files with ML Metadata and protobuf, and answers in well under two seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import socket
import sys

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline import configs, logs
from pipeline.governance import blessing, report
from pipeline.governance.lineage import lineage_dot, model_lineage, render_dot
from pipeline.governance.promotion import promote
from pipeline.governance.rollback import rollback
from pipeline.governance.runs import (
    PROMOTION_TYPE,
    BadArgument,
    GovernanceError,
    RollbackInfo,
    RunInfo,
    list_rollbacks,
    list_runs,
    pipeline_context,
    timestamp,
    trainer_logs,
    with_blessing_metric,
)
from pipeline.metadata import artifact_files
from pipeline.metadata import store as metadata_store

# ML Metadata's ids are 64-bit signed integers; a larger number makes its client raise ValueError.
MAX_ID = 2**63 - 1
# The shape of `runs --format json` and `lineage --format json` (docs/runs-lineage-reports.md), their
# top-level "format_version": 2 since the run record's config, task_files, input_files and spans are JSON
# values, not JSON text inside a string (1, unmarked, before).
JSON_FORMAT_VERSION = 2


# ------------------------------------------------------------------------------------- argument types
# Each raises argparse.ArgumentTypeError with what was expected; argparse adds the argument's name.


def positive_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def port_number(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 (any free port) to 65535, got {text!r}")
    return int(text)


def version_or_id(text: str) -> str:
    """A serving version (a directory named by a Unix time) or an ML Metadata artifact id."""
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= MAX_ID:
        raise argparse.ArgumentTypeError(
            f"expected a serving version or an artifact id (a whole number from 1 to {MAX_ID}), got {text!r}"
        )
    return str(int(text))


def model_reference(text: str) -> str:
    if text == "serving":
        return text
    try:
        return version_or_id(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected `serving`, a serving version or an artifact id (a whole number from 1 to {MAX_ID}), "
            f"got {text!r}"
        ) from None


def run_reference(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a run name (as `pipeline runs` shows it), a run id or `latest`")
    return text


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a name, got an empty one")
    return text


def store_file(text: str) -> str:
    """An existing SQLite ML Metadata store: reading never creates one, nor turns another file into one."""
    try:
        metadata_store.check_sqlite_store(text)
    except (metadata_store.StoreMissing, metadata_store.NotAStore) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def existing_dir(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no directory {text}" if not os.path.exists(text) else f"{text} is a file")
    return text


def serving_target(text: str) -> str:
    """A serving directory to publish into: a directory, or a path where one can be created."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a serving directory")
    return text


def output_file(text: str) -> str:
    """A file to write: its directory must exist (the command creates no directories)."""
    directory = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file name")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"cannot write {text}: no directory {directory}")
    return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with its error on one line, the usage left to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _yes_no(value) -> str:
    return {True: "yes", False: "no", None: "-"}[value]


def _who(record: dict) -> str:
    if not record:
        return "(not recorded)"
    commit = (record.get("git_commit") or "no git")[:12]
    dirty = {1: " (dirty)", 0: "", -1: ""}.get(record.get("git_dirty"), "")
    return f"{record.get('user')}@{record.get('host')}, runner {record.get('runner')}, commit {commit}{dirty}"


def format_runs(runs: list[RunInfo], rollbacks: list[RollbackInfo], promotions: list[RollbackInfo] = ()) -> str:
    # Newest first by MLMD's execution ids (pipeline/governance/runs.py), not by the clock.
    entries = [(r.first_execution_id, "run", r) for r in runs] + [
        (r.execution.id, "rollback", r) for r in rollbacks
    ] + [(p.execution.id, "promotion", p) for p in promotions]
    lines = []
    for _, kind, item in sorted(entries, key=lambda e: e[0], reverse=True):
        if kind == "run":
            pushed = item.pushed_version or "no"
            metric = ""
            if item.blessing_metric:
                name, value = item.blessing_metric
                metric = f"{name} {'-' if value is None else format(value, '.4f')}  "
            lines.append(
                f"run {item.name}  {item.status}  {item.seconds:.1f}s  {metric}"
                f"blessed: {_yes_no(item.blessed)}  pushed: {pushed}"
            )
            lines.append(f"  by {_who(item.record)}")
            for c in item.components:
                lines.append(f"    {c.node_id:<32} {c.state:<9} {c.seconds:7.1f}s")
        else:
            forced = " (forced)" if item.prop("forced") else ""
            reason = f", reason: {item.prop('reason')}" if item.prop("reason") else ""
            where = f" in {os.path.dirname(item.pushed.uri)}" if kind == "promotion" and item.pushed else ""
            lines.append(
                f"{kind} {timestamp(item.execution.create_time_since_epoch)}  {'to ' if kind == 'rollback' else ''}model "
                f"{item.model_id} as version {item.prop('to_version')}{where} (was {item.prop('from_version') or '-'})"
                f"{forced}  by {item.prop('user')}@{item.prop('host')}{reason}"
            )
    return "\n".join(lines) if lines else "no runs recorded"


def format_lineage(story: dict) -> str:
    record = story["record"]
    lines = []
    if story["serving_version"]:
        live = " (live now)" if story["live"] else ""
        lines.append(f"Serving version {story['serving_version']}{live}")
    model = story["model"]
    lines.append(f"Model: artifact {model['id']}, trained {model['created']} in run {story['run']}")
    lines.append(f"  {model['uri']}")
    lines.append(f"Run by {_who(record)}")
    if record:
        for name in ("transform_module", "trainer_module"):
            if f"{name}_sha256" in record:
                lines.append(f"  {name + '.py':<22} sha256 {record[name + '_sha256']}")
        task_files = record.get("task_files") or {}
        if task_files:
            lines.append(f"  task {record.get('task')}:")
        for name, digest in sorted(task_files.items()):
            lines.append(f"    {name:<20} sha256 {digest}")
        lines.append(f"  {'requirements.lock':<22} sha256 {record.get('lock_sha256')}")
        lines.append(f"  {'schema':<22} sha256 {record.get('schema_sha256')}")
    lines.append("Data:")
    for examples in story["examples"]:
        props = examples["properties"]
        lines.append(
            f"  Examples artifact {examples['id']} (span {props.get('span', '?')}) from {examples['producer']}"
        )
        if "input_fingerprint" in props:
            lines.append(f"    input fingerprint: {props['input_fingerprint']}")
    for name, info in (record.get("input_files") or {}).items():
        lines.append(f"  input file {name}: sha256 {info['sha256']}, {info['bytes']:,} bytes")
    lines.append("Chain (producer -> artifact):")
    graph = story["graph"]
    for artifact in sorted(graph["artifacts"].values(), key=lambda a: a["id"]):
        lines.append(f"  {artifact['producer'] or '(input)':<32} {artifact['type']:<20} #{artifact['id']}  {artifact['uri']}")
    if story["metrics"]:
        shown = ", ".join(
            f"{k} {v:g}" if float(v).is_integer() else f"{k} {v:.4f}" for k, v in sorted(story["metrics"].items())
        )
        lines.append(f"Eval metrics (overall): {shown}")
    lines.append(f"Blessed: {_yes_no(story['blessed'])}")
    for push in story["pushes"]:
        lines.append(f"Pushed as version {push['version']} by {push['by']} at {push['at']}: {push['destination']}")
    for back in story["rollbacks"]:
        reason = f" ({back['reason']})" if back["reason"] else ""
        lines.append(
            f"Rolled back to as version {back['version']} by {back['user']}@{back['host']} "
            f"at {back['at']}{reason}"
        )
    return "\n".join(lines)


def _config(args) -> configs.PipelineConfig:
    overrides = {
        name: getattr(args, name)
        for name in ("pipeline_name", "metadata_path", "serving_model_dir")
        if getattr(args, name, None)
    }
    config = configs.load_config(**overrides)
    if getattr(args, "metadata_path", None) and config.metadata_mysql_host:
        raise configs.ConfigError(
            "--metadata-path names an SQLite store, but ML Metadata is configured on MySQL "
            f"({config.metadata_mysql_host}, from {configs.ENV_PREFIX}METADATA_MYSQL_*): give one or the other"
        )
    if getattr(args, "production", False):
        # --production: the commands act on the production serving directory instead of the Pusher's.
        if args.serving_model_dir:
            raise configs.ConfigError("give either --production or --serving-model-dir, not both")
        config = configs.load_config(**overrides, serving_model_dir=config.production_model_dir)
    return config


def open_store(config: configs.PipelineConfig, readonly: bool = False):
    """The configured store, or a one-line error: a path that is not a store is refused before ML Metadata
    opens it (it would write its tables into it); anything else ML Metadata refuses is said in one line."""
    try:
        return metadata_store.open_store(config, readonly=readonly)
    except metadata_store.NotAStore as error:
        raise BadArgument(str(error)) from None
    except RuntimeError as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GovernanceError(f"cannot open the ML Metadata store {config.metadata_path}: {first_line}") from error


def check_writable(path: str) -> None:
    """Stop before any work, with one line, when `path` cannot be written (a directory that takes no
    files, such as /proc, passes the parser's check); leaves the file as it was, or absent."""
    try:
        if os.path.exists(path):
            with open(path, "a", encoding="utf-8"):
                pass
        else:
            with open(path, "x", encoding="utf-8"):
                pass
            os.remove(path)
    except OSError as error:
        raise BadArgument(f"cannot write {path}: {error.strerror or error}") from None


def check_address(host: str | None, port: int | None) -> None:
    """Stop with one line before TensorBoard starts when it could not serve: a host that does not resolve
    or is not this machine's (exit 2), a port already taken (exit 1). TensorBoard's own error for these is
    a block of text, printed twice."""
    shown = host or "localhost"
    try:
        addresses = socket.getaddrinfo(shown, port or 0, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BadArgument(f"cannot serve on host {shown}: {error.strerror}") from None
    unusable = []
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TensorBoard's server binds
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise GovernanceError(f"cannot serve on port {port} of {shown}: it is already in use") from None
                unusable.append(error)
    if host and len(unusable) == len(addresses):
        raise BadArgument(f"cannot serve on host {host}: {unusable[0].strerror}")


def cmd_runs(args) -> int:
    config = _config(args)
    store = open_store(config)
    runs = [with_blessing_metric(run, config) for run in list_runs(store, config.pipeline_name)[: args.limit]]
    rollbacks = list_rollbacks(store)
    promotions = list_rollbacks(store, PROMOTION_TYPE)
    if args.format == "json":
        print(json.dumps(
            {
                "format_version": JSON_FORMAT_VERSION,
                "runs": [r.as_dict() for r in runs],
                **{
                    key: [
                        {"execution_id": r.execution.id, "model_id": r.model_id,
                         "destination": r.pushed.uri if r.pushed else None,
                         **{k: r.prop(k) for k in ("user", "host", "reason", "from_version", "to_version", "forced")}}
                        for r in found
                    ]
                    for key, found in (("rollbacks", rollbacks), ("promotions", promotions))
                },
            },
            indent=2, default=str,
        ))
    else:
        print(format_runs(runs, rollbacks, promotions))
    return 0


def cmd_lineage(args) -> int:
    if args.output:
        check_writable(args.output)
    config = _config(args)
    store = open_store(config)
    pipeline_context(store, config.pipeline_name)
    story = model_lineage(store, config.serving_model_dir, args.model)
    if args.format == "json":
        text = json.dumps({"format_version": JSON_FORMAT_VERSION, **story}, indent=2, default=str)
    elif args.format == "dot":
        text = lineage_dot(story)
    else:
        text = format_lineage(story)
    if args.output and args.format == "dot" and args.output.endswith((".svg", ".png")):
        if not render_dot(text, args.output, args.output.rsplit(".", 1)[-1]):
            dot_path = args.output.rsplit(".", 1)[0] + ".dot"
            with open(dot_path, "w") as f:
                f.write(text)
            print(f"Graphviz (dot) is not installed: wrote the DOT text to {dot_path}", file=sys.stderr)
            return 0
        print(f"wrote {args.output}")
    elif args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def cmd_rollback(args) -> int:
    config = _config(args)
    store = open_store(config)
    pipeline_context(store, config.pipeline_name)
    done = rollback(store, config.serving_model_dir, args.version, args.force, args.reason)
    print(
        f"Serving model {done['model_id']} as version {done['version']} (was {done['previous'] or 'nothing'}): "
        f"{done['destination']}"
    )
    return 0


def cmd_blessing(args) -> int:
    summary_file = args.summary_file or os.environ.get("GITHUB_STEP_SUMMARY")
    for path in (summary_file, os.environ.get("GITHUB_OUTPUT")):
        if path:
            check_writable(path)
    config = _config(args)
    found = blessing.verdict(open_store(config), config, args.run)
    text = blessing.markdown(found)
    print(text, end="")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    if os.environ.get("GITHUB_OUTPUT"):
        # The step's outputs: which run was judged, so that a later job promotes exactly that run.
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            f.write(f"run={found.run}\nblessed={str(bool(found.blessed)).lower()}\n")
    if not found.blessed:
        state = "no model was evaluated" if found.blessed is None else "the model was not blessed"
        print(f"error: run {found.run}: {state}: {found.reason.splitlines()[0]}", file=sys.stderr)
    return found.exit_status


def cmd_promote(args) -> int:
    config = _config(args)
    done = promote(open_store(config), config, args.run, args.to, args.reason)
    if done["promoted"]:
        print(
            f"Promoted model {done['model_id']} of run {done['run']} as version {done['version']} "
            f"(was {done['previous'] or 'nothing'}): {done['destination']}"
        )
    else:
        print(f"Model {done['model_id']} of run {done['run']} already serves as {done['destination']}: "
              "nothing promoted")
    return 0


def cmd_report(args) -> int:
    if args.output:
        check_writable(args.output)
    config = _config(args)
    store = open_store(config)
    output = report.write_report(store, config, args.run, args.output)
    print(f"wrote {output}")
    return 0


def cmd_tensorboard(args) -> int:
    check_address(args.host, args.port)
    if args.logdir:
        log_dir = args.logdir
        print(f"TensorBoard on {log_dir}", flush=True)
    else:
        config = _config(args)
        run, log_dir = trainer_logs(open_store(config), config.pipeline_name, args.run)
        print(f"TensorBoard on the Trainer's logs of run {run.name}: {log_dir}", flush=True)
    # TensorBoard's own main, through a module that lets it start with the locked setuptools.
    command = [sys.executable, "-m", "pipeline.governance.tensorboard_server", "--logdir", log_dir]
    if args.port is not None:
        command += ["--port", str(args.port)]
    if args.host:
        command += ["--host", args.host]
    os.execv(sys.executable, command)  # TensorBoard in this process's place: Ctrl+C stops it.
    return 0


def cmd_plan(args) -> int:
    # Here, not at the top: the plan compiles the pipeline, which loads TFX and TFMA, and no other command does.
    from pipeline.governance import plan

    config = _config(args)
    try:
        store = open_store(config, readonly=True)
    except metadata_store.StoreMissing:
        store = None  # Nothing has run: everything will.
    plans = plan.plan(config, store)
    if args.format == "json":
        print(json.dumps({"format_version": JSON_FORMAT_VERSION, "pipeline": config.pipeline_name,
                          "nodes": [dataclasses.asdict(p) for p in plans]}, indent=2))
    else:
        print(plan.format_plan(config, plans))
    return 0


def cmd_env(args) -> int:
    # The tfx CLI loads TensorFlow before any of our code runs: only its shell's environment quiets it.
    print(logs.shell_exports())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="pipeline",
        description="Runs, lineage, rollback and reports from the pipeline's ML Metadata store.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--metadata-path", type=store_file,
                        help="SQLite ML Metadata store (default: from configuration)")
    common.add_argument("--serving-model-dir", type=existing_dir,
                        help="serving directory (default: from configuration)")
    common.add_argument("--pipeline-name", type=non_empty, help="pipeline name (default: from configuration)")
    sub = parser.add_subparsers(dest="command", required=True)

    runs = sub.add_parser("runs", parents=[common], help="recent runs with status and per-component times",
                          description="Recent runs, newest first, and rollbacks between them.")
    runs.add_argument("--limit", type=positive_int, default=10, help="how many runs to show (default 10)")
    runs.add_argument("--format", choices=["text", "json"], default="text")
    runs.set_defaults(func=cmd_runs)

    lineage = sub.add_parser(
        "lineage", parents=[common], help="where a model came from",
        description="The chain from input files through training to blessing and push, with the "
                    "recorded code hashes, commit, user and metrics.",
    )
    lineage.add_argument("model", type=model_reference,
                         help="`serving` (what is live now), a serving version, or an artifact id")
    lineage.add_argument("--format", choices=["text", "json", "dot"], default="text")
    lineage.add_argument("--output", "-o", type=output_file,
                         help="write to this file; with --format dot, a .svg or .png is rendered by Graphviz "
                              "when installed")
    lineage.add_argument("--production", action="store_true",
                         help="`serving` means what is live in the production serving directory")
    lineage.set_defaults(func=cmd_lineage)

    rollback = sub.add_parser(
        "rollback", parents=[common], help="serve an earlier blessed model again",
        description="Copy an earlier blessed model into a new serving version (atomically) and record "
                    "the rollback in ML Metadata.",
    )
    rollback.add_argument("version", nargs="?", type=version_or_id,
                          help="serving version or model artifact id (default: the newest blessed model not "
                               "serving now)")
    rollback.add_argument("--force", action="store_true", help="serve a model that was never blessed")
    rollback.add_argument("--reason", default="", help="why, recorded with the rollback")
    rollback.add_argument("--production", action="store_true",
                          help="roll back the production serving directory (production_model_dir), where "
                               "`promote` publishes, instead of the Pusher's")
    rollback.set_defaults(func=cmd_rollback)

    report_parser = sub.add_parser(
        "report", parents=[common], help="one self-contained HTML report of a run",
        description="Statistics, anomalies, schema, eval metrics per slice, blessing and lineage of a "
                    "run, in one HTML file that opens without network access.",
    )
    report_parser.add_argument("run", type=run_reference, help="run name (as `runs` shows), run context id, or `latest`")
    report_parser.add_argument("--output", "-o", type=output_file,
                        help="HTML file to write (default: report-<run>.html in reports_dir, "
                             "<output_root>/reports/<pipeline>/)")
    report_parser.set_defaults(func=cmd_report)

    blessing_parser = sub.add_parser(
        "blessing", parents=[common], help="whether a run's model was blessed, as Markdown; exit 3 when not",
        description="The Evaluator's verdict on a run's model: each threshold against the model's metrics "
                    "(and the blessed baseline's), and why it was not blessed, as Markdown for a CI job's "
                    "summary. Exits 0 when blessed and 3 when not blessed or no model was evaluated. In a "
                    "GitHub Actions step it also sets the step's outputs `run` and `blessed` ($GITHUB_OUTPUT).",
    )
    blessing_parser.add_argument("run", nargs="?", default="latest", type=run_reference,
                          help="run name (as `runs` shows), run context id, or `latest` (default)")
    blessing_parser.add_argument("--summary-file", type=output_file, help="also append the Markdown to this file (default: "
                                                 "$GITHUB_STEP_SUMMARY when set, as in a GitHub Actions job)")
    blessing_parser.set_defaults(func=cmd_blessing)

    promote_parser = sub.add_parser(
        "promote", parents=[common], help="publish a run's blessed model for production",
        description="Copy the model of a run that blessed it into the production serving directory "
                    "(production_model_dir, PIPELINE_PRODUCTION_MODEL_DIR) as a new version, atomically, "
                    "and record the promotion in ML Metadata. A model its run did not bless is refused; "
                    "a model already serving there is not copied again.",
    )
    promote_parser.add_argument("run", nargs="?", default="latest", type=run_reference,
                                help="run name (as `runs` shows), run context id, or `latest` (default)")
    promote_parser.add_argument("--to", type=serving_target, help="serving directory to publish into (default: production_model_dir)")
    promote_parser.add_argument("--reason", default="", help="why, recorded with the promotion")
    promote_parser.set_defaults(func=cmd_promote)

    tensorboard = sub.add_parser(
        "tensorboard", parents=[common], help="TensorBoard on the Trainer's logs of a run",
        description="Serve the TensorBoard logs the Trainer wrote into its model_run output (loss, eval loss "
                    "and the task's metrics per epoch, learning rate) until Ctrl+C.",
    )
    tensorboard.add_argument("run", nargs="?", default="latest", type=run_reference,
                             help="run name (as `runs` shows), run context id, or `latest` (the default: the "
                                  "newest run with a trained model)")
    tensorboard.add_argument("--logdir", type=existing_dir,
                             help="serve this folder instead of a run's (e.g. .../Trainer/model_run: every run)")
    tensorboard.add_argument("--port", type=port_number,
                             help="port to serve on (default: TensorBoard's, 6006 or the next free one; 0: any)")
    tensorboard.add_argument("--host", type=non_empty, help="address to serve on (default: localhost only)")
    tensorboard.set_defaults(func=cmd_tensorboard)

    plan_parser = sub.add_parser(
        "plan", parents=[common], help="what the next run would serve from the cache or run, and why",
        description="For the next run with the code, data, schema and settings as they are now: each component "
                    "served from the cache or run, and why (which input, setting or module changed since its "
                    "last execution), from the cache keys TFX's launcher computes; runs nothing, writes nothing.",
    )
    plan_parser.add_argument("--format", choices=["text", "json"], default="text")
    plan_parser.set_defaults(func=cmd_plan)

    env = sub.add_parser(
        "env", help="the shell settings that quiet TensorFlow's start-up lines: eval \"$(pipeline env)\"",
        description="Print an `export` line with what every run of the pipeline sets for itself (TensorFlow's "
                    "C++ log level, the Google clients' import warnings, from PIPELINE_LOG_LEVEL), for commands "
                    "that load TensorFlow before any of the project's code runs, such as the tfx CLI.",
    )
    env.set_defaults(func=cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        logs.configure(configs.environ_value("LOG_LEVEL"))  # Answers, errors and actionable warnings only.
        status = args.func(args)
        sys.stdout.flush()  # Here, not at exit, so that a reader that stopped is handled below.
        return status
    except BrokenPipeError:
        # The reader stopped (`| head`): say nothing more, and keep Python from failing again when it
        # flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BadArgument as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (GovernanceError, configs.ConfigError, OSError, LookupError, artifact_files.UnreadableArtifact) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
