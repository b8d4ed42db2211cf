"""Larger inputs for the benchmark, grown from the 15,002-row sample.

Rows are drawn from the sample with replacement, so every column keeps its distribution and every row
keeps its own pattern of empty cells (a trip without a census tract stays without one). Continuous values
get a little noise so that the data is not just the sample repeated: fare and tips are scaled by the same
factor (the big-tipper label, tips > 20% of fare, is unchanged), trip length and duration by another,
coordinates move by a few hundred metres. Categories, timestamps and calendar fields are kept as drawn.

    .venv/bin/python -m bench.generate_data --rows 1500000 --out bench/data/1.5M
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

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


def generate(rows: int, out_dir: Path, seed: int = 0) -> Path:
    """Write `rows` rows to out_dir/data.csv (header as in the sample) and return its path."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "data.csv"
    partial = out_dir / "data.csv.partial"
    sample = read_sample()
    rng = np.random.default_rng(seed)
    written = 0
    with open(partial, "wb") as sink:
        # The sample's header, unquoted (pyarrow would quote every name).
        sink.write((",".join(sample.column_names) + "\n").encode())
        while written < rows:
            size = min(CHUNK_ROWS, rows - written)
            pa_csv.write_csv(
                resample(sample, size, rng), sink,
                pa_csv.WriteOptions(include_header=False),
            )
            written += size
    # Only a complete file gets the name the benchmark reads.
    os.replace(partial, target)
    return target


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
