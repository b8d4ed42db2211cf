"""Numeric drift: has a numeric column's distribution moved against the last data that passed the gate?

TFDV's drift comparators judge categorical columns (L-infinity) and, on numeric ones, the Jensen-Shannon
divergence of its equal-width histograms, whose ten buckets span min to max: one outlier of 700 in a
column whose values are mostly under 50 puts nearly every row in the first bucket, and the boundaries move with each sample's maximum, so the
divergence is blind to a unit change of the bulk and noisy from sample to sample. This check instead
compares the two cumulative distributions that TFDV's quantile sketches describe (the Kolmogorov-Smirnov
distance, the largest gap between them): it does not care about outliers or units, and its sampling
noise is known, about sqrt((n + m) / (n m)) for n and m rows. A run halts when the distance exceeds

    max(CONFIDENCE * sqrt((n + m) / (n m)) + 1 / quantile buckets,  min_distance)

The first term is what two samples of one distribution stay under (calibrated on the shipped data by
tests/pipeline/guards/test_numeric_drift.py: no false halt in hundreds of pairs of disjoint samples from 500 rows up,
while a x3 scale, a x1000 unit change, a sign flip and a shift of one standard deviation of any numeric
column are caught at every size); the second (min_distance, 0.1 by default, per feature in
`numeric_drift_overrides`) keeps large inputs from halting on real but small shifts. Scaling and sign
changes leave zeros where they are, and a column that is mostly zero (68% of one column of the shipped
data) hides them from the whole distribution, so the non-zero values are compared on their own as well.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

# StatisticsGen's quantile histogram buckets: the check's resolution (TFDV's default is 10; 30 costs
# StatisticsGen a little more per numeric feature and split, whatever the rows: bench/README.md).
QUANTILE_BUCKETS = 30
# How many standard errors of the distance a sample may move by chance (2.5: about one false halt in
# 200,000 comparisons of continuous data; fewer for discrete data, where the distance is smaller).
CONFIDENCE = 2.5
OFF = "off"


def stats_options():
    """The TFDV options StatisticsGen computes statistics with: enough quantiles for this check."""
    import tensorflow_data_validation as tfdv  # Slow to import; only pipeline builders need it.

    return tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILE_BUCKETS)


def parse_overrides(entries: Iterable[str], schema: schema_pb2.Schema) -> dict[str, float | None]:
    """`feature=distance` or `feature=off` entries as {feature: min distance, or None when off}."""
    numeric = {f.name for f in schema.feature if f.type in (schema_pb2.INT, schema_pb2.FLOAT)}
    parsed: dict[str, float | None] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep or not name:
            raise ValueError(f"numeric_drift_overrides entry {entry!r} is not feature=distance or feature=off")
        if name not in numeric:
            raise ValueError(
                f"numeric_drift_overrides names {name!r}, which is not a numeric feature of the curated "
                f"schema ({', '.join(sorted(numeric))})"
            )
        if value.strip().lower() == OFF:
            parsed[name] = None
            continue
        try:
            distance = float(value)
        except ValueError:
            distance = math.nan
        if not 0 < distance <= 1:
            raise ValueError(f"numeric_drift_overrides entry {entry!r}: the distance must be in (0, 1], or off")
        parsed[name] = distance
    return parsed


class Distribution:
    """A numeric feature's values in one or more splits, as TFDV's quantile histograms describe them.

    The cumulative distribution of each split is piecewise linear between its quantile boundaries
    (several equal boundaries are a jump: a value many rows share); splits mix in proportion to their
    numbers of values.
    """

    def __init__(self, features: Sequence[statistics_pb2.FeatureNameStatistics]):
        self.parts: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.count = 0.0
        self.zeros = 0.0
        self.buckets = 0
        weighted_mean = 0.0
        for feature in features:
            numbers = feature.num_stats
            count = float(numbers.common_stats.num_non_missing)
            histogram = next(
                (h for h in numbers.histograms if h.type == statistics_pb2.Histogram.QUANTILES), None
            )
            if not count or histogram is None or not histogram.buckets:
                continue
            boundaries = np.array([histogram.buckets[0].low_value] + [b.high_value for b in histogram.buckets])
            cumulative = np.concatenate([[0.0], np.cumsum([b.sample_count for b in histogram.buckets])])
            if cumulative[-1] <= 0:
                continue
            self.parts.append((boundaries, cumulative / cumulative[-1], count))
            self.count += count
            self.zeros += float(numbers.num_zeros)
            weighted_mean += numbers.mean * count
            self.buckets = min(self.buckets or len(histogram.buckets), len(histogram.buckets))
        self.mean = weighted_mean / self.count if self.count else math.nan

    @property
    def zero_share(self) -> float:
        return self.zeros / self.count if self.count else 0.0

    def breakpoints(self) -> np.ndarray:
        return np.unique(np.concatenate([boundaries for boundaries, _, _ in self.parts] + [[0.0]]))

    def cdf(self, x: np.ndarray, left: bool = False, nonzero: bool = False) -> np.ndarray:
        """P(value <= x) (P(value < x) with left), of the non-zero values only with nonzero."""
        total = np.zeros(len(x))
        for boundaries, cumulative, count in self.parts:
            total += _piecewise_cdf(boundaries, cumulative, x, left) * count
        total /= self.count
        if nonzero:
            zero = self.zero_share
            if zero >= 1:
                return np.zeros(len(x))
            at_or_above_zero = (x > 0) | ((x == 0) & (not left))
            total = np.clip((total - zero * at_or_above_zero) / (1 - zero), 0.0, 1.0)
        return total

    def median(self) -> float:
        points = self.breakpoints()
        values = self.cdf(points)
        index = int(np.searchsorted(values, 0.5))
        if index == 0 or index >= len(points):
            return float(points[min(index, len(points) - 1)])
        low, high = values[index - 1], values[index]
        fraction = (0.5 - low) / (high - low) if high > low else 0.0
        return float(points[index - 1] + fraction * (points[index] - points[index - 1]))


def _piecewise_cdf(boundaries: np.ndarray, cumulative: np.ndarray, x: np.ndarray, left: bool) -> np.ndarray:
    # The last boundary at or below x (strictly below with left), then linear up to the next one.
    index = np.searchsorted(boundaries, x, side="left" if left else "right") - 1
    out = np.zeros(len(x))
    out[index >= len(boundaries) - 1] = 1.0
    inside = (index >= 0) & (index < len(boundaries) - 1)
    i = index[inside]
    low, high = boundaries[i], boundaries[i + 1]
    width = np.where(high > low, high - low, 1.0)
    fraction = np.where(high > low, (x[inside] - low) / width, 0.0)
    out[inside] = cumulative[i] + (cumulative[i + 1] - cumulative[i]) * fraction
    return out


def ks_distance(a: Distribution, b: Distribution, nonzero: bool = False) -> float:
    """The largest gap between the two cumulative distributions (both are linear between breakpoints,
    so the largest gap lies at one, on one side of it)."""
    points = np.union1d(a.breakpoints(), b.breakpoints())
    return max(
        float(np.max(np.abs(a.cdf(points, left, nonzero) - b.cdf(points, left, nonzero))))
        for left in (False, True)
    )


def threshold(n: float, m: float, resolution: float, min_distance: float) -> float:
    """The distance above which two samples of n and m values are not the same distribution."""
    return max(CONFIDENCE * math.sqrt((n + m) / (n * m)) + resolution, min_distance)


@dataclasses.dataclass
class Finding:
    """A numeric feature whose values moved: what was compared, by how much, and the bar it crossed."""

    feature: str
    nonzero: bool
    distance: float
    threshold: float
    current: Distribution
    baseline: Distribution

    def line(self) -> str:
        what = "its non-zero values" if self.nonzero else "its values"
        now, before = self.current, self.baseline
        counts = f"{now.count:,.0f} values now against {before.count:,.0f}"
        if self.nonzero:
            counts = f"{now.count - now.zeros:,.0f} non-zero values now against {before.count - before.zeros:,.0f}"
        parts = [
            f"column {self.feature!r}: Numeric drift: {what} moved by {self.distance:.3f} "
            f"(Kolmogorov-Smirnov distance) against the last data that passed the gate, above the "
            f"threshold {self.threshold:.3f} for {counts}",
            f"median {now.median():.6g} now, {before.median():.6g} before",
            f"mean {now.mean:.6g} now, {before.mean:.6g} before",
        ]
        if self.nonzero:
            parts.append(f"zeros {now.zero_share:.0%} now, {before.zero_share:.0%} before")
        return "; ".join(parts) + "."


def _feature(dataset: statistics_pb2.DatasetFeatureStatistics, name: str):
    for feature in dataset.features:
        if (feature.path.step and feature.path.step[0] == name) or feature.name == name:
            return feature if feature.HasField("num_stats") else None
    return None


def _distribution(splits: Iterable[statistics_pb2.DatasetFeatureStatisticsList], name: str) -> Distribution:
    found = []
    for stats in splits:
        for dataset in stats.datasets:
            feature = _feature(dataset, name)
            if feature is not None:
                found.append(feature)
    return Distribution(found)


def compare(
    current: Sequence[statistics_pb2.DatasetFeatureStatisticsList],
    baseline: Sequence[statistics_pb2.DatasetFeatureStatisticsList],
    schema: schema_pb2.Schema,
    min_distance: float,
    overrides: dict[str, float | None] | None = None,
) -> list[Finding]:
    """Every numeric feature of the schema whose values (all splits together) moved beyond its threshold."""
    overrides = overrides or {}
    findings = []
    for feature in schema.feature:
        if feature.type not in (schema_pb2.INT, schema_pb2.FLOAT):
            continue
        floor = overrides.get(feature.name, min_distance)
        if floor is None:
            continue
        now, before = _distribution(current, feature.name), _distribution(baseline, feature.name)
        if not now.parts or not before.parts:
            continue
        resolution = 1.0 / min(now.buckets, before.buckets)
        checks = [(False, now.count, before.count, resolution)]
        if now.zeros or before.zeros:
            now_nonzero, before_nonzero = now.count - now.zeros, before.count - before.zeros
            if now_nonzero and before_nonzero:
                share = min(now_nonzero / now.count, before_nonzero / before.count)
                checks.append((True, now_nonzero, before_nonzero, resolution / share))
        for nonzero, n, m, bar in checks:
            distance = ks_distance(now, before, nonzero)
            limit = threshold(n, m, bar, floor)
            if distance > limit:
                findings.append(Finding(feature.name, nonzero, distance, limit, now, before))
                break
    return findings
