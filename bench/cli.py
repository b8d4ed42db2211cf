"""How long each `pipeline` command takes to answer, this checkout beside another one (e.g. before a change).

    git archive 36afb15 | tar -x -C /tmp/cli-before        # the other checkout: any commit's files
    .venv/bin/python -m bench.cli --before /tmp/cli-before --reps 5
    .venv/bin/python -m bench.cli --output-root /path/to/tfx_output --before /tmp/cli-before --tag 33

Each command runs as a user starts it (`python -m pipeline.governance.cli ...`, a new process each time,
the checkout's own code first on sys.path) on a copy of a store of real runs: the configuration's
(`make run` first) or `--output-root`'s. The copy (store file and serving directory) takes the writes of
`rollback` and `promote`; the artifacts are read where the runs wrote them. The two checkouts alternate
within each repetition; the median and minimum of each, and their ratio, go to bench/results/cli[-tag].json
and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import configs  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def commands(scratch: Path) -> dict[str, list[str]]:
    """Each measured command, on the scratch copy; what it shows is read from the store and the artifacts."""
    common = ["--metadata-path", str(scratch / "metadata.db"), "--serving-model-dir", str(scratch / "serving")]
    return {
        "runs": ["runs", *common],
        "lineage serving": ["lineage", "serving", *common],
        "blessing latest": ["blessing", "latest", *common],
        "report latest": ["report", "latest", "-o", str(scratch / "run.html"), *common],
        "rollback": ["rollback", "--reason", "bench", *common],
        "promote latest": ["promote", "latest", "--to", str(scratch / "production"), *common],
    }


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def time_command(checkout: Path, argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from start to exit of one call, and its exit status."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline.governance.cli", *argv], cwd=checkout,
                            env={**env, "PYTHONPATH": str(checkout)}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 3):  # 3: `blessing` of a run whose model was not blessed
        raise RuntimeError(f"{checkout}: pipeline {' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
    return seconds, result.returncode


def measure(output_root: Path, before: Path, reps: int, work_dir: Path) -> dict:
    config = configs.load_config(output_root=str(output_root))
    if not os.path.isfile(config.metadata_path):
        raise SystemExit(f"error: no store at {config.metadata_path}: run the pipeline first (make run)")
    scratch = work_dir / "store"
    scratch.mkdir(parents=True)
    shutil.copy2(config.metadata_path, scratch / "metadata.db")
    shutil.copytree(config.serving_model_dir, scratch / "serving")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    checkouts = {"ours": PROJECT_ROOT, "before": before}
    times: dict[str, dict[str, list[float]]] = {name: {side: [] for side in checkouts} for name in commands(scratch)}
    statuses: dict[str, dict[str, set[int]]] = {name: {side: set() for side in checkouts} for name in times}
    loads = []
    for rep in range(reps):
        loads.append(_load())
        order = list(checkouts) if rep % 2 == 0 else list(reversed(checkouts))
        for name, argv in commands(scratch).items():
            for side in order:
                seconds, status = time_command(checkouts[side], argv, env)
                times[name][side].append(round(seconds, 3))
                statuses[name][side].add(status)
    rows = {}
    for name, by_side in times.items():
        rows[name] = {
            **{side: {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "all": values,
                      "exit": sorted(statuses[name][side])}
               for side, values in by_side.items()},
            "ratio_median": round(statistics.median(by_side["ours"]) / statistics.median(by_side["before"]), 3),
        }
    return {"output_root": str(output_root), "before": str(before), "reps": reps, "loads": loads, "commands": rows}


def table(result: dict) -> str:
    lines = [
        "| command | before: median (min) | ours: median (min) | ours / before |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in result["commands"].items():
        lines.append(
            f"| `pipeline {name}` | {row['before']['median']:.2f} s ({row['before']['min']:.2f} s) | "
            f"{row['ours']['median']:.2f} s ({row['ours']['min']:.2f} s) | {row['ratio_median']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (its pipeline/ package)")
    parser.add_argument("--output-root", type=Path, default=Path(configs.load_config().output_root),
                        help="a pipeline output root with runs in its store (default: the configuration's)")
    parser.add_argument("--reps", type=int, default=5, help="calls of each command in each checkout")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    args = parser.parse_args(argv)
    if args.reps < 1 or not (args.before / "pipeline" / "governance" / "cli.py").is_file():
        parser.error("--reps must be at least 1 and --before a checkout of this project")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="cli-bench-"))
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = {"kind": "cli", "started_at": started_at, "cpus": os.cpu_count(),
              **measure(args.output_root, args.before.resolve(), args.reps, work_dir), "load_after": _load()}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"cli{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
