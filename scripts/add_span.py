"""Add the next data span, a random sample of the task's shipped data, for demos and tests of the span layout.

    PIPELINE_INPUT_PATTERN='span-{SPAN}/*.csv' PIPELINE_DATA_ROOT=/tmp/spans python scripts/add_span.py --rows 2000

The span appears at once and whole (written beside, then renamed), so a scheduler watching data_root
never reads half a span.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import configs, inputs  # noqa: E402



def task_sample(config: configs.PipelineConfig) -> Path:
    """The task's own data file (modules/task.py's DATA_ROOT): what new spans are sampled from."""
    files = sorted(Path(config.task_spec.data_root).glob("*.csv"))
    if not files:
        raise configs.ConfigError(f"the task {config.task!r} has no CSV file in {config.task_spec.data_root}")
    return files[0]


def span_path(config: configs.PipelineConfig, span: int) -> Path:
    """Where span `span`'s CSV file goes (TFX fills in the span, with its zero padding); a wildcard file
    name becomes data.csv."""
    from tfx.components.example_gen import utils

    relative = Path(utils.get_pattern_for_span_version(config.input_pattern, True, False, False, span, None))
    if any(char in relative.name for char in "*?["):
        if not fnmatch.fnmatch("data.csv", relative.name):
            raise configs.ConfigError(f"input_pattern {config.input_pattern!r} does not match a data.csv file")
        relative = relative.with_name("data.csv")
    if any(char in str(relative.parent) for char in "*?["):
        raise configs.ConfigError(f"input_pattern {config.input_pattern!r}: only the file name may hold wildcards")
    return Path(config.data_root) / relative


def add_span(config: configs.PipelineConfig, rows: int, seed: int | None = None, source: Path | None = None) -> Path:
    """Write span newest+1 with `rows` rows sampled from `source` (default: the task's data file); returns
    the file written."""
    source = source or task_sample(config)
    if "{SPAN" not in config.input_pattern or not inputs.is_span_layout(config.input_pattern):
        raise configs.ConfigError(
            f"input_pattern {config.input_pattern!r} has no {{SPAN}} "
            "(set PIPELINE_INPUT_PATTERN, e.g. 'span-{SPAN}/*.csv')"
        )
    try:
        span = inputs.resolve_for(config).span + 1
    except configs.ConfigError:  # No span yet.
        span = 1
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        fieldnames, all_rows = reader.fieldnames, list(reader)
    if not 1 <= rows <= len(all_rows):
        raise configs.ConfigError(f"--rows must be between 1 and {len(all_rows)}, got {rows}")
    sample = random.Random(span if seed is None else seed).sample(all_rows, rows)
    path = span_path(config, span)
    # The new folder (or file) is built under a name the pattern does not match, then renamed into place.
    top = Path(config.data_root) / path.relative_to(config.data_root).parts[0]
    top.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=top.parent))
    staged_file = staging / path.relative_to(top.parent)
    staged_file.parent.mkdir(parents=True, exist_ok=True)
    with open(staged_file, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(sample)
    os.rename(staging / top.name, top)
    staging.rmdir()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows sampled from the task's data file")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (default: the span number)")
    args = parser.parse_args()
    try:
        path = add_span(configs.load_config(), args.rows, args.seed)
    except configs.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return configs.EXIT_CONFIG_ERROR
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
