"""The worker boot's contract with Beam's SDK worker. (Workers it starts for real: as each Flink
TaskManager's PROCESS workers in tests/cluster/test_flink.py, and as an EXTERNAL worker pool's beside a
Spark cluster in tests/cluster/test_spark.py.)"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from apache_beam.portability.api import beam_provision_api_pb2
from google.protobuf import struct_pb2

from pipeline.beam import worker_boot


def test_worker_environment_gives_beam_the_jobs_options():
    """What `sdk_worker_main` reads, checked by Beam's own start-up: the job's pickle library and
    endpoints reach the worker (the worker pool's in-line workers get none of them)."""
    options = struct_pb2.Struct()
    options.update({"beam:option:pickle_library:v1": "cloudpickle", "beam:option:labels:v1": ["a=b"]})
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=options, runner_capabilities=["beam:c:1"])
    info.logging_endpoint.url = "localhost:2"
    args = argparse.Namespace(id="worker_7", control_endpoint="localhost:1", logging_endpoint="",
                              semi_persistent_directory="/tmp")
    env = worker_boot.worker_environment(info, args, {"PATH": os.environ["PATH"]})
    assert env["WORKER_ID"] == "worker_7" and env["RUNNER_CAPABILITIES"] == "beam:c:1"
    assert "STATUS_API_SERVICE_DESCRIPTOR" not in env
    # Beam's harness set up from this environment (dry run: nothing connects), in a process of its own
    # since it sets the process's pickler.
    env.pop("LOGGING_API_SERVICE_DESCRIPTOR")  # Its handler would try to connect.
    probe = (
        "from apache_beam.runners.worker import sdk_worker_main as m; import os\n"
        "from apache_beam.internal import pickler\n"
        "m.create_harness(os.environ, dry_run=True)\n"
        "print(pickler.desired_pickle_lib.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "apache_beam.internal.cloudpickle_pickler"
    assert json.loads(env["PIPELINE_OPTIONS"])["beam:option:labels:v1"] == ["a=b"]
