"""The Beam args of the data components: the configured profile filled in from settings, or (profile
`auto`) the in-memory runner or a worker per core by the size of the run's input."""

from __future__ import annotations

import dataclasses
import re

from pipeline import inputs
from pipeline.configs import BEAM_PROFILES, ENV_PREFIX, LOCAL_BEAM_PROFILES, PROJECT_ROOT, ConfigError, PipelineConfig

# Inputs up to this size run in one process on Beam's in-memory DirectRunner; larger ones get a worker
# process per core, which pays its start-up only where there is enough data to share (bench/README.md).
MULTI_PROCESSING_MIN_INPUT_BYTES = 64 * 2**20


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
        args.append("--pickle_library=cloudpickle")
        args.append(f"--setup_file={PROJECT_ROOT / 'setup.py'}")
        image = config.beam_sdk_container_image
        if not image:
            args.append(f"--requirements_file={PROJECT_ROOT / 'requirements.lock'}")
        elif config.beam_profile == "dataflow":
            args.append(f"--sdk_container_image={image}")
        else:
            args.append(f"--environment_config={image}")
    return args + list(config.beam_pipeline_args)
