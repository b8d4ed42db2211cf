"""The names of pipeline runs, and the one clock they are read from.

A run's name is its `pipeline_run` context in ML Metadata: two runs with one name would be one run there,
their executions mixed. TFX's runners name a run by the clock alone (the local runner
`2026-12-06T20:01:12.205971`, the Beam runner `20261206-200156.873884`), so a clock stepped back (NTP, a
restored VM) can give a name already taken. The local, Beam and Luigi runners name their runs with
`new_run_id` (Airflow's run ids are Airflow's, unique per DAG): the local runner's form, with `_2`,
`_3`... added when the name is taken in the store or in this process. Which run
is newest is never read from names or times but from MLMD's ids, which grow with each write whatever the
clock does (pipeline/governance/runs.py).
"""

from __future__ import annotations

import datetime

from pipeline.configs import PipelineConfig
from pipeline.metadata.store import StoreMissing, open_store

RUN_CONTEXT_TYPE = "pipeline_run"
# Names given by this process: runs that have not reached the store yet keep theirs.
_issued: set[str] = set()


def now() -> datetime.datetime:
    """The time a run's name says it started: the only place run names read the clock."""
    return datetime.datetime.now()


def new_run_id(config: PipelineConfig | None = None) -> str:
    """A run name no run of `config`'s store (when it exists) and no earlier call in this process has."""
    base = now().isoformat(timespec="microseconds")
    store = None
    if config is not None:
        try:
            store = open_store(config)
        except StoreMissing:  # Nothing has run against it: every name is free.
            pass

    def taken(name: str) -> bool:
        return name in _issued or (
            store is not None and store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, name) is not None
        )

    name, number = base, 1
    while taken(name):
        number += 1
        name = f"{base}_{number}"
    _issued.add(name)
    return name
