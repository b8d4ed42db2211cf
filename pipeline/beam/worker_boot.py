"""Starts one Beam SDK worker as the SDK container's boot does, for a worker pool that runs outside a container.

Beam's Python worker pool (`python -m apache_beam.runners.worker.worker_pool_main`) starts its workers
in-line, without the job's pipeline options: they unpickle and pickle again with dill, whatever
--pickle_library says, and dill's round trip drops the module globals of functions shipped by value
(Transform fails with `NameError: name 'tf' is not defined`). Given to the pool as its
--container_executable, this asks the runner's provision service for the job's options, as the boot of
Beam's SDK container does, and runs Beam's `sdk_worker_main` with them, in this process: one interpreter
start fewer, and the project's import-time savings (pipeline/__init__.py) apply, seconds of CPU per
worker. Unlike that boot, it installs no staged package: the pool's environment already holds
requirements.lock and this project.

    python -m apache_beam.runners.worker.worker_pool_main --service_port 50000 \\
        --container_executable .venv/bin/pipeline-beam-worker
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import grpc
from apache_beam.portability.api import (
    beam_provision_api_pb2,
    beam_provision_api_pb2_grpc,
    endpoints_pb2,
)
from apache_beam.runners.worker import sdk_worker_main
from google.protobuf import json_format, text_format


def provision_info(provision_endpoint: str, worker_id: str) -> beam_provision_api_pb2.ProvisionInfo:
    """What the runner tells this worker: the job's pipeline options and the endpoints to serve."""
    with grpc.insecure_channel(provision_endpoint) as channel:
        response = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", worker_id)], timeout=60
        )
    return response.info


def _descriptor(url: str) -> str:
    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))


def worker_environment(
    info: beam_provision_api_pb2.ProvisionInfo, args: argparse.Namespace, environ: dict[str, str]
) -> dict[str, str]:
    """`environ` with the variables `sdk_worker_main` reads, set as the SDK container's boot sets them."""
    env = {
        **environ,
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "SEMI_PERSISTENT_DIRECTORY": args.semi_persistent_directory,
        "CONTROL_API_SERVICE_DESCRIPTOR": _descriptor(args.control_endpoint or info.control_endpoint.url),
        "LOGGING_API_SERVICE_DESCRIPTOR": _descriptor(args.logging_endpoint or info.logging_endpoint.url),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if info.HasField("status_endpoint"):
        env["STATUS_API_SERVICE_DESCRIPTOR"] = _descriptor(info.status_endpoint.url)
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The container contract: what the worker pool passes to its --container_executable.
    parser.add_argument("--id", required=True)
    parser.add_argument("--provision_endpoint", required=True)
    parser.add_argument("--control_endpoint", default="")
    parser.add_argument("--logging_endpoint", default="")
    parser.add_argument("--artifact_endpoint", default="")
    parser.add_argument("--semi_persistent_directory", default=tempfile.gettempdir())
    args, _ = parser.parse_known_args(argv)
    os.environ.update(worker_environment(provision_info(args.provision_endpoint, args.id), args, {}))
    # The pool keeps its workers' stdout in a pipe it never reads: a worker that prints enough would block.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
