"""The benchmark: our pipeline beside TFX's own Chicago taxi example, and our pipeline at scale.

    .venv/bin/python -m bench.run compare --reps 3          # same data, alternating, ratios ours/theirs
    .venv/bin/python -m bench.run scale --sizes 150k,1.5M   # generated inputs, rows/s, memory, integrity
    .venv/bin/python -m bench.run scale --sizes 1.5M,10M --engines auto,flink   # beside a local Flink cluster

`make bench` runs both (compare, then scale at 150k and 1.5M). Results go to bench/results/<kind>.json
(machine-readable) and a Markdown table is printed for the README. Not part of the test suite: a run
takes minutes to hours and its absolute times depend on the machine and its load; the ratios taken in one
invocation are what to compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pipeline  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline import configs  # noqa: E402
from pipeline.metadata import artifact_files  # noqa: E402
from bench import generate_data, measure, pipelines  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATA_DIR = Path(__file__).resolve().parent / "data"
# Components whose cost grows with the data, for rows/s.
ROW_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform")
# The three runs of one pipeline on a fresh store: everything executes; a re-run with nothing changed
# (the Evaluator runs again, now against the blessed baseline, and the Pusher pushes again); and a third
# run, served from the cache throughout.
PHASES = ("full", "rerun", "cached")


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_once(run: pipelines.PipelineRun, log_path: Path, timeout: float, also: list[int] = ()) -> dict:
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_before = _load()
    process = measure.run_process(run.args, run.env, log_path, timeout, run.cwd, also)
    if process.returncode != 0:
        raise RuntimeError(
            f"{run.name} failed (exit {process.returncode}); log {log_path}:\n{process.log_tail}"
        )
    return {
        "started_at": started_at,
        "load_before": load_before,
        "seconds": round(process.seconds, 2),
        "cpu_seconds": round(process.cpu_seconds, 2),
        "peak_rss_mb": round(process.peak_rss_bytes / 2**20),
        "peak_during": measure.component_at(run.metadata_path, run.pipeline_name, process.peak_at),
        "components": measure.component_seconds(run.metadata_path, run.pipeline_name),
    }


def _summary(values: list[float]) -> dict:
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2)}


def _contestant(name: str, data_dir: Path, work_dir: Path, small: bool, before: Path | None):
    extra_env = pipelines.SMALL_RUN_ENV if small else None
    if name == "theirs":
        return pipelines.theirs(data_dir, work_dir)
    if name == "before":
        return pipelines.ours(data_dir, work_dir, extra_env, project_root=before, name="before")
    return pipelines.ours(data_dir, work_dir, extra_env)


def compare(
    data_dir: Path,
    reps: int,
    work_root: Path,
    timeout: float,
    other: str = "theirs",
    small: bool = False,
    before: Path | None = None,
    progress_file: str = "",
) -> dict:
    """Ours and `other` (TFX's example, or our pipeline from the checkout `before`), fresh stores, three
    runs each (full, rerun, cached); which goes first alternates per rep."""
    runs: dict[str, list[dict]] = {"ours": [], other: []}
    for rep in range(reps):
        order = ("ours", other) if rep % 2 == 0 else (other, "ours")
        for name in order:
            work_dir = work_root / f"{name}-{rep}"
            shutil.rmtree(work_dir, ignore_errors=True)
            run = _contestant(name, data_dir, work_dir, small, before)
            phases = {}
            for phase in PHASES:
                phases[phase] = run_once(run, work_root / "logs" / f"{name}-{rep}-{phase}.log", timeout)
                print(f"rep {rep} {name:<6} {phase:<6} {phases[phase]['seconds']:7.1f}s "
                      f"cpu {phases[phase]['cpu_seconds']:7.1f}s "
                      f"({phases[phase]['load_before']})", flush=True)
            runs[name].append(phases)
            shutil.rmtree(work_dir, ignore_errors=True)
            if progress_file:
                _write(progress_file, {"partial": True, "runs": runs})
    ratios = {}
    for phase in PHASES:
        ours = [rep[phase]["seconds"] for rep in runs["ours"]]
        theirs = [rep[phase]["seconds"] for rep in runs[other]]
        ours_cpu = [rep[phase]["cpu_seconds"] for rep in runs["ours"]]
        theirs_cpu = [rep[phase]["cpu_seconds"] for rep in runs[other]]
        ratios[phase] = {
            "ours": _summary(ours),
            "theirs": _summary(theirs),
            "ratio_min": round(min(ours) / min(theirs), 3),
            "ratio_median": round(statistics.median(ours) / statistics.median(theirs), 3),
            "cpu_ratio_median": round(statistics.median(ours_cpu) / statistics.median(theirs_cpu), 3),
        }
    components = {}
    common = [
        node for node in runs["ours"][0]["full"]["components"]
        if node in runs[other][0]["full"]["components"]
    ]
    for node in common:
        ours = [rep["full"]["components"][node]["seconds"] for rep in runs["ours"]]
        theirs = [rep["full"]["components"][node]["seconds"] for rep in runs[other]]
        components[node] = {
            "ours": _summary(ours),
            "theirs": _summary(theirs),
            "ratio_median": round(statistics.median(ours) / max(statistics.median(theirs), 1e-3), 3),
        }
    return {"data_dir": str(data_dir), "reps": reps, "other": other, "small": small,
            "before": str(before) if before else None, "ratios": ratios,
            "components_full_run": components, "runs": runs}


def scale(
    sizes: list[str],
    data_root: Path,
    work_root: Path,
    timeout: float,
    progress_file: str = "",
    before: Path | None = None,
    engines: tuple[str, ...] = ("auto",),
    scales: tuple[str, ...] = ("sample",),
) -> dict:
    """Our pipeline once per input size: times, rows/s, peak memory, row integrity, eval AUC; with
    `before`, that checkout's pipeline too, on the same input just after ours. Each training scale
    (PIPELINE_SCALE) beside the first runs the same input after it, on the default profile; `before` and
    the engines run at the first. Each engine beside `auto`
    (the default profile) runs the same input after it on a local cluster (cluster/) started once for the
    invocation; its processes count in the run's peak memory and CPU time, and each Beam component's time
    is set beside its job's own time in the engine."""
    clusters = {engine: _start_cluster(engine, work_root) for engine in engines if engine != "auto"}
    results = []
    try:
        for size in sizes:
            rows = generate_data.parse_rows(size)
            data_dir = data_root / size
            if not generate_data.is_current(data_dir, rows):
                print(f"generating {rows:,} rows into {data_dir}", flush=True)
                generate_data.generate(rows, data_dir)
            first, *others = scales
            scale_env = {"PIPELINE_SCALE": first}
            result = _scale_run(size, data_dir, work_root, timeout, "ours", env=scale_env) if "auto" in engines else {}
            for other in others if "auto" in engines else ():
                result[other] = _scale_run(size, data_dir, work_root, timeout, other, env={"PIPELINE_SCALE": other})
                if progress_file:
                    _write(progress_file, {"partial": True, "sizes": [*results, result]})
            if before is not None:
                result["before"] = _scale_run(size, data_dir, work_root, timeout, "before", before, env=scale_env)
                result["ratio_to_before"] = _ratios(result, result["before"])
            for engine, cluster in clusters.items():
                result[engine] = _scale_run(size, data_dir, work_root, timeout, engine, cluster=cluster, env=scale_env)
                if "seconds" in result:
                    result[f"ratio_{engine}_to_auto"] = _ratios(result[engine], result)
            results.append(result)
            if progress_file:
                _write(progress_file, {"partial": True, "before": str(before) if before else None, "sizes": results})
    finally:
        for cluster in clusters.values():
            cluster.down()
    return {"before": str(before) if before else None, "engines": list(engines), "scales": list(scales),
            "sizes": results}


def _start_cluster(engine: str, work_root: Path):
    from cluster.flink import FlinkCluster  # Only a benchmark of an engine starts one.
    from cluster.spark import SparkCluster

    # Flink's TaskManagers sized for 10M rows: with less task heap, Transform runs out of memory there.
    sizes = {"taskmanager_memory": os.environ.get("BENCH_FLINK_TASKMANAGER_MEMORY", "6g")} if engine == "flink" else {}
    cluster = {"flink": FlinkCluster, "spark": SparkCluster}[engine](work_root / f"cluster-{engine}", **sizes)
    cluster.up()
    return cluster


def _scale_run(size: str, data_dir: Path, work_root: Path, timeout: float, name: str,
               project_root: Path = pipelines.PROJECT_ROOT, cluster=None, env: dict | None = None) -> dict:
    work_dir = work_root / f"scale-{size}-{name}"
    shutil.rmtree(work_dir, ignore_errors=True)
    settings = {**(cluster.settings() if cluster else {}), **(env or {})}
    run = pipelines.ours(data_dir, work_dir, settings, project_root, name)
    jobs_before = cluster.job_ids() if cluster else set()
    also = [p.pid for p in cluster.processes() if p.alive()] if cluster else []
    result = run_once(run, work_root / "logs" / f"scale-{size}-{name}.log", timeout, also)
    if cluster:
        # Each job's own time in the engine, by the job's name (<pipeline>-<component>): the rest of the
        # component's time is translation, submission and the wait for workers.
        result["engine_jobs"] = {
            job["name"]: {"seconds": round(job["duration"] / 1000, 1), "state": job["state"],
                          "ran_on": len(job.get("taskmanagers") or job.get("workers") or [])}
            for job in cluster.jobs(since=jobs_before)
        }
    counts = measure.count_rows(str(data_dir), run.metadata_path, run.pipeline_name)
    result.update(size=size, rows=counts["csv_rows"], counts=counts)
    result["rows_per_second"] = {
        node: round(counts["csv_rows"] / result["components"][node]["seconds"])
        for node in ROW_COMPONENTS if node in result["components"]
    }
    eval_rows = counts["statistics_rows_per_split"].get("eval", 0)
    if "Evaluator" in result["components"] and eval_rows:
        result["rows_per_second"]["Evaluator (eval split)"] = round(
            eval_rows / result["components"]["Evaluator"]["seconds"]
        )
    result["seconds_per_million_rows"] = round(result["seconds"] / counts["csv_rows"] * 1e6, 1)
    result["to_pyarrow_read"] = round(result["seconds"] / max(counts["pyarrow_read_seconds"], 1e-3), 1)
    uris = measure.latest_outputs(run.metadata_path, run.pipeline_name)
    result["eval_metrics"] = _eval_metrics(uris)
    result["trainer"] = _training(uris)
    if result["trainer"]:
        result["rows_per_second"]["Trainer"] = round(result["trainer"]["rows"] / result["trainer"]["seconds"])
    csv_bytes = sum(path.stat().st_size for path in data_dir.glob("*.csv"))
    result["output_bytes"] = _bytes_under(Path(run.env["TAXI_OUTPUT_ROOT"]) / "pipelines")
    result["output_to_csv"] = round(result["output_bytes"] / max(csv_bytes, 1), 3)
    print(f"{size} {name}: {result['seconds']:.0f}s (cpu {result['cpu_seconds']:.0f}s), "
          f"peak {result['peak_rss_mb']} MB during {result['peak_during']}, rows intact: {counts['rows_intact']}, "
          f"{result['rows_per_second']} ({result['load_before']})", flush=True)
    shutil.rmtree(work_dir, ignore_errors=True)
    return result


def _ratios(ours: dict, before: dict) -> dict:
    """ours / before: end to end and per component."""
    ratios = {"end_to_end": round(ours["seconds"] / before["seconds"], 3)}
    for node, value in ours["components"].items():
        then = before["components"].get(node, {}).get("seconds", 0)
        if then >= 1:
            ratios[node] = round(value["seconds"] / then, 3)
    return ratios


def _training(uris: dict[str, str]) -> dict:
    """What the trainer module wrote to model_run/training.json: the rows trained on, the seconds it took."""
    path = Path(uris.get("model_run", "")) / "training.json"
    return json.loads(path.read_text()) if "model_run" in uris and path.is_file() else {}


def _bytes_under(root: Path) -> int:
    """Disk used by the files under root (the pipeline's outputs)."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def _eval_metrics(uris: dict[str, str]) -> dict:
    """The overall metrics of the newest run's evaluation (`uris`: its outputs, measure.latest_outputs)."""
    return artifact_files.overall_metrics(uris["evaluation"]) if "evaluation" in uris else {}


def _write_small_sample(directory: Path) -> None:
    """The test suite's sample: 1,500 rows drawn by tests/conftest.py's fixed seed."""
    import csv
    import random

    with open(pipelines.PROJECT_ROOT / "data" / "data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = random.Random(42).sample(rows, 1500)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def compare_table(result: dict) -> str:
    other = {"theirs": "TFX example", "before": "before"}[result["other"]]
    lines = [
        f"| run | ours min / median (s) | {other} min / median (s) | ratio min | ratio median "
        "| CPU-time ratio |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for phase, row in result["ratios"].items():
        cpu = f"{row['cpu_ratio_median']:.2f}" if "cpu_ratio_median" in row else "not measured"
        lines.append(
            f"| {phase} | {row['ours']['min']:.1f} / {row['ours']['median']:.1f} "
            f"| {row['theirs']['min']:.1f} / {row['theirs']['median']:.1f} "
            f"| {row['ratio_min']:.2f} | {row['ratio_median']:.2f} | {cpu} |"
        )
    for node, row in result["components_full_run"].items():
        lines.append(
            f"| {node} (full run) | {row['ours']['min']:.1f} / {row['ours']['median']:.1f} "
            f"| {row['theirs']['min']:.1f} / {row['theirs']['median']:.1f} | | {row['ratio_median']:.2f} | |"
        )
    return "\n".join(lines)


def scale_table(result: dict) -> str:
    lines = [
        "| rows | end to end (CPU) | per 1M rows | / pyarrow read | CsvExampleGen | StatisticsGen | Transform "
        "| Trainer | Evaluator | rows/s ExampleGen / StatisticsGen / Transform / Evaluator (eval split) "
        "| Trainer rows trained, rows/s | outputs / CSV | peak memory | rows intact | eval AUC |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    entries = []
    scales = result.get("scales") or ["sample"]
    for entry in result["sizes"]:
        if "seconds" in entry:
            entries.append((f" ({scales[0]})" if len(scales) > 1 else "", entry))
        for other in scales[1:]:
            if other in entry:
                entries.append((f" ({other})", entry[other]))
        if "before" in entry:
            entries.append((" (before)", entry["before"]))
        for engine in result.get("engines", ()):
            if engine in entry:
                entries.append((f" ({engine})", entry[engine]))
    for label, entry in entries:
        seconds = {node: value["seconds"] for node, value in entry["components"].items()}
        rate = entry["rows_per_second"]
        lines.append(
            f"| {entry['rows']:,}{label} | {entry['seconds']:.0f} s ({entry.get('cpu_seconds', 0):.0f} s) "
            f"| {entry['seconds_per_million_rows']:.0f} s | {entry['to_pyarrow_read']:.0f}x "
            + "".join(f"| {seconds.get(node, 0):.0f} s " for node in
                      ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator"))
            + f"| {' / '.join(f'{rate.get(node, 0):,}' for node in (*ROW_COMPONENTS, 'Evaluator (eval split)'))} "
            + (f"| {entry['trainer']['rows']:,}, {rate['Trainer']:,} " if entry.get("trainer") else "| | ")
            + (f"| {entry['output_to_csv']:.2f}x " if "output_to_csv" in entry else "| ")
            + f"| {entry['peak_rss_mb'] / 1024:.1f} GB"
            + (f" ({entry['peak_during']}) " if entry.get("peak_during") else " ")
            + f"| {'yes' if entry['counts']['rows_intact'] else 'NO'} "
            f"| {entry['eval_metrics'].get('auc', float('nan')):.4f} |"
        )
    return "\n".join(lines)


def _write(kind: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {
        "kind": kind,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_after": _load(),
        **result,
    }
    path = RESULTS_DIR / f"{kind}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comparing = sub.add_parser("compare", help="ours against TFX's example on the same data")
    comparing.add_argument("--data", type=Path, default=pipelines.PROJECT_ROOT / "data")
    comparing.add_argument("--reps", type=int, default=3)
    comparing.add_argument(
        "--before", type=Path, default=None,
        help="instead of TFX's example, compare with our pipeline in another checkout (e.g. before a change)",
    )
    comparing.add_argument(
        "--small", action="store_true",
        help="the test suite's runs: a 1,500-row sample and tests/conftest.py's small_run_env settings",
    )
    scaling = sub.add_parser("scale", help="ours on generated inputs of several sizes")
    scaling.add_argument("--sizes", default="150k,1.5M", help="comma-separated: 150k,1.5M,10M")
    scaling.add_argument(
        "--before", type=Path, default=None,
        help="also run our pipeline from another checkout (e.g. the commit before a change) at each size",
    )
    scaling.add_argument("--engines", default="auto",
                         help="comma-separated: auto (the default profile) and local clusters, flink or spark")
    scaling.add_argument("--scales", default="sample",
                         help="comma-separated training scales (PIPELINE_SCALE): sample, full; each size runs "
                              "once per scale on the default profile")
    scaling.add_argument("--data-root", type=Path, default=DATA_DIR,
                         help="where generated inputs are kept (<root>/<size>/data.csv)")
    for command in (comparing, scaling):
        command.add_argument("--work-dir", type=Path, default=None,
                             help="scratch folder for pipeline outputs (default: a temporary one)")
        command.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per pipeline run")
        command.add_argument("--tag", default="", help="suffix of the results file name")
    args = parser.parse_args(argv)
    work_root = args.work_dir or Path(tempfile.mkdtemp(prefix="taxi-bench-"))
    started = time.monotonic()
    # Results so far are saved after every pipeline, so an interrupted benchmark still leaves them.
    kind = args.command + (f"-{args.tag}" if args.tag else "")
    if args.command == "compare":
        if args.reps < 1:
            print("error: --reps must be at least 1", file=sys.stderr)
            return 2
        data = args.data
        if args.small:
            data = work_root / "small-sample"
            _write_small_sample(data)
        other = "before" if args.before else "theirs"
        if args.small and other == "theirs":
            print("error: --small needs --before: TFX's example has fixed training steps", file=sys.stderr)
            return 2
        result = compare(data, args.reps, work_root, args.timeout, other, args.small, args.before, kind)
        table = compare_table(result)
    else:
        sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
        engines = tuple(engine.strip() for engine in args.engines.split(",") if engine.strip())
        unknown = set(engines) - {"auto", "flink", "spark"}
        if unknown:
            print(f"error: --engines takes auto, flink and spark, not {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        scales = tuple(name.strip() for name in args.scales.split(",") if name.strip())
        if not scales or set(scales) - set(configs.SCALES):
            print(f"error: --scales takes {' and '.join(configs.SCALES)}, got {args.scales!r}", file=sys.stderr)
            return 2
        result = scale(sizes, args.data_root, work_root, args.timeout, kind, args.before, engines, scales)
        table = scale_table(result)
    result["bench_seconds"] = round(time.monotonic() - started)
    path = _write(kind, result)
    print(table)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
