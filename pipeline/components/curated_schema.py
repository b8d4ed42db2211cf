"""The curated schema as a pipeline node whose cache key is the file's content, not only its path.

TFX's ImportSchemaGen takes the file's path as its only execution property, so after an edit of
schema/schema.pbtxt the next run took the old schema from the cache and validated and trained against
it. This importer also takes the file's SHA-256, computed when the pipeline is built: an edit re-imports
the schema and re-runs everything that reads it. Its executor reads the file once, checks that those
bytes still have that hash (an edit between building the pipeline and running this node, or a Kubeflow
image built from another schema, fails the run rather than storing one schema under another's key),
parses them as a schema, writes them into the artifact and records the hash as the artifact's
`schema_sha256` property: the run record reports the schema a run used from there.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.schema_gen import executor as schema_gen_executor
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

CURATED_SCHEMA_ID = "CuratedSchemaImporter"
SCHEMA_FILE_KEY = "schema_file"
SCHEMA_SHA256_KEY = "schema_sha256"
SCHEMA_KEY = "schema"


def file_sha256(path: str) -> str:
    with fileio.open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class CuratedSchemaImporterExecutor(base_executor.BaseExecutor):
    """Copies the schema file, byte for byte, after checking its hash and that it parses."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        path = exec_properties[SCHEMA_FILE_KEY]
        with fileio.open(path, "rb") as f:
            data = f.read()
        digest = hashlib.sha256(data).hexdigest()
        expected = exec_properties[SCHEMA_SHA256_KEY]
        if digest != expected:
            raise RuntimeError(
                f"the curated schema {path} changed after this pipeline was built (sha256 {expected[:12]} "
                f"then, {digest[:12]} now): run the pipeline again"
            )
        try:
            text_format.Parse(data.decode("utf-8"), schema_pb2.Schema())
        except (text_format.ParseError, UnicodeDecodeError) as error:
            raise ValueError(f"the curated schema {path} does not parse: {error}") from None
        artifact = artifact_utils.get_single_instance(output_dict[SCHEMA_KEY])
        fileio.makedirs(artifact.uri)
        with fileio.open(os.path.join(artifact.uri, schema_gen_executor.DEFAULT_FILE_NAME), "wb") as f:
            f.write(data)
        artifact.set_string_custom_property(SCHEMA_SHA256_KEY, digest)


class CuratedSchemaImporterSpec(types.ComponentSpec):
    PARAMETERS = {
        SCHEMA_FILE_KEY: ExecutionParameter(type=str),
        SCHEMA_SHA256_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {}
    OUTPUTS = {SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class CuratedSchemaImporter(base_component.BaseComponent):
    """Imports the curated schema; re-runs (with everything downstream) whenever its content changes."""

    SPEC_CLASS = CuratedSchemaImporterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(CuratedSchemaImporterExecutor)

    def __init__(self, schema_file: str):
        super().__init__(
            spec=CuratedSchemaImporterSpec(
                schema_file=schema_file,
                schema_sha256=file_sha256(schema_file),
                schema=types.Channel(type=standard_artifacts.Schema),
            )
        )
