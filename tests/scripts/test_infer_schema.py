"""scripts/infer_schema.py (`make schema-infer`): a new task's schema inferred from its data alone, written
only where none exists. The command as the docs show it, on a fork outside the repository, runs in
tests/examples/taxi_fare/test_taxi_fare.py."""

from __future__ import annotations

import importlib.util
import os

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import configs
from tests.conftest import PROJECT_ROOT, write_rows


def _script():
    # scripts/ is a folder of commands, not a package: the module is loaded from its file.
    spec = importlib.util.spec_from_file_location("infer_schema", PROJECT_ROOT / "scripts" / "infer_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema(path) -> schema_pb2.Schema:
    return text_format.Parse(path.read_text(), schema_pb2.Schema())


def test_the_schema_is_inferred_from_the_rows_as_the_pipeline_reads_them_and_never_replaced(
        tmp_path, sample_rows, monkeypatch, capsys):
    data = tmp_path / "data"
    # Two files: each column's type is decided over both (a float in the second widens an int column).
    write_rows(data / "a.csv", sample_rows[:700])
    write_rows(data / "b.csv", [{**row, "trip_seconds": "12.5"} if i == 0 else row
                                for i, row in enumerate(sample_rows[700:])])
    schema_path = tmp_path / "new_task" / "schema" / "schema.pbtxt"
    for key in [k for k in os.environ if k.startswith(("PIPELINE_", "TAXI_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIPELINE_DATA_ROOT", str(data))
    monkeypatch.setenv("PIPELINE_SCHEMA_PATH", str(schema_path))
    script = _script()
    assert script.main() == 0
    assert capsys.readouterr().out == (
        f"Schema of task modules inferred from {data} (18 features): {schema_path}\n"
        "Review it (types, domains, presence), commit it, then run the pipeline.\n")
    inferred = {f.name: f for f in _schema(schema_path).feature}
    curated = {f.name: f for f in _schema(PROJECT_ROOT / "schema" / "schema.pbtxt").feature}
    # The types a person reviewed for the same data; trip_seconds widened to FLOAT by the second file, and
    # pickup_census_tract, empty in every sampled row (one row of the whole data has one), left untyped.
    assert not any(row["pickup_census_tract"] for row in sample_rows)
    assert {name: f.type for name, f in inferred.items() if name != "pickup_census_tract"} == {
        name: schema_pb2.FLOAT if name == "trip_seconds" else f.type for name, f in curated.items()
        if name != "pickup_census_tract"}
    # An empty cell is a value missing from a present feature, as CsvExampleGen writes it, so the schema
    # requires no value where the data has gaps (else the gate would refuse the very data it came from).
    assert not inferred["company"].HasField("value_count") and inferred["company"].presence.min_fraction == 1.0
    assert inferred["fare"].value_count.min == 1
    # A string column gets its domain, as SchemaGen's inference gives it.
    assert set(_schema(schema_path).string_domain[0].value) <= {row["payment_type"] for row in sample_rows}
    assert sorted(p.name for p in schema_path.parent.iterdir()) == ["schema.pbtxt"]

    before = schema_path.read_bytes()
    assert script.main() == configs.EXIT_CONFIG_ERROR
    assert capsys.readouterr().err == (
        f"error: {schema_path} exists: it is the task's curated schema, which this command never replaces (after "
        "a run, `make schema-candidate` writes SchemaGen's inference beside it for review)\n")
    assert schema_path.read_bytes() == before


def test_a_task_without_input_files_is_refused_and_nothing_written(tmp_path):
    config = configs.load_config(data_root=str(tmp_path), schema_path=str(tmp_path / "schema" / "schema.pbtxt"))
    with pytest.raises(configs.ConfigError, match="no input files match"):
        _script().infer_schema(config)
    assert not (tmp_path / "schema").exists()
