"""Larger inputs for the benchmark, grown from the 15,002-row sample.

Rows are drawn from the sample with replacement, so every column keeps its distribution and every row
keeps its own pattern of empty cells (a trip without a census tract stays without one). Continuous values
get a little noise so that the data is not just the sample repeated: fare and tips are scaled by the same
factor (the big-tipper label, tips > 20% of fare, is unchanged), trip length and duration by another,
coordinates move by a few hundred metres. Categories, timestamps and calendar fields are kept as drawn.

A generated row is a near-copy of its sample row, so a model evaluated on rows drawn from the sample rows
it trained on would score what it memorised. The rows ExampleGen will put in the eval split (it splits by
a hash of each row's text) are therefore drawn only from the sample rows it puts in eval on the sample
itself, and the training rows only from the others: an AUC at scale means what it says.

    .venv/bin/python -m bench.generate_data --rows 1500000 --out bench/data/1.5M
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from pipeline import configs, inputs
from pipeline.components import csv_ranges

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_ROOT / "data" / "data.csv"
CHUNK_ROWS = 500_000
# Decimal places each noisy column is written with, as in the sample.
_MONEY = ("fare", "tips")
_TRIP = ("trip_miles", "trip_seconds")
_COORDINATES = ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude")


def read_sample(path: Path = SAMPLE) -> pa.Table:
    """The sample with every empty cell as null (pyarrow reads an empty string cell as "")."""
    table = pa_csv.read_csv(path)
    for index, name in enumerate(table.column_names):
        column = table[name]
        if pa.types.is_string(column.type):
            table = table.set_column(
                index, name, pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
            )
    return table


def _values(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as float64 values (0 where null) and its null mask."""
    array = column.combine_chunks()
    mask = array.is_null().to_numpy(zero_copy_only=False)
    values = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
    return values, mask


def _scaled(column: pa.ChunkedArray, factor: np.ndarray, decimals: int, integer: bool) -> pa.Array:
    values, mask = _values(column)
    values = np.round(values * factor, decimals)
    if integer:
        return pa.array(values.astype(np.int64), mask=mask)
    return pa.array(values, mask=mask)


def resample(sample: pa.Table, rows: int, rng: np.random.Generator) -> pa.Table:
    """`rows` rows drawn from `sample`, with noise on the continuous columns."""
    chunk = sample.take(pa.array(rng.integers(0, sample.num_rows, rows)))
    money = np.exp(rng.normal(0.0, 0.08, rows))
    trip = np.exp(rng.normal(0.0, 0.08, rows))
    for name in _MONEY:
        chunk = chunk.set_column(
            chunk.column_names.index(name), name, _scaled(chunk[name], money, 2, integer=False)
        )
    for name in _TRIP:
        integer = pa.types.is_integer(chunk[name].type)
        chunk = chunk.set_column(
            chunk.column_names.index(name), name,
            _scaled(chunk[name], trip, 0 if integer else 2, integer=integer),
        )
    for name in _COORDINATES:
        values, mask = _values(chunk[name])
        values = np.round(values + rng.normal(0.0, 0.002, rows), 6)
        chunk = chunk.set_column(chunk.column_names.index(name), name, pa.array(values, mask=mask))
    return chunk


# Written beside data.csv: what made it, so that data from an earlier generator is not reused.
STAMP = "data.csv.generator"
GENERATOR_VERSION = "2: eval rows from the sample's eval rows"


def _splits(table: pa.Table, buckets: list[int]) -> np.ndarray:
    """The split ExampleGen puts each row in (0 train, 1 eval): from the row's text as written to CSV and
    read back as ExampleGen reads it, by ExampleGen's own hash rule."""
    text = io.BytesIO()
    pa_csv.write_csv(table, text, pa_csv.WriteOptions(include_header=False))
    parsed = csv_ranges.parse_rows(text.getvalue(), table.column_names)
    return csv_ranges.split_indices(csv_ranges.row_keys(parsed), buckets)


def eval_sources(path: Path = SAMPLE) -> np.ndarray:
    """Whether each sample row is in the eval split when the pipeline runs on the sample itself (3:1),
    from the file's own text, in the order of read_sample's rows."""
    header, _, rows = path.read_bytes().partition(b"\n")
    parsed = csv_ranges.parse_rows(rows, header.decode().split(","))
    default = configs.PipelineConfig()
    buckets = [default.train_hash_buckets, default.train_hash_buckets + default.eval_hash_buckets]
    return csv_ranges.split_indices(csv_ranges.row_keys(parsed), buckets) == 1


def honest_chunk(train_sample: pa.Table, eval_sample: pa.Table, rows: int, buckets: list[int],
                 rng: np.random.Generator) -> pa.Table:
    """`rows` rows whose eval rows (under `buckets`) all come from `eval_sample`'s rows, and whose training
    rows all come from `train_sample`'s. Rows are drawn from the training sources; the few that hash into
    eval are replaced by draws from the eval sources until as many land in eval (redrawn in bulk: about one
    in `buckets[-1] - buckets[0]` does)."""
    train_part = resample(train_sample, rows, rng)
    in_eval = _splits(train_part, buckets) == 1
    wanted = int(in_eval.sum())
    kept = [train_part.filter(pa.array(~in_eval))]
    eval_share = (buckets[-1] - buckets[0]) / buckets[-1]
    while wanted:
        draws = resample(eval_sample, min(CHUNK_ROWS, max(1_000, int(wanted / eval_share * 1.2))), rng)
        landed = np.flatnonzero(_splits(draws, buckets) == 1)[:wanted]
        kept.append(draws.take(pa.array(landed)))
        wanted -= len(landed)
    return pa.concat_tables(kept)


def generate(rows: int, out_dir: Path, seed: int = 0) -> Path:
    """Write `rows` rows to out_dir/data.csv (header as in the sample) and return its path.

    The eval split's hash buckets depend on the input's size (inputs.split_hash_buckets, from the file's
    estimated rows): the rows are written for the buckets of `rows` rows, and written again for the
    file's own when the estimate lands on other buckets."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "data.csv"
    partial = out_dir / "data.csv.partial"
    sample = read_sample()
    is_eval_source = eval_sources()
    sources = (sample.filter(pa.array(~is_eval_source)), sample.filter(pa.array(is_eval_source)))
    config = configs.PipelineConfig()
    buckets = inputs.hash_buckets_for_rows(config, rows)
    for _ in range(3):
        rng = np.random.default_rng(seed)
        _write(partial, sources, rows, [buckets[0], sum(buckets)], rng)
        actual = inputs.hash_buckets_for_rows(config, inputs.estimated_rows([str(partial)]))
        if actual == buckets:
            break
        buckets = actual
    else:
        raise RuntimeError(f"the hash buckets of {partial} do not settle (last {buckets})")
    # Only a complete file gets the name the benchmark reads.
    os.replace(partial, target)
    (out_dir / STAMP).write_text(f"{GENERATOR_VERSION}; rows {rows}; seed {seed}; hash buckets {buckets}\n")
    return target


def _write(path: Path, sources: tuple[pa.Table, pa.Table], rows: int, buckets: list[int],
           rng: np.random.Generator) -> None:
    """`rows` rows into `path` from the (training, eval) source rows (honest_chunk)."""
    written = 0
    with open(path, "wb") as sink:
        # The sample's header, unquoted (pyarrow would quote every name).
        sink.write((",".join(sources[0].column_names) + "\n").encode())
        while written < rows:
            size = min(CHUNK_ROWS, rows - written)
            pa_csv.write_csv(
                honest_chunk(*sources, size, buckets, rng), sink,
                pa_csv.WriteOptions(include_header=False),
            )
            written += size


def is_current(out_dir: Path, rows: int, seed: int = 0) -> bool:
    """Whether out_dir holds data.csv as this generator writes it for `rows` rows."""
    stamp = out_dir / STAMP
    return (out_dir / "data.csv").is_file() and stamp.is_file() and stamp.read_text().startswith(
        f"{GENERATOR_VERSION}; rows {rows}; seed {seed};"
    )


def parse_rows(text: str) -> int:
    """Row counts as 150000, 150k, 1.5M or 10M."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    return int(round(float(number) * scale))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", required=True, help="row count: 150000, 150k, 1.5M, 10M")
    parser.add_argument("--out", required=True, type=Path, help="folder to write data.csv into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = generate(parse_rows(args.rows), args.out, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
