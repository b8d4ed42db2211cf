"""Compiles the pipeline to a Kubeflow Pipelines v2 / Vertex AI Pipelines spec (JSON), and submits it.

    python -m pipeline.runners.kubeflow_v2_runner                          # compile (PIPELINE_CONTAINER_IMAGE, PIPELINE_BUCKET_ROOT)
    python -m pipeline.runners.kubeflow_v2_runner --submit --project P --region R [--service-account SA]
    tfx pipeline create --engine vertex --pipeline_path pipeline/runners/kubeflow_v2_runner.py

Every component runs in the project's image (Dockerfile), where the project sits at
`image_project_root`: the curated schema and the module files are referenced there. Data is read from
`<bucket_root>/data` and everything is written under `<bucket_root>/tfx_output`; Vertex keeps ML Metadata
itself. Per-component machines (CPU, memory, GPU) come from `component_resources`. Credentials come from
the environment (Application Default Credentials), never from the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

# isort: off
import pipeline  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline import configs
from pipeline import pipeline as pipeline_definition
# isort: on

# Keys of one component's entry in `component_resources`.
_RESOURCE_KEYS = {"cpu", "memory_gb", "accelerator", "accelerator_count"}
# Exec properties that hold a path into the project, which the image holds at image_project_root.
_PROJECT_PATH_PROPERTIES = ("module_file", "schema_file")


def cloud_config(config: configs.PipelineConfig) -> configs.PipelineConfig:
    """`config` as the pipeline sees it on Vertex: data and outputs under the bucket."""
    if not config.container_image:
        raise configs.ConfigError(
            "container_image is not set: build the image (see Dockerfile) and set PIPELINE_CONTAINER_IMAGE"
        )
    if "://" not in config.bucket_root:
        raise configs.ConfigError(
            f"bucket_root must be a bucket URI such as gs://my-bucket/my-pipeline, got "
            f"{config.bucket_root!r} (set PIPELINE_BUCKET_ROOT)"
        )
    output = config.bucket_root.rstrip("/") + "/tfx_output"
    name = config.pipeline_name
    return dataclasses.replace(
        config,
        data_root=config.bucket_root.rstrip("/") + "/data",
        output_root=output,
        pipeline_root=f"{output}/pipelines/{name}",
        # Unused on Vertex, which keeps ML Metadata itself; set so nothing points at this machine.
        metadata_path=f"{output}/metadata/{name}/metadata.db",
        serving_model_dir=f"{output}/serving_model/{name}",
        # The image holds the modules; Vertex workers import them from there.
        package_user_modules=False,
    )


def image_path(config: configs.PipelineConfig, local_path: str) -> str:
    """Where a project file is inside the image; files outside the project are not in it."""
    try:
        relative = Path(local_path).resolve().relative_to(configs.PROJECT_ROOT)
    except ValueError:
        raise configs.ConfigError(
            f"{local_path} is outside the project {configs.PROJECT_ROOT}, so the image does not hold it: "
            "keep schema and module files in the project for Kubeflow/Vertex"
        ) from None
    return f"{config.image_project_root.rstrip('/')}/{relative.as_posix()}"


def resource_specs(config: configs.PipelineConfig) -> dict:
    """`component_resources` as Kubeflow ResourceSpec protos, by component id."""
    from kfp.pipeline_spec import pipeline_spec_pb2  # Optional (make install-all): only Kubeflow needs it.

    try:
        wanted = json.loads(config.component_resources or "{}")
    except ValueError as error:
        raise configs.ConfigError(f"component_resources is not valid JSON: {error}") from None
    if not isinstance(wanted, dict):
        raise configs.ConfigError("component_resources must be a JSON object keyed by component id")
    specs = {}
    for component_id, resources in wanted.items():
        unknown = set(resources) - _RESOURCE_KEYS
        if unknown:
            raise configs.ConfigError(
                f"component_resources[{component_id!r}] has unknown keys {sorted(unknown)}; "
                f"known: {sorted(_RESOURCE_KEYS)}"
            )
        spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
            cpu_limit=float(resources.get("cpu", 0)), memory_limit=float(resources.get("memory_gb", 0))
        )
        if resources.get("accelerator"):
            spec.accelerator.type = resources["accelerator"]
            spec.accelerator.count = int(resources.get("accelerator_count", 1))
        specs[component_id] = spec
    return specs


def create_pipeline(config: configs.PipelineConfig) -> tfx.dsl.Pipeline:
    """The one pipeline, with paths and machines for Vertex."""
    remote = cloud_config(config)
    # Vertex keeps ML Metadata itself: no store of this machine goes into the spec.
    dsl_pipeline = pipeline_definition.create_pipeline(
        remote, metadata_connection=metadata_store_pb2.ConnectionConfig(), tfx_strategies_only=True
    )
    resources = resource_specs(config)
    ids = {component.id for component in dsl_pipeline.components}
    unknown = set(resources) - ids
    if unknown:
        raise configs.ConfigError(
            f"component_resources names unknown components {sorted(unknown)}; components: {sorted(ids)}"
        )
    for component in dsl_pipeline.components:
        for name in _PROJECT_PATH_PROPERTIES:
            value = component.exec_properties.get(name)
            if isinstance(value, str) and value:
                component.exec_properties[name] = image_path(config, value)
        if component.id in resources:
            component.with_platform_config(resources[component.id])
    return dsl_pipeline


def spec_path(config: configs.PipelineConfig) -> Path:
    """Where the compiled spec is written: beside the local outputs."""
    return Path(config.output_root) / "kubeflow_v2" / f"{config.pipeline_name}_pipeline.json"


def compile_spec(config: configs.PipelineConfig, output: Path | None = None) -> Path:
    output = output or spec_path(config)
    output.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=config.container_image),
        output_dir=str(output.parent),
        output_filename=output.name,
    )
    runner.run(create_pipeline(config))
    return output


def submit(config: configs.PipelineConfig, spec: Path, project: str, region: str, service_account: str):
    """Start a Vertex AI Pipelines run of the compiled spec; returns the job."""
    from google.cloud import aiplatform  # Slow to import; only --submit needs it.

    aiplatform.init(project=project, location=region)
    job = aiplatform.PipelineJob(
        display_name=config.pipeline_name,
        template_path=str(spec),
        pipeline_root=cloud_config(config).pipeline_root,
        enable_caching=config.enable_cache,
    )
    job.submit(service_account=service_account or None)
    return job


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compile the pipeline for Kubeflow v2 / Vertex AI, and submit it.")
    parser.add_argument("--output", type=Path, help="spec file to write (default: under the output root)")
    parser.add_argument("--submit", action="store_true", help="submit the compiled spec to Vertex AI Pipelines")
    parser.add_argument("--project", default=os.environ.get("GOOGLE_CLOUD_PROJECT", ""),
                        help="Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--region", default=os.environ.get("GOOGLE_CLOUD_REGION", ""),
                        help="Vertex AI region, e.g. us-central1 (default: $GOOGLE_CLOUD_REGION)")
    parser.add_argument("--service-account", default=os.environ.get("VERTEX_SERVICE_ACCOUNT", ""),
                        help="service account the run uses (default: $VERTEX_SERVICE_ACCOUNT, else the "
                             "project's default compute account)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = configs.load_config()
        if args.submit and not (args.project and args.region):
            raise configs.ConfigError("--submit needs --project and --region (or GOOGLE_CLOUD_PROJECT and "
                                      "GOOGLE_CLOUD_REGION)")
        spec = compile_spec(config, args.output)
        print(f"Wrote the pipeline spec to {spec}")
        if args.submit:
            job = submit(config, spec, args.project, args.region, args.service_account)
            print(f"Submitted {job.resource_name}")
    except configs.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return configs.EXIT_CONFIG_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
