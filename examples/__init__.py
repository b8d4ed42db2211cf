"""Tasks beside the default one (modules/, schema/, data/): each folder is laid out as a fork would be."""
