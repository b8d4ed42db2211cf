"""The Beam running mode chosen by input size, the TFX source package it avoids, and the in-process
overheads the package trims (objsize's module scan, DoFn introspection, dill's logger resets, the GC
during start-up, the state sampler's period)."""

from __future__ import annotations

import gc
import logging

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from dill import _dill

from pipeline import configs, upstream
from pipeline.upstream import overheads
from pipeline.runners import lifecycle

upstream.install("overheads")  # as the runners do before a run


def test_state_cache_weighs_values_as_before_without_the_module_scan():
    """beam_overheads turns off objsize's scan of module globals; Beam's weights must not move."""
    import numpy as np
    import objsize
    import pyarrow as pa
    from apache_beam.runners.worker import statecache

    assert objsize.default_settings.exclude_modules_globals is False
    values = [
        [1, 2, 3],
        [np.arange(1000.0)],
        {"a": "x" * 100, "b": [np.zeros(10)]},
        [pa.record_batch([pa.array([1, 2, 3])], names=["x"])],
        [statecache, len, configs.load_config],
    ]
    for value in values:
        with_scan = objsize.get_deep_size(
            value,
            get_size_func=statecache._size_func,
            get_referents_func=statecache._get_referents_func,
            filter_func=statecache._filter_func,
            exclude_modules_globals=True,
        )
        assert statecache.get_deep_size(value) == with_scan


class _Stateless(beam.DoFn):
    def process(self, element):
        yield element


class _RunningCount(beam.DoFn):
    COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())
    FLUSH = userstate.TimerSpec("flush", userstate.TimeDomain.WATERMARK)

    def process(self, element, count=beam.DoFn.StateParam(COUNT), flush=beam.DoFn.TimerParam(FLUSH)):
        key, _ = element
        total = (count.read() or 0) + 1
        count.write(total)
        yield key, total

    @userstate.on_timer(FLUSH)
    def on_flush(self):
        pass


class _Tally:
    TALLY = userstate.BagStateSpec("tally", VarIntCoder())

    def add(self, element, tally=beam.DoFn.StateParam(TALLY)):
        yield element


class _TwoCounts(beam.DoFn):
    A = userstate.ReadModifyWriteStateSpec("same", VarIntCoder())
    B = userstate.ReadModifyWriteStateSpec("same", VarIntCoder())

    def process(self, element, a=beam.DoFn.StateParam(A), b=beam.DoFn.StateParam(B)):
        yield element


def _specs_by_name(specs):
    return tuple(sorted(spec.name for spec in group) for group in specs)


def test_dofn_specs_are_remembered_and_answer_as_beam_does():
    assert userstate.get_dofn_specs is overheads.get_dofn_specs  # installed by pipeline/pipeline.py
    beam_answer = overheads._beam_get_dofn_specs
    with_bound_method = _Stateless()
    with_bound_method.extra = _Tally().add  # an instance attribute holding another object's state
    cases = [
        _Stateless(),
        _RunningCount(),
        with_bound_method,
        beam.FlatMap(_Tally().add).fn,  # arguments from Beam's _inspect_process hook: never remembered
    ]
    for dofn in cases * 2:  # the second round is answered from the memo
        assert overheads.get_dofn_specs(dofn) == beam_answer(dofn)
    assert _specs_by_name(overheads.get_dofn_specs(_RunningCount())) == (["count"], ["ts-flush"])
    assert _specs_by_name(overheads.get_dofn_specs(with_bound_method)) == (["tally"], [])
    assert _specs_by_name(overheads.get_dofn_specs(_Stateless())) == ([], [])
    assert _specs_by_name(overheads.get_dofn_specs(cases[3])) == (["tally"], [])
    assert overheads._methods_key(cases[3]) is None
    assert overheads._methods_key(_Stateless()) == overheads._methods_key(_Stateless())
    assert overheads._methods_key(_Stateless()) in overheads._dofn_specs


def test_stateful_dofns_run_and_are_validated_with_the_memo():
    with beam.Pipeline() as p:
        counts = (
            p
            | beam.Create([("a", 1), ("b", 1), ("a", 1), ("a", 1)])
            | beam.ParDo(_RunningCount())
            | beam.combiners.Top.PerKey(1)  # each key's last running count
        )
        assert_that(counts, equal_to([("a", [3]), ("b", [1])]))
    for _ in range(2):
        with pytest.raises(ValueError, match="duplicate process method parameters"):
            beam.ParDo(_TwoCounts())


def test_runners_turn_the_collector_back_on():
    """The runner files import with the GC off; lifecycle.main must leave it on for the run."""
    gc.disable()
    try:
        during_run = []
        assert lifecycle.main(lambda: during_run.append(gc.isenabled())) == 0
        assert during_run == [True]
    finally:
        gc.enable()


def test_dill_trace_sets_the_level_only_when_it_changes():
    """Beam calls dill's _trace around every (un)pickle; a setLevel there empties every logger's cache."""
    assert _dill._trace is overheads._dill_trace
    dill_log, other = logging.getLogger("dill"), logging.getLogger("tests.beam_overheads")
    _dill._trace(False)
    other.isEnabledFor(logging.INFO)  # fills `other`'s level cache
    _dill._trace(False)
    assert other._cache  # the level did not change, so nothing was emptied
    assert dill_log.getEffectiveLevel() == logging.WARN
    try:
        _dill._trace(True)
        assert dill_log.getEffectiveLevel() == logging.INFO
        assert not other._cache
    finally:
        _dill._trace(False)
    assert dill_log.getEffectiveLevel() == logging.WARN


def test_bundles_are_sampled_with_the_shorter_period_and_still_timed():
    """A bundle processor's state sampler sleeps at most STATE_SAMPLING_PERIOD_MS (the end of a bundle
    waits for its sleep); it still times each step: a slow step's msecs come out as they slept."""
    import time

    from apache_beam.runners.worker import statesampler
    from apache_beam.utils.counters import CounterFactory

    assert statesampler.StateSampler("stage", CounterFactory()).sampling_period_ms == 20
    assert statesampler.StateSampler("stage", CounterFactory(), sampling_period_ms=150).sampling_period_ms == 150

    def slow(x):
        time.sleep(0.05)
        return x

    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create(range(8)) | "Slow" >> beam.Map(slow)
    result = pipeline.run()
    result.wait_until_finish()
    msecs = [
        VarIntCoder().decode(info.payload)
        for info in result.monitoring_infos()
        if info.urn.endswith("process_bundle_msecs:v1") and info.labels.get("PTRANSFORM") == "Slow"
    ]
    assert len(msecs) == 1 and 300 <= msecs[0] <= 2000
