"""Beam's multi_processing runner with a worker process killed mid-bundle, in a stage that sends nothing
back to the runner: the pipeline fails at once with the worker's exit status (without the patch it waits
forever), and the run's explanation names the signal and the setting to change."""

from __future__ import annotations

import signal
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import configs, upstream
from pipeline.beam import worker_loss


class _DieOnce(beam.DoFn):
    """Kills its own worker process at the element given, the first time only (a marker file says so)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def process(self, element):
        import os  # noqa: PLC0415  (runs in the worker, where the module's globals are not shipped)
        import signal  # noqa: PLC0415

        if element == 7 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        yield element


def test_a_worker_killed_mid_bundle_is_named_with_its_signal_and_the_setting_to_change(tmp_path):
    config = configs.load_config(beam_profile="multi_processing", beam_direct_num_workers=2)
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    # The pipeline sends nothing back from the bundle the worker dies in: without the patch, Beam's runner
    # waits for that bundle's answer forever (the test's timeout fails it).
    assert upstream.install("lost_workers") == ["lost_workers"]
    with worker_loss.watching() as exits, pytest.raises(Exception) as raised:
        with beam.Pipeline(options=options) as p:
            _ = p | beam.Create(range(50)) | beam.Reshuffle() | beam.ParDo(_DieOnce(str(tmp_path / "died")))
    assert str(raised.value) == f"Worker subprocess exited with return code {128 + signal.SIGKILL}"
    deadline = time.monotonic() + 10  # The watching thread's hook runs as the error leaves it.
    while not exits and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exits == [128 + signal.SIGKILL]
    lost = worker_loss.explain(raised.value, config, ["StatisticsGen"], exits)
    assert str(lost) == (
        "StatisticsGen lost a Beam worker process mid-bundle (killed with SIGKILL, as the kernel's "
        "out-of-memory killer does; dmesg shows whether it did). Each of its 2 worker processes holds a share of "
        "the work in memory: run fewer, PIPELINE_BEAM_DIRECT_NUM_WORKERS=1 (now 2), or all in one process, "
        "PIPELINE_BEAM_PROFILE=in_memory; PIPELINE_RETRIES=1 runs the failed component again, the finished "
        "ones from the cache."
    )
    assert worker_loss.explain(RuntimeError("something else"), config, ["Transform"], exits) is None
