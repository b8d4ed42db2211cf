"""scripts/update_schema.py (`make schema-candidate`): the newest SchemaGen inference written beside the
curated schema with a diff, the curated schema untouched. On the store of tests/pipeline/runners/
test_local_runner.py's runs (SHARED_RUNS)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.metadata.store import connection_config, open_store
from tests.conftest import PROJECT_ROOT, small_run_env
from tests.docs.commands import documented

pytestmark = pytest.mark.e2e

SCRIPT = [sys.executable, str(PROJECT_ROOT / "scripts" / "update_schema.py")]


def _newest_inferred_schema(config) -> bytes:
    store = open_store(connection_config(config))
    context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.SchemaGen")
    schemas = [a for a in store.get_artifacts_by_context(context.id)
               if store.get_artifact_types_by_id([a.type_id])[0].name == "Schema"]
    newest = max(schemas, key=lambda a: (a.create_time_since_epoch, a.id))
    return (Path(newest.uri) / "schema.pbtxt").read_bytes()


def test_the_candidate_is_the_newest_inference_and_the_curated_schema_stays(local_runs, tmp_path):
    """`make schema-candidate` as docs/data-and-spans.md shows it; the candidate goes beside the curated schema,
    here a copy of it (PIPELINE_SCHEMA_PATH), so the test writes nothing into the repository."""
    config = local_runs.config
    curated = Path(config.schema_path)
    before = curated.read_bytes()
    copy = Path(shutil.copy(curated, tmp_path / "schema.pbtxt"))
    candidate = tmp_path / "schema.candidate.pbtxt"
    done = documented("docs/data-and-spans.md", "make schema-candidate").run(
        {**local_runs.env, "PIPELINE_SCHEMA_PATH": str(copy)}, timeout=300)
    assert candidate.read_bytes() == _newest_inferred_schema(config)
    # After make's echo of the command it runs.
    assert done.stdout.split("\n", 1)[1].startswith(f"--- {copy}\n+++ {candidate}\n"), done.stdout[:300]
    assert curated.read_bytes() == copy.read_bytes() == before

    refused = subprocess.run([*SCRIPT, "--output", str(curated)], env=local_runs.env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: refusing to overwrite the curated schema; choose another --output"
    assert curated.read_bytes() == before


def test_a_missing_store_is_named_and_nothing_is_written(tmp_path, sample_data_dir):
    done = subprocess.run([*SCRIPT, "--output", str(tmp_path / "c.pbtxt")],
                          env=small_run_env(sample_data_dir, tmp_path / "out"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    store = tmp_path / "out" / "metadata" / "chicago-taxi" / "metadata.db"
    assert done.stderr == f"error: no ML Metadata store at {store} (has the pipeline run?)\n"
    assert not (tmp_path / "c.pbtxt").exists() and not store.exists()
