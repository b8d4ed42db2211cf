"""The one source of feature names, kinds and the label, shared by preprocessing and the model.

Training and serving can only agree on a feature if both read its name from here.
"""

# Raw numeric features that are scaled to z-scores.
DENSE_FLOAT_FEATURE_KEYS = ["trip_miles", "fare", "trip_seconds"]

# Raw coordinates, cut into quantile buckets: position matters only coarsely.
BUCKET_FEATURE_KEYS = [
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
]
FEATURE_BUCKET_COUNT = 10

# Raw integer features that already are category ids, with the number of ids each can take.
CATEGORICAL_FEATURE_MAX_VALUES = {
    "trip_start_hour": 24,
    "trip_start_day": 8,
    "trip_start_month": 13,
    "pickup_community_area": 78,
    "dropoff_community_area": 78,
}
CATEGORICAL_FEATURE_KEYS = list(CATEGORICAL_FEATURE_MAX_VALUES)

# Raw features mapped to ids through a vocabulary computed on the training data. The census tract is an
# id with thousands of values, so it is treated like a string.
VOCAB_FEATURE_KEYS = ["payment_type", "company", "dropoff_census_tract"]
VOCAB_SIZE = 1000
OOV_SIZE = 10

# Raw columns that are not model inputs: the pickup census tract is empty in all but one row of the
# sample, and the timestamp is already represented by hour, day and month.
UNUSED_FEATURE_KEYS = ["pickup_census_tract", "trip_start_timestamp"]

# The label: a trip is a "big tipper" when tips exceed this fraction of the fare.
TIPS_KEY = "tips"
FARE_KEY = "fare"
BIG_TIPPER_FRACTION = 0.2
LABEL_KEY = "big_tipper"

# Raw columns a serving client never sends: the label is computed from them.
LABEL_SOURCE_KEYS = [TIPS_KEY]

MODEL_FEATURE_KEYS = (
    DENSE_FLOAT_FEATURE_KEYS + BUCKET_FEATURE_KEYS + CATEGORICAL_FEATURE_KEYS + VOCAB_FEATURE_KEYS
)


def transformed_name(key: str) -> str:
    """Name of a feature after Transform, so raw and transformed tensors never collide."""
    return key + "_xf"


def vocabulary_name(key: str) -> str:
    """File name of a feature's vocabulary in the transform graph."""
    return key + "_vocab"


def categorical_cardinality(key: str) -> int:
    """Number of distinct ids the transformed feature `key` can take (the one-hot width)."""
    if key in CATEGORICAL_FEATURE_MAX_VALUES:
        return CATEGORICAL_FEATURE_MAX_VALUES[key]
    if key in BUCKET_FEATURE_KEYS:
        return FEATURE_BUCKET_COUNT
    if key in VOCAB_FEATURE_KEYS:
        return VOCAB_SIZE + OOV_SIZE
    raise KeyError(f"{key!r} is not a categorical feature")
