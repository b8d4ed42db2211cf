"""pipeline/upstream/__init__.py: the table of patches, one install for every process, the version guard."""

import json
import re
import subprocess
import sys

import pytest

from pipeline import configs, upstream
from tests.conftest import LOCAL_RUNNER, PROJECT_ROOT, small_run_env

# Whether each patch is in place in a process: what the patched name is now, by the module it comes from.
STATE = """
import json, sys
def state():
    from apache_beam.transforms import userstate
    from tfx_bsl.tfxio import parquet_tfxio, tf_example_record
    from tensorflow_model_analysis.metrics import metric_util
    from tensorflow_transform import analyzer_nodes
    from tensorflow_transform.beam import analyzer_impls, common  # noqa: F401  (registers TFT's own)
    return {
        "overheads": userstate.get_dofn_specs.__module__.startswith("pipeline."),
        "tfrecord_source": tf_example_record.TFExampleRecord.BeamSource.__module__.startswith("pipeline."),
        "parquet_source": parquet_tfxio.ParquetTFXIO.TensorFlowDataset.__module__.startswith("pipeline."),
        "metric_inputs": metric_util.to_label_prediction_example_weight.__module__.startswith("pipeline."),
        "vocabulary_counts": common._PTRANSFORM_BY_OPERATION_DEF_SUBCLASS[
            analyzer_nodes.VocabularyAccumulate].get_ptransform(None)[0].__module__.startswith("pipeline."),
    }
"""


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STATE + script], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=600)


def test_the_table_names_every_patch_its_parity_test_and_versions_the_lock_pins():
    modules = {path.stem for path in (PROJECT_ROOT / "pipeline" / "upstream").glob("*.py")} - {"__init__"}
    assert set(upstream.BY_NAME) == modules
    lock = dict(re.findall(r"^([\w.-]+)==([^\s;]+)", (PROJECT_ROOT / "requirements.lock").read_text(), re.M))
    assert {library: lock[library] for library in upstream.VERIFIED} == upstream.VERIFIED
    docs = (PROJECT_ROOT / "docs" / "upgrading.md").read_text()
    for patch in upstream.PATCHES:
        assert (PROJECT_ROOT / patch.parity_test).is_file(), patch.parity_test
        assert set(patch.libraries) <= set(upstream.VERIFIED), patch.name
        row = next((line for line in docs.splitlines() if f"`pipeline/upstream/{patch.name}.py`" in line), "")
        assert f"`{patch.parity_test}`" in row and ("needed" in row) == patch.needed, (patch.name, row)


def test_importing_the_pipeline_patches_nothing_and_install_patches_all_but_the_on_demand_ones():
    result = _run(
        "import pipeline.pipeline, pipeline.components.parquet_components, pipeline.components.eval_extractors\n"
        "before = state()\n"
        "from pipeline import upstream\n"
        "installed = upstream.install()\n"
        "print(json.dumps([before, state(), installed, upstream.install()]))\n"
    )
    assert result.returncode == 0, result.stderr
    before, after, installed, again = json.loads(result.stdout.splitlines()[-1])
    assert not any(before.values()), before
    assert all(after.values()), after
    assert installed == again == [p.name for p in upstream.PATCHES if not p.on_demand]
    assert "steps aside" not in result.stderr


def test_a_speed_up_on_a_version_it_was_not_verified_on_steps_aside_with_one_warning_line():
    result = _run(
        "from pipeline import upstream\n"
        "real = upstream._installed_version\n"
        "upstream._installed_version = lambda d: '2.61.0' if d == 'apache-beam' else real(d)\n"
        "installed = upstream.install()\n"
        "upstream.install(); upstream.install('vocabulary_counts')\n"
        "print(json.dumps([state(), installed]))\n"
    )
    assert result.returncode == 0, result.stderr
    after, installed = json.loads(result.stdout.splitlines()[-1])
    # Every patch that reaches into Beam steps aside: the library's own code runs.
    beam = {p.name for p in upstream.PATCHES if "apache-beam" in p.libraries and not p.on_demand}
    assert beam == {"overheads", "tfrecord_source", "vocabulary_counts", "lost_workers"}
    assert set(installed) == {"metric_inputs", "parquet_source"}
    assert {name: on for name, on in after.items()} == {name: name not in beam for name in after}
    warnings = [line for line in result.stderr.splitlines() if "steps aside" in line]
    assert len(warnings) == len(beam), result.stderr  # one line each, however often install() is called
    assert all("apache-beam 2.61.0 (verified on 2.60.0)" in line for line in warnings), warnings


def test_a_needed_patch_on_another_version_stops_the_run_before_anything_runs(tmp_path, sample_data_dir):
    """The local runner with tfx_bsl's version faked: one line naming the patch, the library and both
    versions; exit status 2; no store, no artifact."""
    env = small_run_env(sample_data_dir, tmp_path / "out")
    result = subprocess.run([
        sys.executable, "-c",
        "import sys\n"
        "from pipeline import upstream\n"
        "real = upstream._installed_version\n"
        "upstream._installed_version = lambda d: '1.17.0' if d == 'tfx-bsl' else real(d)\n"
        f"sys.argv = [{LOCAL_RUNNER[1]!r}]\n"
        "from pipeline.runners import local_runner\n"
        "sys.exit(local_runner.main([]))\n",
    ], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == configs.EXIT_CONFIG_ERROR, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "pipeline/upstream/parquet_source.py" in errors[0]
    assert "tfx-bsl 1.17.0 (verified on 1.16.1)" in errors[0]
    assert "tests/pipeline/upstream/test_parquet_source.py" in errors[0]
    assert not list((tmp_path / "out").rglob("metadata.db"))
    assert not (tmp_path / "out" / "pipelines").exists()


def test_the_task_per_node_orchestrators_check_the_same_guard_first(monkeypatch, sample_data_dir, tmp_path):
    """Airflow's and Luigi's first task (lifecycle.begin_tasks, through check_input) refuses the run alike."""
    from pipeline.runners import lifecycle  # Only here: it loads TFX's orchestration.

    monkeypatch.setattr(upstream, "_installed", set())
    monkeypatch.setattr(upstream, "_stepped_aside", set())
    real = upstream._installed_version
    monkeypatch.setattr(upstream, "_installed_version", lambda d: "1.17.0" if d == "tfx-bsl" else real(d))
    for name, value in small_run_env(sample_data_dir, tmp_path / "out").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(upstream.UpstreamVersionError, match=r"tfx-bsl 1\.17\.0 \(verified on 1\.16\.1\)"):
        lifecycle.begin_tasks(configs.load_config(), "airflow", "manual__1")
