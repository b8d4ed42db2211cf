"""Run names stay distinct when the clock repeats itself: two runs in one microsecond, or a clock stepped
back onto a run already in the store (faked through run_names.now, the one clock run names read; a real
run with the clock stepped back is in tests/pipeline/guards/test_recovery.py)."""

from __future__ import annotations

import datetime

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.metadata import run_names
from pipeline.metadata.store import connection_config

INSTANT = datetime.datetime(2026, 12, 6, 20, 1, 12)


def test_runs_named_in_the_same_microsecond_get_distinct_names(monkeypatch):
    monkeypatch.setattr(run_names, "now", lambda: INSTANT)
    first, second = run_names.new_run_id(), run_names.new_run_id()
    # The local runner's form, with the microseconds even when they are 0.
    assert first.startswith("2026-12-06T20:01:12.000000")
    assert second != first and second.startswith("2026-12-06T20:01:12.000000_")


def test_a_clock_stepped_back_onto_a_recorded_run_gets_a_new_name(monkeypatch, tmp_path):
    config = configs.load_config(**configs.env_overrides({"PIPELINE_OUTPUT_ROOT": str(tmp_path)}))
    monkeypatch.setattr(run_names, "now", lambda: INSTANT.replace(microsecond=205971))
    store = metadata_store.MetadataStore(connection_config(config))  # creates the store, as a run does
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name=run_names.RUN_CONTEXT_TYPE))
    recorded = "2026-12-06T20:01:12.205971"
    store.put_contexts([
        metadata_store_pb2.Context(type_id=run_type, name=name) for name in (recorded, f"{recorded}_2")
    ])
    assert run_names.new_run_id(config) == f"{recorded}_3"


def test_a_store_not_created_yet_takes_any_name(monkeypatch, tmp_path):
    config = configs.load_config(**configs.env_overrides({"PIPELINE_OUTPUT_ROOT": str(tmp_path)}))
    monkeypatch.setattr(run_names, "now", lambda: INSTANT.replace(year=2031))
    assert run_names.new_run_id(config) == "2031-12-06T20:01:12.000000"
