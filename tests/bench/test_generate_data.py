"""bench/generate_data.py as bench/README.md runs it: the benchmark's larger inputs, grown from the sample."""

import csv

from tests.conftest import DATA_CSV
from tests.docs.commands import documented


def test_the_command_writes_the_rows_asked_for_with_the_samples_columns(tmp_path):
    """1.5M rows into the test's folder instead of bench/data/ (where the benchmark keeps and reuses them)."""
    out = tmp_path / "1.5M"
    command = documented("bench/README.md", ".venv/bin/python -m bench.generate_data --rows 1.5M --out bench/data/1.5M")
    command.replace("bench/data/1.5M", str(out)).run(timeout=300)
    written = out / "data.csv"
    try:
        with open(DATA_CSV, newline="") as sample, open(written, newline="") as generated:
            assert next(csv.reader(generated)) == next(csv.reader(sample))
            assert sum(1 for _ in generated) == 1_500_000
    finally:
        written.unlink()  # 180 MB
