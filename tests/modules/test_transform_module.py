"""`preprocessing_fn` run through tf.Transform's Beam implementation on a handful of raw rows."""

import math

import pytest
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata
from tfx.utils import io_utils

from modules import features
from modules.transform_module import preprocessing_fn
from pipeline import configs


def raw_row(fare, tips, payment_type, company="Flash Cab", hour=10, latitude=41.9, census_tract=None):
    """One raw trip as CsvExampleGen would produce it: one value per present cell, none when empty."""
    return {
        "fare": [fare],
        "tips": [tips],
        "trip_miles": [2.0],
        "trip_seconds": [600],
        "payment_type": [payment_type],
        "company": [company] if company is not None else [],
        "trip_start_hour": [hour],
        "trip_start_day": [3],
        "trip_start_month": [5],
        "trip_start_timestamp": [1400000000],
        "pickup_latitude": [latitude],
        "pickup_longitude": [-87.6],
        "dropoff_latitude": [41.88],
        "dropoff_longitude": [-87.63],
        "pickup_community_area": [8],
        "dropoff_community_area": [32],
        "pickup_census_tract": [],
        "dropoff_census_tract": [census_tract] if census_tract is not None else [],
    }


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    schema = io_utils.parse_pbtxt_file(configs.load_config().schema_path, schema_pb2.Schema())
    rows = [
        raw_row(10.0, 3.0, "Credit Card", hour=10, latitude=41.80, census_tract=17031081500),
        raw_row(20.0, 1.0, "Cash", company=None, hour=25, latitude=41.85),
        raw_row(30.0, 0.0, "Cash", hour=0, latitude=41.90, census_tract=17031081500),
        raw_row(20.0, 5.0, "Cash", company="Flash Cab", hour=23, latitude=41.95),
    ]
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft")), force_tf_compat_v1=False):
        (outputs, _), _ = (
            rows,
            dataset_metadata.DatasetMetadata(schema),
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=False)
    return outputs


def test_label_is_tips_above_a_fifth_of_the_fare(transformed):
    assert [row[features.LABEL_KEY] for row in transformed] == [1, 0, 0, 1]


def test_dense_floats_are_z_scores(transformed):
    fares = [row[features.transformed_name("fare")] for row in transformed]
    std = math.sqrt(((10 - 20) ** 2 + 0 + (30 - 20) ** 2 + 0) / 4)
    assert fares == pytest.approx([(10 - 20) / std, 0.0, (30 - 20) / std, 0.0], abs=1e-5)
    # Every trip lasted 600 s: no spread, so the z-score is 0, not a division by zero.
    assert [row[features.transformed_name("trip_seconds")] for row in transformed] == [0.0] * 4


def test_vocabulary_ids_follow_frequency_and_missing_is_its_own_token(transformed):
    payment = [row[features.transformed_name("payment_type")] for row in transformed]
    assert payment == [1, 0, 0, 0]  # "Cash" is the most frequent value, so it gets id 0.
    company = [row[features.transformed_name("company")] for row in transformed]
    assert company[0] == company[2] == company[3] != company[1]
    tracts = [row[features.transformed_name("dropoff_census_tract")] for row in transformed]
    assert tracts[0] == tracts[2] != tracts[1]


def test_categorical_ids_outside_their_range_fall_back_to_zero(transformed):
    hours = [row[features.transformed_name("trip_start_hour")] for row in transformed]
    assert hours == [10, 0, 0, 23]


def test_coordinates_become_ordered_bucket_ids(transformed):
    buckets = [row[features.transformed_name("pickup_latitude")] for row in transformed]
    assert buckets == sorted(buckets)
    assert buckets[0] < buckets[-1]
    assert all(0 <= b < features.FEATURE_BUCKET_COUNT for b in buckets)


def test_raw_columns_do_not_leak_into_the_outputs(transformed):
    expected = {features.transformed_name(key) for key in features.MODEL_FEATURE_KEYS}
    assert set(transformed[0]) == expected | {features.LABEL_KEY}
