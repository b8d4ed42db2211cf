"""The pipeline's definition: what each component is given (eval config, cache keys, resources)."""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma
from google.protobuf import json_format

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


def test_the_trainer_gets_steps_at_the_sample_scale_and_none_at_the_full_scale(tmp_path):
    """TFX's TrainArgs without num_steps reach run_fn as train_steps None: a whole pass per epoch. The
    scale's settings reach it as custom_config, so each scale has its own cache key."""

    data_root = tiny_input(tmp_path, 10)

    def trainer(**settings):
        config = configs.load_config(data_root=data_root, output_root=str(tmp_path / "out"), **settings)
        return next(c for c in pipeline_definition.create_components(config) if c.id == "Trainer")

    sample, full = trainer(train_steps=40), trainer(scale="full")
    assert json.loads(sample.exec_properties["train_args"]) == {"num_steps": 40}
    assert json.loads(full.exec_properties["train_args"]) == {}
    assert '"batch_size": 4096' in full.exec_properties["custom_config"]
    assert '"batch_size": 128' in sample.exec_properties["custom_config"]


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


def test_module_fingerprints_cover_the_siblings_a_module_file_loads_by_path(tmp_path):
    """A task's module files load features.py beside them by path (`_sibling`), as TFX never imports them as
    part of their package: an edit to a loaded sibling re-keys the component, an edit to the other module
    file or to task.py does not. Each of the three tasks' module files reaches its features.py so."""
    for folder in ("modules", "examples/penguin/modules", "examples/taxi_fare/modules"):
        for name in ("transform_module.py", "trainer_module.py"):
            module = configs.PROJECT_ROOT / folder / name
            assert module.with_name("features.py") in pipeline_definition.module_sources(str(module))
    folder = tmp_path / "anywhere" / "my_task"
    folder.mkdir(parents=True)
    for name in ("features.py", "task.py", "trainer_module.py"):
        (folder / name).write_text("X = 1\n")
    (folder / "transform_module.py").write_text('def _sibling(name): ...\n\n\nfeatures = _sibling("features")\n')
    module = str(folder / "transform_module.py")
    before = pipeline_definition.module_fingerprint(module)
    for name in ("task.py", "trainer_module.py"):
        (folder / name).write_text("X = 2\n")
    assert pipeline_definition.module_fingerprint(module) == before
    (folder / "features.py").write_text("X = 2\n")
    assert pipeline_definition.module_fingerprint(module) != before


def _thresholds(config: configs.PipelineConfig) -> dict[str, tuple]:
    """{slice: (lower bound, allowed change)} of the blessing metric's thresholds in the eval config."""
    eval_config = pipeline_definition.create_eval_config(config)
    (judged,) = [m for spec in eval_config.metrics_specs for m in spec.metrics
                 if configs.metric_name(m.class_name) == config.task_spec.blessing_metric]
    return {
        json_format.MessageToJson(spec, sort_keys=True, indent=None): (
            round(t.threshold.value_threshold.lower_bound.value, 6), round(t.threshold.change_threshold.absolute.value, 6))
        for t in judged.per_slice_thresholds for spec in t.slicing_specs
    }


def test_the_tasks_slice_thresholds_become_tfmas_per_slice_thresholds():
    config = configs.load_config(
        blessing_lower_bound=0.7, blessing_max_decrease=0.0, slice_feature_keys=("payment_type",),
        blessing_slice_thresholds='{"payment_type=Credit Card": {"lower_bound": 0.6, "max_decrease": 0.03}, '
                                  '"company=Flash Cab": {"lower_bound": 0.5, "max_decrease": 0.1}}',
    )
    assert _thresholds(config) == {
        "{}": (0.7, -0.0),
        '{"featureValues": {"payment_type": "Credit Card"}}': (0.6, -0.03),
        '{"featureValues": {"company": "Flash Cab"}}': (0.5, -0.1),
    }
    eval_config = pipeline_definition.create_eval_config(config)
    # TFMA computes a judged slice only when asked: company is not sliced by, so it gets its own spec.
    assert [json_format.MessageToDict(s) for s in eval_config.slicing_specs] == [
        {}, {"featureKeys": ["payment_type"]}, {"featureValues": {"company": "Flash Cab"}}]
    # TFMA accepts it as the Evaluator gives it, with a baseline and without.
    for has_baseline in (True, False):
        tfma.utils.verify_eval_config(tfma.utils.update_eval_config_with_defaults(
            eval_config, has_baseline=has_baseline, rubber_stamp=True))


def test_a_task_without_slice_thresholds_is_judged_on_the_whole_eval_split_only():
    for config in (configs.load_config(blessing_slice_thresholds="{}"),
                   configs.load_config(task="examples.penguin.modules")):
        assert list(_thresholds(config)) == ["{}"]


def test_a_lower_is_better_blessing_metric_gets_an_upper_bound_and_an_allowed_increase():
    """The fare task's mean absolute error: at most the upper bound, and at most the allowed increase over the
    baseline's (TFMA's LOWER_IS_BETTER change threshold), overall and on each judged slice."""
    config = configs.load_config(
        task="examples.taxi_fare.modules", blessing_upper_bound=3.0, blessing_max_increase=0.0,
        blessing_slice_thresholds='{"payment_type=Cash": {"upper_bound": 2.5, "max_increase": 0.2}}',
    )
    eval_config = pipeline_definition.create_eval_config(config)
    (judged,) = [m for spec in eval_config.metrics_specs for m in spec.metrics if m.class_name == "MeanAbsoluteError"]
    found = {
        json_format.MessageToJson(spec, sort_keys=True, indent=None): (
            t.threshold.value_threshold.HasField("lower_bound"), round(t.threshold.value_threshold.upper_bound.value, 6),
            t.threshold.change_threshold.direction, round(t.threshold.change_threshold.absolute.value, 6))
        for t in judged.per_slice_thresholds for spec in t.slicing_specs
    }
    lower_is_better = tfma.MetricDirection.LOWER_IS_BETTER
    assert found == {"{}": (False, 3.0, lower_is_better, 0.0),
                     '{"featureValues": {"payment_type": "Cash"}}': (False, 2.5, lower_is_better, 0.2)}
    # No classes: nothing is binarized per class.
    assert len(eval_config.metrics_specs) == 1
    for has_baseline in (True, False):
        tfma.utils.verify_eval_config(tfma.utils.update_eval_config_with_defaults(
            eval_config, has_baseline=has_baseline, rubber_stamp=True))
