"""The pipeline and its tasks as an installable package, so every runner, worker and notebook imports the same code.

Versions are pinned in requirements.lock, not here: install with `make install` (or
`pip install -r requirements.lock && pip install -e . --no-deps`).
"""

from setuptools import find_packages, setup

setup(
    name="tfx-reference-pipeline",
    version="0.1.0",
    description="A TFX reference pipeline: one definition, many runners, data gates and governance",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "modules", "modules.*", "examples", "examples.*"]),
    install_requires=["tfx==1.16.0", "tf-keras>=2.16,<2.17"],
    # Runs, lineage, rollback and run reports from the pipeline's ML Metadata store.
    # `taxi-pipeline` is the command's name from when the project knew only the taxi task.
    # `pipeline-beam-worker` starts one Beam worker for a worker pool outside a container (its
    # --container_executable; pipeline/beam/worker_boot.py).
    entry_points={
        "console_scripts": [
            "pipeline = pipeline.governance.cli:main",
            "taxi-pipeline = pipeline.governance.cli:main",
            "pipeline-beam-worker = pipeline.beam.worker_boot:main",
        ]
    },
)
