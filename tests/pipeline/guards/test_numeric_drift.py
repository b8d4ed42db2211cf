"""The numeric drift check, calibrated on the shipped data: quiet on samples of one distribution, loud on
a rescaled, unit-changed, sign-flipped or shifted column.

Statistics are computed in-process by TFDV with the options StatisticsGen uses (the same quantile
sketches), on random samples of data/data.csv typed as the curated schema says. Pairs of disjoint
samples come from cutting one random permutation of the rows into blocks: every two blocks are disjoint,
so 30 blocks of 500 rows give 435 pairs for 30 statistics computations.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pyarrow as pa
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import configs
from pipeline.guards import numeric_drift
from tests.conftest import curated_schema, read_rows

# Sample sizes, and how many disjoint blocks of each are cut from one permutation of the 15,002 rows:
# 435, 45, 10 and 3 pairs of disjoint samples.
BLOCKS = {500: 30, 1000: 10, 2000: 5, 5000: 3}
SIZES = tuple(BLOCKS)
PERTURBATIONS = {
    "x3 scale": lambda values, sd: values * 3,
    "x1000 unit change": lambda values, sd: values * 1000,
    "sign flip": lambda values, sd: -values,
    "shift by one standard deviation": lambda values, sd: values + sd,
}
MAX_FALSE_HALT_RATE = 0.01


@pytest.fixture(scope="module")
def schema() -> schema_pb2.Schema:
    return curated_schema()


@pytest.fixture(scope="module")
def settings(schema):
    config = configs.load_config()
    return config.numeric_drift_min_distance, numeric_drift.parse_overrides(config.numeric_drift_overrides, schema)


@pytest.fixture(scope="module")
def columns(schema, settings) -> dict[str, np.ndarray]:
    """Each numeric column the gate checks, from the shipped data, as floats (NaN where a cell is empty)."""
    _, overrides = settings
    rows = read_rows()
    numeric = [f.name for f in schema.feature if f.type in (schema_pb2.INT, schema_pb2.FLOAT)]
    return {
        name: np.array([float(row[name]) if row[name] else np.nan for row in rows])
        for name in numeric
        if overrides.get(name, 0) is not None
    }


def _statistics(columns: dict[str, np.ndarray], rows: np.ndarray, schema):
    """TFDV's statistics of the given rows, each column typed as the schema says (as ExampleGen writes it)."""
    from tensorflow_data_validation.statistics import stats_impl

    types = {f.name: f.type for f in schema.feature}
    arrays, names = [], []
    for name, values in columns.items():
        picked = values[rows]
        if types[name] == schema_pb2.INT and np.all(np.isnan(picked) | (picked == np.round(picked))):
            cells = [None if np.isnan(v) else [int(v)] for v in picked]
            arrays.append(pa.array(cells, pa.list_(pa.int64())))
        else:
            arrays.append(pa.array([None if np.isnan(v) else [float(v)] for v in picked], pa.list_(pa.float32())))
        names.append(name)
    return stats_impl.generate_statistics_in_memory(
        pa.RecordBatch.from_arrays(arrays, names), numeric_drift.stats_options()
    )


def _halts(current, baseline, schema, settings) -> list[str]:
    min_distance, overrides = settings
    return [f.line() for f in numeric_drift.compare([current], [baseline], schema, min_distance, overrides)]


@pytest.fixture(scope="module")
def blocks(columns, schema) -> dict[int, list]:
    rng = np.random.default_rng(20261128)
    count = len(next(iter(columns.values())))
    found = {}
    for size, blocks in BLOCKS.items():
        order = rng.permutation(count)
        found[size] = [(order[i * size:(i + 1) * size], _statistics(columns, order[i * size:(i + 1) * size], schema))
                       for i in range(blocks)]
    return found


def test_samples_of_the_same_data_rarely_halt(blocks, schema, settings):
    pairs = halts = 0
    examples = []
    for size, cut in blocks.items():
        for (_, a), (_, b) in itertools.combinations(cut, 2):
            pairs += 1
            lines = _halts(a, b, schema, settings)
            if lines:
                halts += 1
                examples.append(f"{size} rows: {lines[0]}")
    assert pairs == 493
    assert halts / pairs <= MAX_FALSE_HALT_RATE, "\n".join(examples[:10])


@pytest.mark.parametrize("perturbation", list(PERTURBATIONS))
def test_a_changed_column_halts_at_every_sample_size(perturbation, blocks, columns, schema, settings):
    missed = []
    for size, cut in blocks.items():
        (_, baseline), (rows, _) = cut[0], cut[1]
        for name in columns:
            values = columns[name][rows]
            if np.count_nonzero(~np.isnan(values)) < size / 2:
                continue  # Mostly empty here (pickup_census_tract): nothing to compare.
            changed = PERTURBATIONS[perturbation](columns[name], np.nanstd(columns[name]))
            current = _statistics({name: changed}, rows, schema)
            lines = _halts(current, baseline, schema, settings)
            if not any(line.startswith(f"column {name!r}: Numeric drift") for line in lines):
                missed.append(f"{name} at {size} rows")
    assert not missed, f"{perturbation} not caught: {', '.join(missed)}"


def test_the_message_names_the_feature_the_statistic_and_both_values(blocks, columns, schema, settings):
    (_, baseline), (rows, _) = blocks[1000][0], blocks[1000][1]
    current = _statistics({"trip_seconds": columns["trip_seconds"] * 1000}, rows, schema)
    [line] = _halts(current, baseline, schema, settings)
    assert line.startswith("column 'trip_seconds': Numeric drift: its values moved by ")
    assert "(Kolmogorov-Smirnov distance) against the last data that passed the gate" in line
    assert re.search(r"above the threshold 0\.\d+ for 1,000 values now against \d{3},?\d*;", line), line
    median_now, median_before = (float(v) for v in line.split("; median ")[1].split(" before")[0].split(" now, "))
    assert median_now == pytest.approx(median_before * 1000, rel=0.1)


def test_splits_are_compared_together_and_overrides_switch_a_feature_off(blocks, columns, schema, settings):
    min_distance, overrides = settings
    (rows_a, whole), (rows_b, _) = blocks[2000][0], blocks[2000][1]
    # The same rows as two "splits" describe the same distribution as the whole.
    halves = [_statistics(columns, rows_a[:1500], schema), _statistics(columns, rows_a[1500:], schema)]
    assert numeric_drift.compare(halves, [whole], schema, min_distance, overrides) == []
    shifted = {**columns, "fare": columns["fare"] * 3}
    current = [_statistics(shifted, rows_b[:1500], schema), _statistics(shifted, rows_b[1500:], schema)]
    assert [f.feature for f in numeric_drift.compare(current, [whole], schema, min_distance, overrides)] == ["fare"]
    off = numeric_drift.parse_overrides(["fare=off"], schema)
    assert numeric_drift.compare(current, [whole], schema, min_distance, off) == []
    # A per-feature distance above the measured one lets the change through.
    assert numeric_drift.compare(current, [whole], schema, min_distance, {"fare": 0.99}) == []


def test_overrides_are_checked_against_the_schema(schema):
    assert numeric_drift.parse_overrides(["fare=0.2", "trip_start_timestamp=off"], schema) == {
        "fare": 0.2, "trip_start_timestamp": None,
    }
    with pytest.raises(ValueError, match="'farre', which is not a numeric feature of the curated schema"):
        numeric_drift.parse_overrides(["farre=0.2"], schema)
    with pytest.raises(ValueError, match="the distance must be in"):
        numeric_drift.parse_overrides(["fare=2"], schema)
    with pytest.raises(ValueError, match="is not feature=distance or feature=off"):
        numeric_drift.parse_overrides(["fare"], schema)
