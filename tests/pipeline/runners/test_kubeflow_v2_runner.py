"""The Kubeflow Pipelines v2 / Vertex AI spec: compiled as docs/runners.md shows it, loaded back with the kfp
SDK's own loader, and checked for components, dependencies, image, resources and parameters; the Dockerfile
against the lock; the tfx CLI's vertex engine compiling the same runner file.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("kfp", reason="the kfp SDK is an optional orchestrator package: make install-all")

from tfx.proto import example_gen_pb2  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline import pipeline as pipeline_definition  # noqa: E402
from pipeline.components import data_gate  # noqa: E402
from pipeline.runners import kubeflow_v2_runner  # noqa: E402
from tests.conftest import PROJECT_ROOT, run_command  # noqa: E402
from tests.docs.commands import documented, run_together  # noqa: E402

# The settings docs/runners.md exports before compiling (nothing is contacted: the image and the bucket are
# only names in the spec), and the compile itself.
COMPILE = [
    documented("docs/runners.md",
               "export PIPELINE_CONTAINER_IMAGE=us-central1-docker.pkg.dev/PROJECT/REPO/chicago-taxi:v1"),
    documented("docs/runners.md", "export PIPELINE_BUCKET_ROOT=gs://BUCKET/chicago-taxi"),
    documented("docs/runners.md", "export PIPELINE_COMPONENT_RESOURCES='{\"Trainer\": {\"cpu\": 8, \"memory_gb\": 32, "
               "\"accelerator\": \"NVIDIA_TESLA_T4\", \"accelerator_count\": 1}}'"),
    documented("docs/runners.md", "python -m pipeline.runners.kubeflow_v2_runner"),
]
SETTINGS = {name: value for command in COMPILE for name, value in command.env.items()}
IMAGE = SETTINGS["PIPELINE_CONTAINER_IMAGE"]
BUCKET = SETTINGS["PIPELINE_BUCKET_ROOT"]
RESOURCES = json.loads(SETTINGS["PIPELINE_COMPONENT_RESOURCES"])
RESOLVER_TASKS = {
    f"{pipeline_definition.RESOLVER_ID}-model-resolver",
    f"{pipeline_definition.RESOLVER_ID}-model-blessing-resolver",
}
TASKS = {
    "CsvExampleGen", "StatisticsGen", "SchemaGen", "CuratedSchemaImporter", "ExampleValidator",
    data_gate.BASELINE_RESOLVER_ID, data_gate.DATA_GATE_ID, "Transform", "Trainer", "Evaluator", "Pusher",
} | RESOLVER_TASKS


def _config(tmp_path, **overrides) -> configs.PipelineConfig:
    settings = {
        "container_image": IMAGE,
        "bucket_root": BUCKET,
        "component_resources": json.dumps(RESOURCES),
        "output_root": str(tmp_path / "output"),
    }
    return configs.load_config(**{**settings, **overrides})


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The spec the documented commands write, under the test's output root."""
    tmp_path = tmp_path_factory.mktemp("kubeflow_v2")
    config = _config(tmp_path)
    written = run_together(COMPILE, {**os.environ, "PIPELINE_OUTPUT_ROOT": config.output_root})
    spec_file = Path(config.output_root) / "kubeflow_v2" / f"{config.pipeline_name}_pipeline.json"
    assert written.stdout == f"Wrote the pipeline spec to {spec_file}\n"
    job = json.loads(spec_file.read_text())
    # The kfp SDK loads a pipeline spec (the job's `pipelineSpec`) as a component.
    from kfp import components

    pipeline_spec_file = tmp_path / "pipeline_spec.json"
    pipeline_spec_file.write_text(json.dumps(job["pipelineSpec"]))
    loaded = components.load_component_from_file(str(pipeline_spec_file))
    return config, job, loaded.pipeline_spec


def _parameter(spec, task: str, name: str):
    value = spec.root.dag.tasks[task].inputs.parameters[name].runtime_value.constant_value
    return getattr(value, value.WhichOneof("value"))


def _executors(spec) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(spec.deployment_spec)["executors"]


def test_spec_holds_every_component(compiled):
    config, job, spec = compiled
    assert spec.pipeline_info.name == config.pipeline_name
    assert set(spec.root.dag.tasks) == TASKS
    assert set(_executors(spec)) == {f"{task}_executor" for task in TASKS}


def test_dependencies_follow_the_pipeline_graph(compiled):
    _, _, spec = compiled
    tasks = spec.root.dag.tasks
    depends = {name: set(task.dependent_tasks) for name, task in tasks.items()}
    assert depends["CsvExampleGen"] == set() and depends["CuratedSchemaImporter"] == set()
    assert depends["StatisticsGen"] == {"CsvExampleGen"}
    assert depends["ExampleValidator"] == {"StatisticsGen", "CuratedSchemaImporter"}
    # The data gate holds Transform back until the new data has passed it; it reads the Examples for the
    # span and version they came from.
    assert depends[data_gate.DATA_GATE_ID] == {
        "CsvExampleGen", "StatisticsGen", "CuratedSchemaImporter", "ExampleValidator", data_gate.BASELINE_RESOLVER_ID
    }
    assert depends["Transform"] == {"CsvExampleGen", "CuratedSchemaImporter", data_gate.DATA_GATE_ID}
    assert depends["Trainer"] == {"CsvExampleGen", "Transform", "CuratedSchemaImporter"}
    assert {"CsvExampleGen", "Trainer"} <= depends["Evaluator"]
    assert depends["Evaluator"] & RESOLVER_TASKS
    assert depends["Pusher"] == {"Trainer", "Evaluator"}


def test_every_component_runs_in_the_configured_image(compiled):
    _, _, spec = compiled
    for name, executor in _executors(spec).items():
        if "container" in executor:
            assert executor["container"]["image"] == IMAGE, name
            assert executor["container"]["command"][-1] == (
                "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
            )


def test_the_parquet_payload_reaches_the_containers(compiled):
    """CsvExampleGen writes Parquet, and the containers of Transform and the Trainer run the executors that
    complete tfx_bsl's Parquet reader (importing them is what installs it there)."""
    _, _, spec = compiled
    executors = _executors(spec)
    for task, executor in (("Transform", "TransformExecutor"), ("Trainer", "TrainerExecutor")):
        args = executors[f"{task}_executor"]["container"]["args"]
        path = args[args.index("--executor_class_path") + 1]
        assert path == f"pipeline.components.parquet_components.{executor}", task
    assert int(_parameter(spec, "CsvExampleGen", "output_data_format")) == example_gen_pb2.FORMAT_PARQUET
    assert int(_parameter(spec, "CsvExampleGen", "output_file_format")) == example_gen_pb2.FILE_FORMAT_PARQUET


def test_components_get_their_configured_machines(compiled):
    """The documented setting names the Trainer's machine alone: it replaces the default (larger machines for
    Transform, Trainer and Evaluator), so the others take Vertex's default machine."""
    _, _, spec = compiled
    executors = _executors(spec)
    assert set(RESOURCES) == {"Trainer"}
    trainer = executors["Trainer_executor"]["container"]["resources"]
    assert trainer["cpuLimit"] == RESOURCES["Trainer"]["cpu"] == 8 and trainer["memoryLimit"] == 32
    assert trainer["accelerator"]["type"] == "NVIDIA_TESLA_T4"
    assert int(float(trainer["accelerator"]["count"])) == 1
    for name in ("Transform", "Evaluator"):
        assert "resources" not in executors[f"{name}_executor"]["container"], name
    default = kubeflow_v2_runner.resource_specs(configs.load_config())
    assert set(default) == {"Transform", "Trainer", "Evaluator"} and default["Transform"].cpu_limit == 4


def test_parameters_point_at_the_bucket_and_into_the_image(compiled):
    config, job, spec = compiled
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"{BUCKET}/tfx_output/pipelines/{config.pipeline_name}"
    assert _parameter(spec, "CsvExampleGen", "input_base") == f"{BUCKET}/data"
    root = config.image_project_root
    assert _parameter(spec, "Trainer", "module_file") == f"{root}/modules/trainer_module.py"
    assert _parameter(spec, "Transform", "module_file") == f"{root}/modules/transform_module.py"
    assert _parameter(spec, "CuratedSchemaImporter", "schema_file") == f"{root}/schema/schema.pbtxt"
    # The Evaluator imports its extractors from the project the image holds (by module name, no path).
    assert _parameter(spec, "Evaluator", "module_path") == "pipeline.components.eval_extractors"
    assert json.loads(_parameter(spec, "Trainer", "train_args")) == {"num_steps": config.train_steps}
    custom = json.loads(_parameter(spec, "Trainer", "custom_config"))
    # The fingerprint is of the project's module, the same file the image holds.
    assert custom["module_fingerprint"] == pipeline_definition.module_fingerprint(config.trainer_module_file)
    push = json.loads(_parameter(spec, "Pusher", "push_destination"))
    assert push["filesystem"]["base_directory"] == f"{BUCKET}/tfx_output/serving_model/{config.pipeline_name}"


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(configs.ConfigError, match="PIPELINE_CONTAINER_IMAGE"):
        kubeflow_v2_runner.create_pipeline(_config(tmp_path, container_image=""))
    with pytest.raises(configs.ConfigError, match="PIPELINE_BUCKET_ROOT"):
        kubeflow_v2_runner.create_pipeline(_config(tmp_path, bucket_root="/local/folder"))
    with pytest.raises(configs.ConfigError, match="unknown keys"):
        kubeflow_v2_runner.resource_specs(_config(tmp_path, component_resources='{"Trainer": {"gpus": 1}}'))
    with pytest.raises(configs.ConfigError, match="unknown components"):
        kubeflow_v2_runner.create_pipeline(_config(tmp_path, component_resources='{"Trainr": {"cpu": 1}}'))
    outside = tmp_path / "trainer_module.py"
    outside.write_text((PROJECT_ROOT / "modules" / "trainer_module.py").read_text())
    with pytest.raises(configs.ConfigError, match="outside the project"):
        kubeflow_v2_runner.create_pipeline(_config(tmp_path, trainer_module_file=str(outside)))


def _lock_pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", path.read_text(), flags=re.M))


def test_dockerfile_builds_the_image_from_the_lock(compiled):
    config, job, _ = compiled
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.10[-.\w]*$", dockerfile, flags=re.M)
    assert re.search(rf"^WORKDIR {re.escape(configs.PipelineConfig.image_project_root)}$", dockerfile, flags=re.M)
    assert "uv pip sync --system requirements.lock" in dockerfile
    uv_version = re.search(r"UV_VERSION=(\S+)", (PROJECT_ROOT / "scripts" / "setup_env.sh").read_text())[1]
    assert f"uv=={uv_version}" in dockerfile
    # The one package beyond the core lock comes at the orchestrators lock's pin.
    assert "grep '^kfp-pipeline-spec==' requirements-orchestrators.lock" in dockerfile
    assert "kfp-pipeline-spec" in _lock_pins(PROJECT_ROOT / "requirements-orchestrators.lock")
    # The spec was compiled by the TFX the image installs.
    assert job["pipelineSpec"]["sdkVersion"] == f"tfx-{_lock_pins(PROJECT_ROOT / 'requirements.lock')['tfx']}"
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M):
        for path in source.split():
            assert (PROJECT_ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the project"
    for needed in ("modules/", "pipeline/", "schema/", "setup.py"):
        assert re.search(rf"^COPY .*{re.escape(needed)}", dockerfile, flags=re.M), needed


def test_tfx_cli_vertex_engine_compiles_the_runner(tmp_path):
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        # The CLI checks for kfp with the `pip` on PATH: the environment's, as when it is activated.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "VERTEX_HOME": str(tmp_path / "vertex_home"),
        "PIPELINE_CONTAINER_IMAGE": IMAGE,
        "PIPELINE_BUCKET_ROOT": BUCKET,
        "PIPELINE_OUTPUT_ROOT": str(tmp_path / "output"),
    }
    output = run_command(
        [str(Path(bin_dir) / "tfx"), "pipeline", "create", "--engine", "vertex", "--pipeline_path", "pipeline/runners/kubeflow_v2_runner.py"],
        env,
    )
    name = configs.load_config().pipeline_name
    assert f'Pipeline "{name}" created successfully.' in output
    job = json.loads((tmp_path / "vertex_home" / name / "pipeline.json").read_text())
    assert set(job["pipelineSpec"]["root"]["dag"]["tasks"]) == TASKS
    assert job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["image"] == IMAGE
