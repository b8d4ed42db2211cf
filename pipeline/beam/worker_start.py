"""Imported by each Beam worker process as it starts (`--beam_plugins`, which the multi_processing and the
remote profiles pass).

- The worker's warnings and the errors Python ignores go, as log records, to the run's process and
  through its handlers (pipeline/logs.py), instead of straight onto the console the worker shares with
  the run.
- Once the worker imports TFMA (the Evaluator's workers do, to compute its metrics), TFMA's per-example
  metric inputs take pipeline/upstream/metric_inputs.py's path (through pipeline/upstream's version
  guard, as in every process). Importing that module here would load TFMA
  into every component's workers, seconds of start-up each for the many that compute no metrics.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from pipeline import logs, upstream

logs.configure_beam_worker()

_TFMA = "tensorflow_model_analysis"


class _AfterTfmaImport(importlib.abc.MetaPathFinder):
    """Finds TFMA's package as usual, and installs metric_inputs once the package has run."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TFMA:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run_package = spec.loader.exec_module

        def exec_module(module):
            run_package(module)
            _install_metric_inputs()

        spec.loader.exec_module = exec_module
        return spec


def _install_metric_inputs() -> None:
    # Only once TFMA is loaded: the patch imports it.
    upstream.install("metric_inputs")


if _TFMA in sys.modules:
    _install_metric_inputs()
else:
    sys.meta_path.insert(0, _AfterTfmaImport())
