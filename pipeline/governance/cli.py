"""`pipeline`: ask ML Metadata what ran, where the serving model came from, roll back, report.

    pipeline runs                      recent runs: status, per-component time, cached or not
    pipeline lineage serving           the chain behind what is live now (--format text|json|dot)
    pipeline rollback [VERSION]        serve an earlier blessed model again, recorded in MLMD
    pipeline report latest             one self-contained HTML file for a run

Paths default to the pipeline's configuration (PIPELINE_* variables apply), so the commands read the
same store and serving directory as `make run`; --metadata-path and --serving-model-dir point them
at the store of any runner.
"""

from __future__ import annotations

import argparse
import json
import sys

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline import configs, logs
from pipeline.governance.lineage import lineage_dot, model_lineage, render_dot
from pipeline.governance.rollback import rollback
from pipeline.governance.runs import (
    GovernanceError,
    RollbackInfo,
    RunInfo,
    list_rollbacks,
    list_runs,
    pipeline_context,
    timestamp,
)
from pipeline.metadata.store import open_store


def _yes_no(value) -> str:
    return {True: "yes", False: "no", None: "-"}[value]


def _who(record: dict) -> str:
    if not record:
        return "(not recorded)"
    commit = (record.get("git_commit") or "no git")[:12]
    dirty = {1: " (dirty)", 0: "", -1: ""}.get(record.get("git_dirty"), "")
    return f"{record.get('user')}@{record.get('host')}, runner {record.get('runner')}, commit {commit}{dirty}"


def format_runs(runs: list[RunInfo], rollbacks: list[RollbackInfo]) -> str:
    entries = [(r.started_ms, "run", r) for r in runs] + [
        (r.execution.create_time_since_epoch, "rollback", r) for r in rollbacks
    ]
    lines = []
    for _, kind, item in sorted(entries, key=lambda e: e[0], reverse=True):
        if kind == "run":
            pushed = item.pushed_version or "no"
            lines.append(
                f"run {item.name}  {item.status}  {item.seconds:.1f}s  "
                f"blessed: {_yes_no(item.blessed)}  pushed: {pushed}"
            )
            lines.append(f"  by {_who(item.record)}")
            for c in item.components:
                lines.append(f"    {c.node_id:<32} {c.state:<9} {c.seconds:7.1f}s")
        else:
            forced = " (forced)" if item.prop("forced") else ""
            reason = f", reason: {item.prop('reason')}" if item.prop("reason") else ""
            lines.append(
                f"rollback {timestamp(item.execution.create_time_since_epoch)}  to model "
                f"{item.model_id} as version {item.prop('to_version')} (was {item.prop('from_version') or '-'})"
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
        task_files = json.loads(record.get("task_files") or "{}")
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
    for name, info in json.loads(record.get("input_files") or "{}").items():
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
    return configs.load_config(**overrides)


def cmd_runs(args) -> int:
    config = _config(args)
    store = open_store(config)
    runs = list_runs(store, config.pipeline_name)[: args.limit]
    rollbacks = list_rollbacks(store)
    if args.format == "json":
        print(json.dumps(
            {
                "runs": [r.as_dict() for r in runs],
                "rollbacks": [
                    {"execution_id": r.execution.id, "model_id": r.model_id,
                     **{k: r.prop(k) for k in ("user", "host", "reason", "from_version", "to_version", "forced")}}
                    for r in rollbacks
                ],
            },
            indent=2, default=str,
        ))
    else:
        print(format_runs(runs, rollbacks))
    return 0


def cmd_lineage(args) -> int:
    config = _config(args)
    store = open_store(config)
    pipeline_context(store, config.pipeline_name)
    story = model_lineage(store, config.serving_model_dir, args.model)
    if args.format == "json":
        text = json.dumps(story, indent=2, default=str)
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


def cmd_report(args) -> int:
    from pipeline.governance import report  # Imports TFDV and TFMA: slow, needed only here.

    config = _config(args)
    store = open_store(config)
    output = report.write_report(store, config, args.run, args.output)
    print(f"wrote {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Runs, lineage, rollback and reports from the pipeline's ML Metadata store.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--metadata-path", help="SQLite ML Metadata store (default: from configuration)")
    common.add_argument("--serving-model-dir", help="serving directory (default: from configuration)")
    common.add_argument("--pipeline-name", help="pipeline name (default: from configuration)")
    sub = parser.add_subparsers(dest="command", required=True)

    runs = sub.add_parser("runs", parents=[common], help="recent runs with status and per-component times",
                          description="Recent runs, newest first, and rollbacks between them.")
    runs.add_argument("--limit", type=int, default=10, help="how many runs to show (default 10)")
    runs.add_argument("--format", choices=["text", "json"], default="text")
    runs.set_defaults(func=cmd_runs)

    lineage = sub.add_parser(
        "lineage", parents=[common], help="where a model came from",
        description="The chain from input files through training to blessing and push, with the "
                    "recorded code hashes, commit, user and metrics.",
    )
    lineage.add_argument("model", help="`serving` (what is live now), a serving version, or an artifact id")
    lineage.add_argument("--format", choices=["text", "json", "dot"], default="text")
    lineage.add_argument("--output", "-o", help="write to this file; with --format dot, a .svg or .png "
                                                "is rendered by Graphviz when installed")
    lineage.set_defaults(func=cmd_lineage)

    rollback = sub.add_parser(
        "rollback", parents=[common], help="serve an earlier blessed model again",
        description="Copy an earlier blessed model into a new serving version (atomically) and record "
                    "the rollback in ML Metadata.",
    )
    rollback.add_argument("version", nargs="?", help="serving version or model artifact id "
                                                     "(default: the newest blessed model not serving now)")
    rollback.add_argument("--force", action="store_true", help="serve a model that was never blessed")
    rollback.add_argument("--reason", default="", help="why, recorded with the rollback")
    rollback.set_defaults(func=cmd_rollback)

    report = sub.add_parser(
        "report", parents=[common], help="one self-contained HTML report of a run",
        description="Statistics, anomalies, schema, eval metrics per slice, blessing and lineage of a "
                    "run, in one HTML file that opens without network access.",
    )
    report.add_argument("run", help="run name (as `runs` shows), run context id, or `latest`")
    report.add_argument("--output", "-o", help="HTML file to write (default: report-<run>.html here)")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        logs.configure(configs.environ_value("LOG_LEVEL"))  # Answers, errors and actionable warnings only.
        return args.func(args)
    except (GovernanceError, configs.ConfigError, FileNotFoundError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
