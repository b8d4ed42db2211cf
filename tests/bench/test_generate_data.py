"""bench/generate_data.py as bench/README.md runs it: the benchmark's larger inputs, grown from the sample,
with no eval row a near-copy of a sample row a training row came from."""

import csv

import pytest

from bench import generate_data
from pipeline import configs, inputs
from pipeline.components import csv_ranges
from tests.conftest import DATA_CSV
from tests.docs.commands import documented

# The columns the generator copies from the drawn sample row unchanged: together they name the row (no
# two sample rows, one in each split, share them; the test below checks it).
_COPIED = [name for name in generate_data.read_sample().column_names
           if name not in generate_data._MONEY + generate_data._TRIP + generate_data._COORDINATES]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """500k rows (a third of the command's) into the test's folder instead of bench/data/ (where the
    benchmark keeps and reuses them): at this size ExampleGen already holds eval near 100k rows, one hash
    bucket in five."""
    out = tmp_path_factory.mktemp("generated") / "500k"
    command = documented("bench/README.md", ".venv/bin/python -m bench.generate_data --rows 1.5M --out bench/data/1.5M")
    command.replace("bench/data/1.5M", str(out)).replace("1.5M", "500k").run(timeout=600)
    yield out
    (out / "data.csv").unlink()  # 60 MB


def test_the_command_writes_the_rows_asked_for_with_the_samples_columns(generated):
    with open(DATA_CSV, newline="") as sample, open(generated / "data.csv", newline="") as written:
        assert next(csv.reader(written)) == next(csv.reader(sample))
        assert sum(1 for _ in written) == 500_000
    assert generate_data.is_current(generated, 500_000)
    assert not generate_data.is_current(generated, 1_000_000)


def _names(table) -> list[tuple]:
    return list(zip(*(table.column(name).to_pylist() for name in _COPIED)))


def test_every_row_comes_from_a_sample_row_of_the_split_exampleGen_puts_it_in(generated):
    """ExampleGen's own split of the written file (its hash rule, with the buckets a run on this folder
    uses) against the sample's own split: eval rows only from the sample's eval rows, training rows only
    from its training rows."""
    sample_split = generate_data.eval_sources()
    sample_names = _names(csv_ranges.parse_rows(DATA_CSV.read_bytes().partition(b"\n")[2], _header(DATA_CSV)))
    eval_names = {name for name, is_eval in zip(sample_names, sample_split) if is_eval}
    train_names = {name for name, is_eval in zip(sample_names, sample_split) if not is_eval}
    assert eval_names and train_names and not eval_names & train_names

    config = configs.PipelineConfig(data_root=str(generated))
    train, evaluation = inputs.split_hash_buckets(config, inputs.resolve(str(generated), "*.csv"))
    assert (train, evaluation) == (4, 1)
    path = generated / "data.csv"
    rows = csv_ranges.parse_rows(path.read_bytes().partition(b"\n")[2], _header(path))
    split = csv_ranges.split_indices(csv_ranges.row_keys(rows), [train, train + evaluation])
    names = _names(rows)
    in_eval = [name for name, s in zip(names, split) if s == 1]
    in_train = [name for name, s in zip(names, split) if s == 0]
    assert 90_000 < len(in_eval) < 110_000
    assert set(in_eval) <= eval_names
    assert set(in_train) <= train_names
    # Many of the eval sample's rows are drawn, not a few over and over.
    assert len(set(in_eval)) > 0.9 * len(eval_names)


def _header(path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))
