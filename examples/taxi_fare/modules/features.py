"""The one source of the fare task's feature names and label, shared by preprocessing and the model."""

# Trip length in miles and in seconds, and the hour it started: log-scaled, then z-scored by Transform
# (both lengths have a long tail of a few very long trips).
FEATURE_KEYS = ["trip_miles", "trip_seconds", "trip_start_hour"]
LOG_SCALED_KEYS = ["trip_miles", "trip_seconds"]

# The label: the fare in dollars, a number (a regression), which a serving request never has.
FARE_KEY = "fare"
LABEL_SOURCE_KEYS = [FARE_KEY]


def transformed_name(key: str) -> str:
    """Name of a feature after Transform, so raw and transformed tensors never collide."""
    return key + "_xf"


# The label as Transform writes it.
LABEL_KEY = transformed_name(FARE_KEY)
