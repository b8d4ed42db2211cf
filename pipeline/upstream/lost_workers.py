"""A Beam worker process that dies fails its bundle instead of leaving the runner waiting forever.

Under the multi_processing profile Beam's runner starts each worker process from a thread
(`SubprocessSdkWorkerHandler.start_worker`) and sends it bundles over gRPC. When the process dies (the
kernel's out-of-memory killer, a kill -9), the thread raises, but nothing tells the runner's main thread,
which waits for the bundle's answer: it fails only if it was also reading the bundle's output, and
otherwise waits forever (apache/beam#19674). Beam's Docker worker handler does the missing step when its
container stops: it aborts the connection's pending instructions with the error. This does the same for
a worker process, so the component fails with "Worker subprocess exited with return code N", which the run
explains (pipeline/beam/worker_loss.py).
"""

from __future__ import annotations

import threading

from apache_beam.runners.portability.fn_api_runner import worker_handlers


def install() -> None:
    """Put it in place; calling it again changes nothing."""
    worker_handlers.SubprocessSdkWorkerHandler.start_worker = _start_worker


def _start_worker(self) -> None:
    """Beam 2.60's start_worker, with the worker process run by a thread that aborts the worker's pending
    instructions when the process exits with a failure (as Beam's Docker handler does for a container)."""
    # Imported here as Beam's start_worker does: local_job_service imports the FnApiRunner, a cycle at load.
    from apache_beam.runners.portability import local_job_service  # noqa: PLC0415

    self.worker = local_job_service.SubprocessSdkWorker(
        self._worker_command_line, self.control_address, self.provision_info, self.worker_id)

    def run() -> None:
        try:
            self.worker.run()
        except Exception as error:
            self.control_conn.abort(error)
            raise

    self.worker_thread = threading.Thread(name="run_worker", target=run)
    self.worker_thread.start()
