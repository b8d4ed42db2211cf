"""The Beam args of the data components: the configured profile filled in from settings, or (profile
`auto`) the in-memory runner or a worker per core by the size of the run's input."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import urllib.parse
import urllib.request

import grpc

from pipeline import inputs
from pipeline.configs import (
    BEAM_PROFILES,
    ENV_PREFIX,
    JOB_SERVICE_PROFILES,
    LOCAL_BEAM_PROFILES,
    PROJECT_ROOT,
    ConfigError,
    PipelineConfig,
)

# Inputs up to this size run in one process on Beam's in-memory DirectRunner; larger ones get a worker
# process per core, which pays its start-up only where there is enough data to share (bench/README.md).
MULTI_PROCESSING_MIN_INPUT_BYTES = 64 * 2**20
# How long a run waits for a remote profile's job service (and Flink's JobManager) to answer before
# refusing to start.
ENGINE_CONNECT_TIMEOUT_S = 20.0


def resolved_beam_profile(config: PipelineConfig, run_input: inputs.RunInput | None = None) -> str:
    """beam_profile, with auto made in_memory or multi_processing by the size of the local input."""
    if config.beam_profile != "auto":
        return config.beam_profile
    if not inputs.is_local(config):
        return "in_memory"
    if run_input is None:
        try:
            run_input = inputs.resolve_for(config)
        except ConfigError:  # No input yet: the run's pre-flight check says so; compiling goes on.
            return "in_memory"
    if inputs.local_bytes(run_input) >= MULTI_PROCESSING_MIN_INPUT_BYTES:
        return "multi_processing"
    return "in_memory"


def evaluator_beam_args(config: PipelineConfig, run_input: inputs.RunInput | None = None) -> list[str]:
    """Beam args the Evaluator adds to the pipeline's (TFX puts a component's after them, so they win):
    under `auto`, the profile for the input the Evaluator reads. That is the eval split, which
    max_eval_rows keeps near 100k rows however large the input: in one process it evaluates faster than
    with a worker per core, which each load the models and TFMA before any work (bench/README.md)."""
    if config.beam_profile != "auto" or config.beam_pipeline_args or not inputs.is_local(config):
        return []
    if run_input is None:
        try:
            run_input = inputs.resolve_for(config)
        except ConfigError:  # No input yet: the run's pre-flight check says so; compiling goes on.
            return []
    if resolved_beam_profile(config, run_input) != "multi_processing":
        return []
    train, evaluation = inputs.split_hash_buckets(config, run_input)
    if inputs.local_bytes(run_input) * evaluation / (train + evaluation) >= MULTI_PROCESSING_MIN_INPUT_BYTES:
        return []
    return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def beam_args(config: PipelineConfig, run_input: inputs.RunInput | None = None) -> list[str]:
    """The data components' Beam args: the profile's, filled in from config, then beam_pipeline_args."""
    values = dataclasses.asdict(config)
    args = []
    for template in BEAM_PROFILES[resolved_beam_profile(config, run_input)]:
        for name in re.findall(r"{(\w+)}", template):
            if values[name] == "":
                raise ConfigError(
                    f"beam_profile {config.beam_profile!r} needs {name} (set {ENV_PREFIX}{name.upper()})"
                )
        args.append(template.format(**values))
    if config.beam_profile not in LOCAL_BEAM_PROFILES:
        args += _worker_args(config)
    return args + list(config.beam_pipeline_args)


def job_name_args(config: PipelineConfig, component_id: str) -> list[str]:
    """Under a profile with a job service, a component's Beam job named after the pipeline and the
    component (`<pipeline>-transform`), as Flink's job list and Spark's applications show it. The same
    name every run: a component's Beam args are part of its cache key."""
    if config.beam_profile not in JOB_SERVICE_PROFILES:
        return []
    return [f"--job_name={re.sub(r'[^a-z0-9-]+', '-', f'{config.pipeline_name}-{component_id}'.lower())}"]


# What workers of a prepared environment install: nothing (the file says why).
PREPARED_WORKERS_REQUIREMENTS = PROJECT_ROOT / "pipeline" / "beam" / "prepared_workers.txt"
# Environment types whose workers run somewhere you installed (a worker pool, the machine's boot
# command), so the lock is not installed at start-up; each needs its --environment_config.
_PREPARED_ENVIRONMENTS = {
    "EXTERNAL": "the worker pool's host:port",
    "PROCESS": 'the boot command as JSON, {"command": "/opt/apache/beam/boot"}',
}


def _worker_args(config: PipelineConfig) -> list[str]:
    """How the project reaches remote workers, one way for every remote profile: the functions of the
    module files by value; the project as the package setup.py builds and the locked dependencies from the
    worker image or from the lock installed at start-up, or, for workers you run (EXTERNAL, PROCESS),
    already in their environment."""
    # The worker start-up local workers get too (pipeline/beam/worker_start.py): TFMA's metric inputs
    # computed as metric_inputs.py does, the same metrics a bundle faster.
    args = ["--pickle_library=cloudpickle", "--beam_plugins=pipeline.beam.worker_start"]
    package = f"--setup_file={PROJECT_ROOT / 'setup.py'}"
    image = config.beam_sdk_container_image
    if config.beam_profile == "dataflow":
        return args + [package, f"--sdk_container_image={image}" if image else _requirements_arg()]
    environment_type = config.beam_environment_type
    environment_config = config.beam_environment_config
    if environment_type in _PREPARED_ENVIRONMENTS:
        if not environment_config:
            raise ConfigError(
                f"beam_environment_type {environment_type} needs beam_environment_config, "
                f"{_PREPARED_ENVIRONMENTS[environment_type]} (set {ENV_PREFIX}BEAM_ENVIRONMENT_CONFIG)"
            )
        # Nothing to ship or install, and nothing to build: TFX builds a package of TFX itself for the
        # workers when the args name no dependency (the `tfx_ephemeral` of tensorflow/tfx#3435), and Beam
        # builds setup.py's in the checkout for every component, where two runs at once collide.
        args += [f"--requirements_file={PREPARED_WORKERS_REQUIREMENTS}", "--requirements_cache=skip"]
    else:
        args.append(package)
    if environment_type == "DOCKER":
        environment_config = environment_config or image
        if not environment_config:
            args.append(_requirements_arg())
    if environment_config:
        args.append(f"--environment_config={environment_config}")
    return args


def _requirements_arg() -> str:
    return f"--requirements_file={PROJECT_ROOT / 'requirements.lock'}"


def check_engine(config: PipelineConfig, timeout_s: float = ENGINE_CONNECT_TIMEOUT_S) -> None:
    """The profile's engine answers, or a one-line error naming the address that does not.

    Beam waits on a job service as long as a job may run (beam_job_server_timeout_s), and Beam's Flink job
    server retries a JobManager that is down for minutes: without this check a wrong address or a cluster
    that is down would hang the run, then fail deep inside a component.
    """
    if config.beam_profile not in JOB_SERVICE_PROFILES:
        return
    if config.beam_profile == "flink":
        _check_flink_jobmanager(config.beam_cluster_master, timeout_s)
    elif config.beam_profile == "spark" and config.beam_cluster_master:
        _check_spark_master(config.beam_cluster_master, timeout_s)
    endpoint = config.beam_job_endpoint
    if endpoint == "embed":  # Beam starts a job service in-process.
        return
    channel = grpc.insecure_channel(endpoint)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise ConfigError(
            f"no Beam job service answers at {endpoint} within {timeout_s:.0f} s "
            f"(beam_job_endpoint, set {ENV_PREFIX}BEAM_JOB_ENDPOINT)"
        ) from None
    finally:
        channel.close()


def _check_flink_jobmanager(master: str, timeout_s: float) -> None:
    url = (master if re.match(r"https?://", master) else f"http://{master}").rstrip("/") + "/overview"
    where = f"the Flink JobManager at {master} (beam_cluster_master, set {ENV_PREFIX}BEAM_CLUSTER_MASTER)"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            overview = json.load(response)
    except (OSError, ValueError) as error:  # Refused, unresolvable, timed out, or not Flink's REST API.
        raise ConfigError(f"{where} does not answer: {getattr(error, 'reason', error)}") from None
    if not overview.get("taskmanagers"):
        raise ConfigError(f"{where} has no TaskManager: no Beam job could run there")


def _check_spark_master(master: str, timeout_s: float) -> None:
    parsed = urllib.parse.urlsplit(master)
    where = f"the Spark master at {master} (beam_cluster_master, set {ENV_PREFIX}BEAM_CLUSTER_MASTER)"
    try:
        socket.create_connection((parsed.hostname, parsed.port or 7077), timeout=timeout_s).close()
    except (OSError, ValueError) as error:
        raise ConfigError(f"{where} does not answer: {error}") from None
