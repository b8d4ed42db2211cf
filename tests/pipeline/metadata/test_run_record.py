"""A run's record hashes its input files without holding one in memory: an input can be larger than the
machine's memory (100M rows are 12 GB of CSV, and hashing them whole took 12 GB)."""

import hashlib
import tracemalloc

from pipeline.metadata import run_record


def test_file_sha256_reads_a_block_at_a_time(tmp_path):
    path = tmp_path / "data.csv"
    with open(path, "wb") as f:
        f.write(b"trip_miles,fare\n")
        f.truncate(96 * 2**20 + 7)  # zeros after the header: more than five blocks, the last one short
    tracemalloc.start()
    try:
        digest = run_record.file_sha256(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, peak
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
