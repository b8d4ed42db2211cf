"""A Beam plugin (`--beam_plugins`) for the CsvExampleGen tests: a worker process that imports it cannot
import TensorFlow or TFX, so a run whose workers load either fails."""

import importlib.abc
import sys


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.partition(".")[0] in ("tensorflow", "tfx"):
            raise ImportError(f"this Beam worker may not import {fullname}")
        return None


sys.meta_path.insert(0, _Refuse())
