"""What this project changes inside upstream libraries (Beam, dill, objsize, tfx_bsl, TFT, TFMA), in one place.

Each patch is a module here, listed in PATCHES: what it replaces, why, the test that holds it to the
library's own results, and when it can go. Importing the pipeline's definition or its components patches
nothing (of the patches, only metric_inputs installs itself on import: a Beam worker imports it when it
unpickles a combiner that holds its function); a process
that runs components calls `install()` (the runners before a run, the Airflow and Luigi tasks before a node,
the notebook, Beam's workers through their start-up plugin, the executors that need a patch), and each
patch goes in through the version guard: a patch was checked against the library versions in VERIFIED
only, so on any other version a speed-up steps aside with one warning line (the library's own code runs,
slower), and a patch the pipeline cannot run without stops the run, naming the library and both versions.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging

from pipeline.configs import ConfigError

_log = logging.getLogger(__name__)

# The versions every patch was verified on (requirements.lock): their parity tests pass on these.
VERIFIED = {
    "apache-beam": "2.60.0",
    "dill": "0.3.1.1",
    "objsize": "0.7.1",
    "tfx-bsl": "1.16.1",
    "tensorflow-transform": "1.16.0",
    "tensorflow-model-analysis": "0.47.1",
}


@dataclasses.dataclass(frozen=True)
class Patch:
    name: str  # its module in this folder
    libraries: tuple[str, ...]  # the distributions whose internals it replaces
    replaces: str
    why: str
    parity_test: str
    drop_when: str
    needed: bool = False  # the pipeline cannot run without it; else a speed-up
    on_demand: bool = False  # installed by whoever uses it, not by install() with no names


PATCHES = (
    Patch("overheads", ("apache-beam", "dill", "objsize"),
          "Beam's `userstate.get_dofn_specs`, dill's `_trace`, objsize's module-globals setting, "
          "the state sampler's default period",
          "fixed costs Beam pays on every ParDo, pickle, state-cache read and bundle in an in-process run",
          "tests/pipeline/upstream/test_overheads.py",
          "Beam memoizes DoFn specs and stops calling setLevel per pickle"),
    Patch("tfrecord_source", ("apache-beam", "tfx-bsl"),
          "tfx_bsl's `TFExampleRecord.BeamSource`",
          "tf.Example files read a batch at a time instead of a Beam element per record",
          "tests/pipeline/upstream/test_tfrecord_source.py",
          "tfx_bsl reads TFRecords in batches (or the pipeline keeps the Parquet payload only)"),
    Patch("metric_inputs", ("tensorflow-model-analysis",),
          "TFMA's `metric_util.to_label_prediction_example_weight`",
          "a binary classifier's example answered without TFMA's general path",
          "tests/pipeline/upstream/test_metric_inputs.py",
          "TFMA computes metric inputs a batch at a time"),
    Patch("parquet_source", ("tfx-bsl",),
          "tfx_bsl's `ParquetTFXIO` (its BeamSource's types, `TensorFlowDataset`, `RecordBatches`)",
          "Transform and the Trainer read the Parquet examples; tfx_bsl 1.16's reader raises "
          "NotImplementedError for the Trainer's dataset and passes the file's types, not the schema's",
          "tests/pipeline/upstream/test_parquet_source.py",
          "tfx_bsl ships a complete ParquetTFXIO", needed=True),
    Patch("vocabulary_counts", ("tensorflow-transform", "apache-beam"),
          "TFT's Beam implementation of `VocabularyAccumulate`",
          "frequency vocabularies counted a batch at a time instead of a Beam element per token",
          "tests/pipeline/upstream/test_vocabulary_counts.py",
          "TFT counts unweighted vocabularies per batch"),
    Patch("slice_groups", ("tensorflow-model-analysis", "apache-beam"),
          "TFMA's `_ComputationsCombineFn` (and its unbatch and slice extractors, where the eval config allows)",
          "TFMA's metrics fed groups of examples that share their slices instead of one example at a time",
          "tests/pipeline/upstream/test_slice_groups.py",
          "TFMA combines metrics per slice a batch at a time", on_demand=True),
    Patch("lost_workers", ("apache-beam",),
          "Beam's `SubprocessSdkWorkerHandler.start_worker`",
          "a multi_processing worker process that dies mid-bundle fails the bundle; Beam's runner otherwise "
          "waits for its answer forever (apache/beam#19674)",
          "tests/pipeline/upstream/test_lost_workers.py",
          "Beam aborts a dead worker process's instructions, as it does a stopped Docker container's"),
)
BY_NAME = {patch.name: patch for patch in PATCHES}


class UpstreamVersionError(ConfigError):
    """A patch the pipeline needs was not verified on the library version installed."""


_installed: set[str] = set()
_stepped_aside: set[str] = set()


def _installed_version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def mismatches(patch: Patch) -> list[tuple[str, str, str]]:
    """(library, verified, installed) for each library of the patch whose installed version differs."""
    found = []
    for library in patch.libraries:
        installed = _installed_version(library)
        if installed != VERIFIED[library]:
            found.append((library, VERIFIED[library], installed))
    return found


def usable(name: str) -> bool:
    """Whether the patch may go in here: True on the versions it was verified on. Otherwise a speed-up
    steps aside (False, with one warning line per process) and a needed patch raises UpstreamVersionError.
    Its module is imported only after this: patches reach into the libraries' internals."""
    patch = BY_NAME[name]
    if name in _installed:
        return True
    if name in _stepped_aside:
        return False
    different = mismatches(patch)
    if not different:
        return True
    versions = ", ".join(f"{lib} {found} (verified on {verified})" for lib, verified, found in different)
    if patch.needed:
        raise UpstreamVersionError(
            f"pipeline/upstream/{name}.py replaces {patch.replaces} and the pipeline needs it, but it was "
            f"verified on other versions than those installed: {versions}. Run {patch.parity_test} on them, "
            f"then update VERIFIED in pipeline/upstream/__init__.py"
        )
    _stepped_aside.add(name)
    _log.warning("pipeline/upstream/%s.py steps aside (the library's own code runs): %s", name, versions)
    return False


def install(*names: str) -> list[str]:
    """Put the named patches (with no name, every one not `on_demand`) in place in this process, each once
    and only where `usable`; returns the names now in place."""
    chosen = [BY_NAME[name] for name in names] if names else [p for p in PATCHES if not p.on_demand]
    for patch in chosen:
        if patch.name not in _installed and usable(patch.name):
            importlib.import_module(f"{__name__}.{patch.name}").install()
            _installed.add(patch.name)
    return [patch.name for patch in chosen if patch.name in _installed]
