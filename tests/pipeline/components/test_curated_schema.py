"""Editing the curated schema takes effect on the next run, and every file the pipeline reads by path is
part of its cache key.

The user's story, on the span layout: a span arrives with a new payment type ("Bitcoin", 10% of rows);
the data gate refuses it and says to update the curated schema if the change is intended; the user adds
the value to the schema file, in place, and runs again: the schema is imported anew, the same data
passes the gate and trains, and the run record holds the hash of the edited schema, read from the
artifact the run used. The span's one file is also written every valid way at once (gzip, a UTF-8 byte
order mark, CRLF line ends, columns in another order than the schema's, a quoted company name with a
comma and quotes), so both runs show those read end to end.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from pipeline.components import curated_schema
from pipeline.metadata import run_record, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import PROJECT_ROOT, run_local_pipeline, small_run_env

BITCOIN_DOMAIN_EDIT = ('  value: "Unknown"\n', '  value: "Unknown"\n  value: "Bitcoin"\n')


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _variant_span(rows: list[dict[str, str]]) -> bytes:
    """The rows, 10% paid in Bitcoin, as a gzipped CSV with a byte order mark, CRLF line ends, the
    columns reversed and a company name holding a comma and quotes."""
    rows = [dict(row, payment_type="Bitcoin") if i % 10 == 0 else dict(row) for i, row in enumerate(rows)]
    rows[1]["company"] = 'Taxi, "the best" Co.'
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0])[::-1], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(("\ufeff" + out.getvalue()).encode())


@dataclasses.dataclass
class Runs:
    config: configs.PipelineConfig
    schema_file: Path
    refused: subprocess.CompletedProcess
    original_sha256: str
    edited_sha256: str
    after_edit: run_summary.RunSummary
    output: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_rows) -> Runs:
    root = tmp_path_factory.mktemp("schema_edits")
    schema_file = root / "schema.pbtxt"
    shutil.copy(PROJECT_ROOT / "schema" / "schema.pbtxt", schema_file)
    (root / "data" / "span-1").mkdir(parents=True)
    (root / "data" / "span-1" / "data.csv.gz").write_bytes(_variant_span(sample_rows))
    env = {
        **small_run_env(root / "data", root / "output"),
        "PIPELINE_INPUT_PATTERN": "span-{SPAN}/data.csv*",
        "PIPELINE_SCHEMA_PATH": str(schema_file),
    }
    config = configs.load_config(**configs.env_overrides(env))
    original = _sha256(schema_file)
    refused = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "pipeline" / "runners" / "local_runner.py")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    text = schema_file.read_text()
    assert BITCOIN_DOMAIN_EDIT[0] in text
    schema_file.write_text(text.replace(*BITCOIN_DOMAIN_EDIT))  # The same path: only the content changes.
    output = run_local_pipeline(env)
    summary = run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)
    return Runs(config, schema_file, refused, original, _sha256(schema_file), summary, output)


def _records(config: configs.PipelineConfig) -> list[dict]:
    store = open_store(connection_config(config))
    contexts = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch)
    return [run_record.read_record(context) for context in contexts]


@pytest.mark.e2e
def test_the_gate_refuses_the_new_value_and_points_at_the_schema(runs):
    assert runs.refused.returncode == 1, runs.refused.stderr[-3000:]
    message = runs.refused.stderr[runs.refused.stderr.index("error: "):]
    assert "(files span-1/data.csv.gz; span 1)" in message
    assert "column 'payment_type': Unexpected string values" in message and "Bitcoin" in message
    assert "update the curated schema" in message


@pytest.mark.e2e
def test_the_edited_schema_is_imported_again_and_the_run_trains_on_it(runs):
    states = {run.node_id: run.state for run in runs.after_edit.components}
    # The same data: ExampleGen and StatisticsGen come from the cache; everything that reads the schema runs.
    assert states["CsvExampleGen"] == "cached" and states["StatisticsGen"] == "cached"
    for node in (pipeline_definition.CURATED_SCHEMA_ID, "ExampleValidator", "DataGate", "Transform", "Trainer"):
        assert states[node] == "executed", (node, states)
    assert runs.after_edit.anomalies == {"eval": [], "train": []}
    assert runs.after_edit.blessed is True and runs.after_edit.pushed_to
    # Every row of the variant file arrived (the runner's rows-in/rows-out check passed too).
    assert sum(runs.after_edit.rows_per_split.values()) == 1500


@pytest.mark.e2e
def test_the_run_record_holds_the_hash_of_the_schema_each_run_used(runs):
    refused, trained = _records(runs.config)
    assert refused["schema_sha256"] == runs.original_sha256
    assert trained["schema_sha256"] == runs.edited_sha256 != runs.original_sha256
    schema = runs.after_edit.component(pipeline_definition.CURATED_SCHEMA_ID).output("schema")
    assert schema.custom_properties[curated_schema.SCHEMA_SHA256_KEY].string_value == runs.edited_sha256
    assert _sha256(Path(schema.uri) / "schema.pbtxt") == runs.edited_sha256
    assert run_record.SCHEMA_SHA256_PROPERTY == curated_schema.SCHEMA_SHA256_KEY
    assert trained["spans"] == [1]
    assert list(trained["input_files"]) == ["span-1/data.csv.gz"]


def test_the_schema_file_content_is_the_importers_cache_key(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    shutil.copy(PROJECT_ROOT / "schema" / "schema.pbtxt", schema)
    config = configs.load_config(schema_path=str(schema), output_root=str(tmp_path / "out"))

    def importer_properties():
        components = {c.id: c for c in pipeline_definition.create_components(config)}
        return components[pipeline_definition.CURATED_SCHEMA_ID].exec_properties

    before = importer_properties()
    assert before["schema_sha256"] == _sha256(schema)
    schema.write_text(schema.read_text() + "\n# reviewed\n")
    assert importer_properties()["schema_sha256"] != before["schema_sha256"]
    assert importer_properties()["schema_file"] == before["schema_file"]


def test_an_edit_after_the_pipeline_was_built_fails_the_import(tmp_path):
    from tfx.types import standard_artifacts

    schema = tmp_path / "schema.pbtxt"
    shutil.copy(PROJECT_ROOT / "schema" / "schema.pbtxt", schema)
    importer = curated_schema.CuratedSchemaImporter(schema_file=str(schema))
    schema.write_text(schema.read_text() + "\n# edited while the run started\n")
    artifact = standard_artifacts.Schema()
    artifact.uri = str(tmp_path / "artifact")
    with pytest.raises(RuntimeError, match="changed after this pipeline was built"):
        curated_schema.CuratedSchemaImporterExecutor().Do({}, {"schema": [artifact]}, importer.exec_properties)


