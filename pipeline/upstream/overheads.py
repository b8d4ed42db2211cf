"""Fixed costs Beam pays over and over when it runs a pipeline in this process, cut without changing
what it computes. On a small input such as the shipped sample an in-process run is mostly such costs
(bench/README.md).

Each is a setting or a memo around one Beam (or dill, or objsize) function, put in place by
`pipeline.upstream.install()` in every process that runs the components' Beam work in-process (the local
and Beam runners, the notebook, Airflow's and Luigi's tasks). Beam's own workers (the multi_processing
profile, Dataflow, Flink, Spark) run unchanged.
"""

from __future__ import annotations

import logging
import threading
import types

import objsize
from apache_beam.runners.worker import statesampler
from apache_beam.transforms import userstate
from dill import _dill  # Beam's `dill.dill`

# Classes pickled by value (defined in a notebook's __main__) come back as new classes on every unpickle
# and never hit again: the DoFn memo is emptied when it grows past this, rather than grow with every
# bundle.
MAX_DOFN_ENTRIES = 4096

# The longest a bundle processor's state sampler sleeps between samples (Beam: 200 ms). Its sleeps grow
# from 2 ms by a fifth each, and the end of every bundle waits for the current one to run out: on average
# about a twelfth of the bundle's time, up to 200 ms (about 1 s of a run's main thread on the sample).
STATE_SAMPLING_PERIOD_MS = 20

_beam_get_dofn_specs = userstate.get_dofn_specs
_dofn_specs: dict[tuple, tuple[frozenset, frozenset]] = {}
_lock = threading.Lock()
_dill_log = logging.getLogger("dill")


def _methods_key(dofn) -> tuple | None:
    """The DoFn's class and the functions behind its bound methods; None when those do not decide."""
    methods = []
    for name in dir(dofn):
        value = getattr(dofn, name, None)
        if isinstance(value, types.MethodType):
            if hasattr(dofn, f"_inspect_{name}"):
                return None
            methods.append((name, value.__func__))
    key = (type(dofn), tuple(methods))
    try:
        hash(key)
    except TypeError:  # a callable object behind a method, without a hash
        return None
    return key


def get_dofn_specs(dofn) -> tuple[set, set]:
    """Beam's `userstate.get_dofn_specs` (state specs, timer specs), answered once per kind of DoFn.

    Beam asks whenever it constructs a ParDo or builds a bundle processor, and answers by running
    `inspect.signature` over every method the DoFn has, again and again for the same few kinds of DoFn
    (bench/README.md). The answer comes only from the functions behind the DoFn's bound
    methods (state and timers are declared as their default arguments), so it is remembered under
    them. A DoFn whose method arguments come from a hook instead (`_inspect_<method>`: Beam's wrappers
    around another callable) is asked every time; errors are raised every time.
    """
    key = _methods_key(dofn)
    specs = _dofn_specs.get(key) if key is not None else None
    if specs is None:
        state_specs, timer_specs = _beam_get_dofn_specs(dofn)
        specs = frozenset(state_specs), frozenset(timer_specs)
        if key is not None:
            with _lock:
                if len(_dofn_specs) >= MAX_DOFN_ENTRIES:
                    _dofn_specs.clear()
                _dofn_specs[key] = specs
    return set(specs[0]), set(specs[1])


def _dill_trace(boolean: bool) -> None:
    """dill's `_trace`, which Beam calls around every pickle and unpickle, minus the redundant setLevel.

    `Logger.setLevel` empties the level cache of every logger in the process (thousands once TensorFlow
    is loaded) even when the level does not change, and Beam pickles often (bench/README.md).
    """
    level = logging.INFO if boolean else logging.WARN
    if _dill_log.level != level:
        _dill_log.setLevel(level)


def install() -> None:
    """Put the four in place; calling it again changes nothing."""
    # Beam's state cache weighs each value it caches (side inputs, on every read) with objsize, which
    # first lists every loaded module's globals to leave them out, which is slow once TensorFlow, TFT
    # and TFMA are loaded (bench/README.md). Beam's filter already stops at modules,
    # functions and types, the only ways to reach those globals, so the weights come out the same.
    objsize.default_settings = objsize.default_settings.replace(exclude_modules_globals=False)
    # Beam's callers (`is_stateful_dofn`, ParDo, bundle processors) look the function up on the module.
    userstate.get_dofn_specs = get_dofn_specs
    _dill._trace = _dill_trace
    # Bundle processors make their sampler with the default period (bundle_processor.BundleProcessor);
    # the sampled times feed Beam's progress reports and metrics, which a local run does not read.
    statesampler.StateSampler.__init__.__defaults__ = (STATE_SAMPLING_PERIOD_MS,)
