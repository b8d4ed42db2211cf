# The image every Kubeflow Pipelines v2 / Vertex AI component of the pipeline runs in
# (pipeline/runners/kubeflow_v2_runner.py): Python 3.10, the packages pinned in requirements.lock, and the
# project at /pipeline (the image_project_root setting), where the specs find the schema and modules.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/chicago-taxi:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/chicago-taxi:TAG
#   export PIPELINE_CONTAINER_IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/chicago-taxi:TAG
FROM python:3.10-slim

WORKDIR /pipeline
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_USE_LEGACY_KERAS=1

# Dependencies first, so editing the project's code does not reinstall them. The container entry point
# (tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor) also needs kfp-pipeline-spec, which
# only the orchestrators lock pins: installed without dependencies at that pin.
COPY requirements.lock requirements-orchestrators.lock ./
RUN pip install uv==0.13.9 \
    && uv pip sync --system requirements.lock \
    && uv pip install --system --no-deps "$(grep '^kfp-pipeline-spec==' requirements-orchestrators.lock)"

COPY setup.py ./
COPY modules/ modules/
COPY examples/ examples/
COPY pipeline/ pipeline/
COPY schema/ schema/
RUN uv pip install --system --no-deps .
