"""A TFX reference pipeline: configuration, definition, components, guards and one runner per orchestrator."""

import functools
import importlib.metadata
import os

# TFX 1.16's Trainer breaks under Keras 3 ("`inputs` not connected to `outputs`"); tf-keras is the
# Keras 2 it was built for. Every entry point imports this package before TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ log level (read once, when TensorFlow loads) and warnings at import, here and in
# every process started from here: from PIPELINE_LOG_LEVEL, see pipeline/logs.py.
from pipeline import logs

logs.set_process_defaults()

# google-api-core asks importlib.metadata which distribution each Google client comes from at import,
# scanning every installed package's metadata each time, a noticeable part of each run's start-up
# (Beam imports the BigQuery client; bench/README.md). The installed set does not change while a process runs.
importlib.metadata.packages_distributions = functools.cache(importlib.metadata.packages_distributions)
