"""The Beam args of the data components: the configured profile filled in from settings, or (profile
`auto`) the in-memory runner or a worker per core by the size of the run's input."""

from __future__ import annotations

import dataclasses
import re

import grpc

from pipeline import inputs
from pipeline.configs import BEAM_PROFILES, ENV_PREFIX, LOCAL_BEAM_PROFILES, PROJECT_ROOT, ConfigError, PipelineConfig

# Inputs up to this size run in one process on Beam's in-memory DirectRunner; larger ones get a worker
# process per core, which pays its start-up only where there is enough data to share (bench/README.md).
MULTI_PROCESSING_MIN_INPUT_BYTES = 64 * 2**20
# How long a run waits for the portable profile's job service to answer before refusing to start.
JOB_SERVICE_CONNECT_TIMEOUT_S = 20.0


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


# Environment types whose workers run somewhere you installed (a worker pool, the machine's boot
# command), so the lock is not installed at start-up; each needs its --environment_config.
_PREPARED_ENVIRONMENTS = {
    "EXTERNAL": "the worker pool's host:port",
    "PROCESS": 'the boot command as JSON, {"command": "/opt/apache/beam/boot"}',
}


def _worker_args(config: PipelineConfig) -> list[str]:
    """How the project reaches remote workers, one way for every remote profile: the functions of the
    module files by value, the project as the package setup.py builds, and the locked dependencies from
    the worker image, from the lock installed at start-up, or already in the environment you run."""
    args = ["--pickle_library=cloudpickle", f"--setup_file={PROJECT_ROOT / 'setup.py'}"]
    image = config.beam_sdk_container_image
    if config.beam_profile == "dataflow":
        return args + [f"--sdk_container_image={image}" if image else _requirements_arg()]
    environment_type = config.beam_environment_type
    environment_config = config.beam_environment_config
    if environment_type in _PREPARED_ENVIRONMENTS:
        if not environment_config:
            raise ConfigError(
                f"beam_environment_type {environment_type} needs beam_environment_config, "
                f"{_PREPARED_ENVIRONMENTS[environment_type]} (set {ENV_PREFIX}BEAM_ENVIRONMENT_CONFIG)"
            )
    elif environment_type == "DOCKER":
        environment_config = environment_config or image
        if not environment_config:
            args.append(_requirements_arg())
    if environment_config:
        args.append(f"--environment_config={environment_config}")
    return args


def _requirements_arg() -> str:
    return f"--requirements_file={PROJECT_ROOT / 'requirements.lock'}"


def check_job_service(config: PipelineConfig, timeout_s: float = JOB_SERVICE_CONNECT_TIMEOUT_S) -> None:
    """The portable profile's job service answers, or a one-line error naming it.

    Beam waits on the job service as long as a job may run (beam_job_server_timeout_s): without this
    check, a wrong address would hang the run for that long, then fail deep inside a component.
    """
    endpoint = config.beam_job_endpoint
    if config.beam_profile != "portable" or endpoint == "embed":  # embed: Beam starts one in-process.
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
