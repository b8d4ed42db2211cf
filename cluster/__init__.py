"""Local Apache Flink and Spark clusters on loopback for the pipeline's `flink` and `spark` Beam profiles:
pinned downloads (artifacts.lock), processes started and stopped by id, their status (`python -m cluster`)."""
