"""TensorBoard's own command, run where setuptools no longer ships `pkg_resources`.

TensorBoard 2.16 (the newest TensorFlow 2.16 accepts) finds its plugins and checks its data server's
version through `pkg_resources`, which setuptools dropped after 80 (the lock holds 84): its `tensorboard`
command then fails on import. Where the module is missing, the two calls TensorBoard makes are answered
from importlib.metadata and packaging, and TensorBoard's main runs unchanged. With setuptools pinned below
81 this does nothing.

    python -m pipeline.governance.tensorboard_server --logdir DIR [TensorBoard's options]
"""

from __future__ import annotations

import importlib.metadata
import sys
import types


class _EntryPoint:
    """What TensorBoard asks of a `pkg_resources` entry point: its name, and the object it names."""

    def __init__(self, entry_point: importlib.metadata.EntryPoint):
        self.name = entry_point.name
        self._entry_point = entry_point

    def resolve(self):
        return self._entry_point.load()

    load = resolve


def _pkg_resources() -> types.ModuleType:
    from packaging import version  # Only where pkg_resources is missing.

    module = types.ModuleType("pkg_resources", "iter_entry_points and parse_version, as TensorBoard calls them")
    module.iter_entry_points = lambda group, name=None: [
        _EntryPoint(e) for e in importlib.metadata.entry_points(group=group) if name is None or e.name == name
    ]
    module.parse_version = version.parse
    return module


def main(argv: list[str]) -> None:
    try:
        import pkg_resources  # noqa: F401  (setuptools before 81 ships it)
    except ImportError:
        sys.modules["pkg_resources"] = _pkg_resources()
    from tensorboard import main as tensorboard_main  # After the module above is in place.

    sys.argv = ["tensorboard", *argv]
    tensorboard_main.run_main()


if __name__ == "__main__":
    main(sys.argv[1:])
