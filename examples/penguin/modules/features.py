"""The one source of the penguin task's feature names and label, shared by preprocessing and the model."""

# Four body measurements, already scaled to [0, 1] in the data; z-scored by Transform.
FEATURE_KEYS = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]

# The raw label column: the species as an id, 0, 1 or 2.
SPECIES_KEY = "species"
LABEL_SOURCE_KEYS = [SPECIES_KEY]
CLASS_NAMES = ("Adelie", "Chinstrap", "Gentoo")


def transformed_name(key: str) -> str:
    """Name of a feature after Transform, so raw and transformed tensors never collide."""
    return key + "_xf"


# The label as Transform writes it.
LABEL_KEY = transformed_name(SPECIES_KEY)
