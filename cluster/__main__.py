"""`python -m cluster up|down|status|env|fetch flink|spark`, and `python -m cluster lock`.

`up` starts the engine's processes and prints the settings that point the pipeline at them; `env` prints
those settings again as shell exports (`eval "$(python -m cluster env flink)"`); `status` shows each
process and the engine's own view (exit 3 when a process is not running); `down` stops every process by
its id; `fetch` only downloads and checks the pinned files; `lock` writes artifacts.lock anew.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from cluster import artifacts
from cluster.flink import FlinkCluster
from cluster.spark import SparkCluster

ENGINES = {"flink": FlinkCluster, "spark": SparkCluster}


def _cluster(args: argparse.Namespace):
    ports = {name: value for name, value in vars(args).items() if name.endswith("_port") and value}
    if args.command == "up":
        sizes = {"taskmanager_memory": args.taskmanager_memory} if args.taskmanager_memory else {}
        if sizes and args.engine != "flink":
            raise RuntimeError("--taskmanager-memory is Flink's")
        return ENGINES[args.engine](args.state_dir, **ports, **sizes)
    return ENGINES[args.engine].at(args.state_dir, **ports)  # the ports `up` started it on


def _exports(settings: dict[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in settings.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lock", help="resolve the job servers and distributions into cluster/artifacts.lock")
    for name in ("up", "down", "status", "env", "fetch"):
        command = commands.add_parser(name)
        command.add_argument("engine", choices=sorted(ENGINES))
        command.add_argument("--state-dir", help="where its configuration, logs and process ids go "
                                                  "(default $CLUSTER_STATE_ROOT/<engine>, else "
                                                  "tfx_output/cluster/<engine>)")
        command.add_argument("--job-port", type=int, help="the Beam job server's port (8099 Flink, 8199 Spark); "
                             "status, env and down use the ports `up` was given")
        command.add_argument("--rest-port", type=int, help="Flink: the JobManager's REST port (8081)")
        command.add_argument("--rpc-port", type=int, help="Flink: the JobManager's RPC port (6123)")
        command.add_argument("--master-port", type=int, help="Spark: the master's port (7077)")
        command.add_argument("--ui-port", type=int, help="Spark: the master's web UI port (8080)")
        command.add_argument("--taskmanager-memory", help="Flink: each TaskManager's process size (3g; 10M rows "
                             "need more, docs/distributed-engines.md)")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            artifacts.write_lock()
            print(f"wrote {artifacts.LOCK_FILE}")
            return 0
        if args.command == "fetch":
            for part in (args.engine, f"{args.engine}-job-server"):
                print(f"{part}: {len(artifacts.fetch_part(part))} files checked in {artifacts.cache_dir()}")
            return 0
        cluster = _cluster(args)
        if args.command == "up":
            cluster.up()
            print(json.dumps(cluster.status(), indent=1))
            print(f"\n# The pipeline's Beam work runs on this {args.engine} cluster with these settings:")
            print(_exports(cluster.settings()))
        elif args.command == "down":
            stopped = cluster.down()
            print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "status":
            status = cluster.status()
            print(json.dumps(status, indent=1))
            return 0 if status["processes"] and all(p["alive"] for p in status["processes"].values()) else 3
        else:
            print(_exports(cluster.settings()))
    except (artifacts.ArtifactError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
