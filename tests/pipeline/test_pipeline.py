"""The pipeline's definition: what each component is given (eval config, cache keys, resources)."""

from __future__ import annotations

from pipeline import configs
from pipeline import pipeline as pipeline_definition
from tests.conftest import tiny_input


def test_transform_statistics_are_off_unless_asked_for(tmp_path, monkeypatch):
    config = configs.load_config(data_root=tiny_input(tmp_path, 10), output_root=str(tmp_path / "out"))
    transform = next(c for c in pipeline_definition.create_components(config) if c.id == "Transform")
    assert transform.exec_properties["disable_statistics"] == 1
    monkeypatch.setenv("PIPELINE_TRANSFORM_STATISTICS", "true")
    config = configs.load_config(data_root=config.data_root, output_root=str(tmp_path / "out"))
    transform = next(c for c in pipeline_definition.create_components(config) if c.id == "Transform")
    assert transform.exec_properties["disable_statistics"] == 0


def test_transform_writes_the_graph_and_no_transformed_copy(tmp_path):
    config = configs.load_config(data_root=tiny_input(tmp_path, 10), output_root=str(tmp_path / "out"))
    components = {c.id: c for c in pipeline_definition.create_components(config)}
    assert "transform_graph" in components["Transform"].outputs
    assert "transformed_examples" not in components["Transform"].outputs
    trainer_examples = components["Trainer"].inputs["examples"]
    assert trainer_examples.producer_component_id == "CsvExampleGen"


def test_module_fingerprints_cover_the_project_modules_they_import(tmp_path, monkeypatch):
    package = tmp_path / "taskpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("SCALE = 1\n")
    (package / "unrelated.py").write_text("X = 1\n")
    (package / "trainer.py").write_text("import json\nimport numpy\n\nfrom taskpkg import helpers\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = str(package / "trainer.py")
    before = pipeline_definition.module_fingerprint(module)
    (package / "unrelated.py").write_text("X = 2\n")
    assert pipeline_definition.module_fingerprint(module) == before
    (package / "helpers.py").write_text("SCALE = 2\n")
    assert pipeline_definition.module_fingerprint(module) != before
