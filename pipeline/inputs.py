"""Which input files a run reads, in the plain layout or in spans, and how many rows they hold.

In the span layout (an input_pattern with {SPAN}, e.g. "span-{SPAN}/*.csv") CsvExampleGen itself picks
the newest span; this module answers the same question on disk, for the scheduler's "is there new data?"
and for counting the rows a run must have read.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from pipeline.configs import PipelineConfig

SPAN_TOKEN = "{SPAN}"


def is_span_layout(config: PipelineConfig) -> bool:
    return SPAN_TOKEN in config.input_pattern


def _glob_to_regex(part: str) -> str:
    return re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")


def _matches(config: PipelineConfig) -> list[tuple[int | None, str]]:
    """(span, path) of each input file; span is None in the plain layout."""
    paths = sorted(glob.glob(os.path.join(config.data_root, config.input_pattern.replace(SPAN_TOKEN, "*"))))
    paths = [path for path in paths if os.path.isfile(path)]
    if not is_span_layout(config):
        return [(None, path) for path in paths]
    regex = re.compile(r"(\d+)".join(_glob_to_regex(part) for part in config.input_pattern.split(SPAN_TOKEN)))
    found = []
    for path in paths:
        match = regex.fullmatch(os.path.relpath(path, config.data_root))
        if match:
            found.append((int(match.group(1)), path))
    return found


def spans_on_disk(config: PipelineConfig) -> list[int]:
    """The spans that have at least one input file, oldest first; empty in the plain layout."""
    return sorted({span for span, _ in _matches(config) if span is not None})


def newest_span(config: PipelineConfig) -> int | None:
    spans = spans_on_disk(config)
    return spans[-1] if spans else None


def input_files(config: PipelineConfig, span: int | None = None) -> list[str]:
    """The files a run reads: all matches in the plain layout, else those of `span` (default: newest)."""
    matches = _matches(config)
    if not is_span_layout(config):
        return [path for _, path in matches]
    span = newest_span(config) if span is None else span
    return [path for found, path in matches if found == span]


def count_rows(paths: list[str]) -> int:
    """CSV records in the files, header lines excluded (a quoted field may span lines)."""
    from pipeline import input_checks  # It imports configs, which imports this module.

    return sum(input_checks.row_count(Path(path)) for path in paths)
