"""Which run `pipeline runs` and `report latest` call newest, on a real ML Metadata store (in memory) that
holds runs started within one millisecond, named as a clock stepped back would name them."""

from __future__ import annotations

from pipeline.governance import runs
from pipeline.metadata import run_summary
from tests.pipeline.metadata.test_run_summary import store_with_runs

# Names that sort backwards: each run started after the clock stepped back an hour.
NAMES = [f"2026-12-06T{hour:02d}:00:00.000000" for hour in (23, 22, 21, 20, 19, 18)]


def test_the_run_started_last_is_newest_whatever_its_name_and_time():
    # Written as fast as MLMD takes them: most runs share their creation millisecond with another, so
    # only MLMD's ids say which came first.
    store, _ = store_with_runs(NAMES)
    listed = runs.list_runs(store, "p")
    assert [run.name for run in listed] == NAMES[::-1]
    assert runs.find_run(store, "p", "latest").name == NAMES[-1]
    assert run_summary.latest_run_context(store, "p").name == NAMES[-1]
