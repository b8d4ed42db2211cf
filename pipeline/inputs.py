"""Which files a run reads, and how they are opened: the one answer every check, count and record uses.

The data root and the input pattern go through TFX's own span resolution
(`calculate_splits_fingerprint_span_and_version`, the code CsvExampleGen's driver runs), so the files
named here are the files ExampleGen reads: in the plain layout (`*.csv`) every match, span 0; with
`{SPAN}` (`span-{SPAN}/*.csv`), `{VERSION}` or the date specs `{YYYY}{MM}{DD}`, the newest span (and its
newest version). The pre-flight check, the rows-in/rows-out check, the data gate's message, the run
record, the scheduler's "is there new data?", the progress line and the input sizing all start from a
`RunInput` built here; CsvExampleGen's executor lists and opens its files here too.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import io
import lzma
import math
import os
import zlib
from typing import BinaryIO

from pipeline.configs import ConfigError, PipelineConfig

# What Beam's file systems decompress by file name (CompressionTypes.AUTO), as TFX's own CSV reader does.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".deflate", ".zst", ".zstd", ".xz", ".lzma")
SPLIT_NAME = "single_split"
# Bytes read from the top of a file to estimate the mean row length.
_ROW_LENGTH_SAMPLE_BYTES = 2**20


@dataclasses.dataclass(frozen=True)
class RunInput:
    """The exact input of one run: its files, span and version, as CsvExampleGen resolves them."""

    data_root: str
    pattern: str  # As configured, e.g. "span-{SPAN}/*.csv".
    resolved_pattern: str  # With the span and version filled in, e.g. "span-7/*.csv".
    span: int  # 0 in the plain layout, as TFX records it.
    version: int | None
    files: tuple[str, ...]
    # TFX's fingerprint of the files (count, sizes, modification times): what ExampleGen's cache keys on.
    fingerprint: str
    # The newest span's folder when it holds no matching file, so that an older span is read (TFX skips
    # such a folder without a word), e.g. "span-8".
    skipped_folder: str | None = None

    @property
    def in_spans(self) -> bool:
        return self.resolved_pattern != self.pattern or self.version is not None

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.data_root) if "://" not in path else path

    def describe(self) -> str:
        """The files and span, as messages name them: `files span-7/data.csv; span 7`."""
        names = ", ".join(self.relative(path) for path in self.files) or self.resolved_pattern
        version = f", version {self.version}" if self.version is not None else ""
        return f"files {names}; span {self.span}{version}"

    def where(self, path: str) -> str:
        """A file as error messages name it: its path, and its span in the span layout."""
        return f"{path} (span {self.span})" if self.in_spans else path


def _split(pattern: str):
    # TFX's modules load TensorFlow (its file system plugin): imported here, only when resolving, to keep
    # the processes that import this module for its names (the scheduler, the CLI) quick to start.
    from tfx.proto import example_gen_pb2

    return example_gen_pb2.Input.Split(name=SPLIT_NAME, pattern=pattern)


def is_span_layout(pattern: str) -> bool:
    """Whether the pattern holds TFX's {SPAN} (or date) spec, so that each run reads one span."""
    from tfx.components.example_gen import utils  # Loads TensorFlow: see _split.

    try:
        is_span, is_date, _ = utils.verify_split_pattern_specs(_split(pattern))
    except ValueError as error:
        raise ConfigError(f"input_pattern {pattern!r}: {error} (set PIPELINE_INPUT_PATTERN)") from None
    return is_span or is_date


def list_files(data_root: str, resolved_pattern: str) -> tuple[str, ...]:
    """The files matching a pattern whose span and version are filled in, folders left out."""
    from tfx.dsl.io import fileio  # Loads TensorFlow: see _split.

    matches = fileio.glob(os.path.join(data_root, resolved_pattern))
    return tuple(sorted(path for path in matches if not fileio.isdir(path)))


def resolve(data_root: str, pattern: str, span: int | None = None, version: int | None = None) -> RunInput:
    """The files a run of `pattern` under `data_root` reads: the newest span (and version), or the
    given one (a recorded run's Examples artifact names it). Raises ConfigError when there are none."""
    from tfx.components.example_gen import utils  # Loads TensorFlow: see _split.
    from tfx.dsl.io import fileio
    from tfx.utils import io_utils

    if not fileio.isdir(data_root):
        raise ConfigError(f"data folder {data_root} does not exist (set PIPELINE_DATA_ROOT)")
    split = _split(pattern)
    in_newest = span is None
    try:
        if span is None:
            fingerprint, span, version = utils.calculate_splits_fingerprint_span_and_version(
                data_root, [split]
            )
        else:
            is_span, is_date, is_version = utils.verify_split_pattern_specs(split)
            split.pattern = utils.get_pattern_for_span_version(
                pattern, is_span, is_date, is_version, span, version
            )
            fingerprint = io_utils.generate_fingerprint(SPLIT_NAME, os.path.join(data_root, split.pattern))
    except ValueError as error:
        if "Cannot find matching" in str(error):
            raise ConfigError(
                f"no input files match {pattern!r} in {data_root} (set PIPELINE_DATA_ROOT or PIPELINE_INPUT_PATTERN)"
            ) from None
        raise ConfigError(f"input_pattern {pattern!r}: {error} (set PIPELINE_INPUT_PATTERN)") from None
    files = list_files(data_root, split.pattern)
    if not files:
        raise ConfigError(
            f"no input files match {split.pattern!r} in {data_root} (set PIPELINE_DATA_ROOT or PIPELINE_INPUT_PATTERN)"
        )
    skipped = _newer_empty_folder(data_root, pattern, span, version) if in_newest else None
    return RunInput(data_root, pattern, split.pattern, span, version, files, fingerprint, skipped)


def _newer_empty_folder(data_root: str, pattern: str, span: int, version: int | None) -> str | None:
    """The newest span folder (the pattern's folder part, e.g. "span-{SPAN}") when it is newer than the
    span (and version) read, and so holds no file the pattern matches."""
    from tfx.components.example_gen import utils  # Loads TensorFlow: see _split.

    folder = os.path.dirname(pattern)
    try:
        if not folder or not is_span_layout(folder):
            return None
        _, newest, newest_version = utils.calculate_splits_fingerprint_span_and_version(
            data_root, [_split(folder)]
        )
    except (ConfigError, ValueError):  # No folder of the layout, or a layout only the whole pattern fits.
        return None
    if newest is None or (newest, newest_version or 0) <= (span, version or 0):
        return None
    is_span, is_date, is_version = utils.verify_split_pattern_specs(_split(folder))
    return utils.get_pattern_for_span_version(folder, is_span, is_date, is_version, newest, newest_version)


def resolve_for(config: PipelineConfig, span: int | None = None, version: int | None = None) -> RunInput:
    """`resolve` for the configured data root and pattern."""
    return resolve(config.data_root, config.input_pattern, span, version)


def is_local(config: PipelineConfig) -> bool:
    return "://" not in config.data_root


# --- opening the files --------------------------------------------------------------------------------


def is_compressed(path: str) -> bool:
    return path.lower().endswith(COMPRESSED_SUFFIXES)


class _Decompressed(io.RawIOBase):
    """Beam's decompressing reader as a standard binary stream (its `closed` is a method, not the
    attribute io and Arrow test, and it cannot be iterated by line)."""

    def __init__(self, compressed) -> None:
        super().__init__()
        self._compressed = compressed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._compressed.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._compressed.close()
        super().close()


def open_input(path: str) -> BinaryIO:
    """The file's bytes, decompressed by its name as Beam (and so TFX's CSV reader) does."""
    from apache_beam.io.filesystems import FileSystems  # Beam's I/O is slow to import: see _split.

    f = FileSystems.open(path)
    return io.BufferedReader(_Decompressed(f), 2**20) if is_compressed(path) else f


def parse_header(line: bytes) -> list[str]:
    """Column names from a header line: UTF-8 with or without a byte order mark, quotes as CSV has them."""
    text = line.decode("utf-8-sig").rstrip("\r\n")
    return next(csv.reader([text]), [])


def read_header(path: str) -> list[str]:
    """The column names in the file's first line."""
    with open_input(path) as f:
        return parse_header(f.readline())


# --- sizing -----------------------------------------------------------------------------------------


def _decompressor(path: str):
    """Something with decompress(bytes) for the file's compression (None: not compressed)."""
    suffix = path.lower()
    if suffix.endswith(".gz"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if suffix.endswith(".deflate"):
        return zlib.decompressobj()
    if suffix.endswith(".bz2"):
        return bz2.BZ2Decompressor()
    if suffix.endswith((".xz", ".lzma")):
        return lzma.LZMADecompressor()
    if suffix.endswith((".zst", ".zstd")):
        import zstandard  # Beam's own dependency for .zst; only needed here.

        return zstandard.ZstdDecompressor().decompressobj()
    return None


def _lines_per_byte(path: str) -> float:
    """Line breaks per stored byte, from the top of the file (decompressed first if compressed)."""
    with open(path, "rb") as f:
        sample = f.read(_ROW_LENGTH_SAMPLE_BYTES)
    if not sample:
        return 0.0
    decompressor = _decompressor(path)
    text = sample if decompressor is None else decompressor.decompress(sample)
    return text.count(b"\n") / len(sample)


def local_bytes(run_input: RunInput) -> int:
    return sum(os.path.getsize(path) for path in run_input.files)


def estimated_rows(files) -> int:
    """Rows in local input files (a run's: RunInput.files), from their size and the line length at their top."""
    return max(1, round(sum(os.path.getsize(p) * _lines_per_byte(p) for p in files)))


def split_hash_buckets(config: PipelineConfig, run_input: RunInput | None = None) -> tuple[int, int]:
    """ExampleGen's (train, eval) hash buckets: train_hash_buckets:eval_hash_buckets, unless that
    would put more than max_eval_rows rows in eval; then one bucket of eval in enough buckets to
    keep it near max_eval_rows. Remote or missing input keeps the configured ratio."""
    train, evaluation = config.train_hash_buckets, config.eval_hash_buckets
    if not config.max_eval_rows or not is_local(config):
        return train, evaluation
    if run_input is None:
        try:
            run_input = resolve_for(config)
        except ConfigError:  # No input yet: the run's pre-flight check says so; compiling goes on.
            return train, evaluation
    return hash_buckets_for_rows(config, estimated_rows(run_input.files))


def hash_buckets_for_rows(config: PipelineConfig, rows: int) -> tuple[int, int]:
    """split_hash_buckets for an input of `rows` rows (the benchmark's generator writes to them)."""
    train, evaluation = config.train_hash_buckets, config.eval_hash_buckets
    if not config.max_eval_rows or rows * evaluation / (train + evaluation) <= config.max_eval_rows:
        return train, evaluation
    return math.ceil(rows / config.max_eval_rows) - 1, 1
