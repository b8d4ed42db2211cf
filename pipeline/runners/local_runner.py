"""Runs the pipeline on TFX's local orchestrator: the default runner (one process, SQLite MLMD).

    python pipeline/runners/local_runner.py      # or: python -m pipeline.runners.local_runner
    python pipeline/runners/local_runner.py --validate-only   # the input check and the pipeline up to the data gate
    tfx pipeline create --engine local --pipeline_path pipeline/runners/local_runner.py
"""

from __future__ import annotations

import gc
import sys

if __name__ == "__main__":
    gc.disable()  # While TensorFlow, TFX and Beam load; lifecycle.main turns it back on and says why.

# isort: off
import pipeline  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline.metadata import run_summary  # noqa: E402
from pipeline.runners import lifecycle  # noqa: E402
# isort: on


def run(
    config: configs.PipelineConfig | None = None, stop_after: str | None = None
) -> run_summary.RunSummary | None:
    """Run the pipeline once (up to `stop_after`, if given) and print what it did; None when the run was
    only being compiled."""
    return lifecycle.run(LocalDagRunner(), "local", config, stop_after)


def main(argv: list[str] | None = None) -> int:
    args = lifecycle.parse_args(argv or [], __doc__.splitlines()[0])
    return lifecycle.main(lambda: run(stop_after=lifecycle.stop_after(args)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
