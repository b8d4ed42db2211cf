"""The order the workers take modules in (tests/conftest.py): what keeps the suite inside its budget."""

from __future__ import annotations

from tests.conftest import PROJECT_ROOT, SLOWEST_FIRST


def test_xdist_keeps_the_collection_order(pytestconfig):
    # Its default reorders modules by their number of tests, which put the long set-ups last.
    assert pytestconfig.getoption("loadscopereorder") is False


def test_the_slowest_modules_come_first_then_real_runs_then_unit_tests(request):
    """Checked on whatever this session collected (the whole suite under `make test`)."""
    for module in SLOWEST_FIRST:
        assert (PROJECT_ROOT / module).is_file(), f"{module} is named in SLOWEST_FIRST but does not exist"
    items = request.session.items
    modules = list(dict.fromkeys(item.location[0] for item in items))
    collected = [module for module in SLOWEST_FIRST if module in modules]
    assert modules[: len(collected)] == collected
    with_real_runs = {item.location[0] for item in items if item.get_closest_marker("e2e")}
    heavy = [module in with_real_runs for module in modules]
    assert heavy == sorted(heavy, reverse=True), "a module of unit tests comes before one with real runs"
