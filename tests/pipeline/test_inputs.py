"""Which files a run reads (TFX's span resolution) and how large they are."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipeline import configs, inputs
from pipeline import pipeline as pipeline_definition
from pipeline.beam import profiles


def _rows(path: Path, rows: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    line = b"1,2.5,Cash,some company name\n"
    (path / "data.csv").write_bytes(b"a,b,c,d\n" + line * rows)
    return path


def test_eval_split_is_capped_on_large_inputs(tmp_path):
    small = configs.load_config(data_root=str(_rows(tmp_path / "small", 1000)), max_eval_rows=400)
    assert inputs.split_hash_buckets(small) == (3, 1)  # 250 eval rows
    large = configs.load_config(data_root=str(_rows(tmp_path / "large", 10_000)), max_eval_rows=400)
    assert inputs.estimated_rows(inputs.resolve_for(large).files) == 10_001
    assert inputs.split_hash_buckets(large) == (25, 1)  # about 385 eval rows
    assert inputs.split_hash_buckets(dataclasses.replace(large, max_eval_rows=0)) == (3, 1)
    remote = configs.load_config(data_root="gs://bucket/taxi", max_eval_rows=400)
    assert inputs.split_hash_buckets(remote) == (3, 1)
    components = {c.id: c for c in pipeline_definition.create_components(large)}
    output_config = json.loads(components["CsvExampleGen"].exec_properties["output_config"])
    assert [s["hash_buckets"] for s in output_config["split_config"]["splits"]] == [25, 1]


def test_span_layout_is_sized_by_its_newest_span(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "MULTI_PROCESSING_MIN_INPUT_BYTES", 100)
    for span, size in ((1, 1000), (2, 10)):
        (tmp_path / "data" / f"span-{span}").mkdir(parents=True)
        (tmp_path / "data" / f"span-{span}" / "data.csv").write_bytes(b"x" * size)
    config = configs.load_config(
        data_root=str(tmp_path / "data"), input_pattern="span-{SPAN}/*.csv", output_root=str(tmp_path / "out")
    )
    run_input = inputs.resolve_for(config)
    assert (run_input.span, run_input.files) == (2, (str(tmp_path / "data" / "span-2" / "data.csv"),))
    assert inputs.local_bytes(run_input) == 10
    assert profiles.resolved_beam_profile(config) == "in_memory"


def _file(path: Path, text: str = "a,b\n1,2\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_newest_span_and_its_newest_version_are_read(tmp_path):
    _file(tmp_path / "span-1" / "v1" / "data.csv")
    _file(tmp_path / "span-2" / "v1" / "data.csv")
    newest = _file(tmp_path / "span-2" / "v3" / "data.csv")
    run_input = inputs.resolve(str(tmp_path), "span-{SPAN}/v{VERSION}/*.csv")
    assert (run_input.span, run_input.version, run_input.files) == (2, 3, (str(newest),))
    assert run_input.describe() == "files span-2/v3/data.csv; span 2, version 3"
    assert run_input.where(str(newest)) == f"{newest} (span 2)"
    # A recorded run's span and version name its files, whatever is newest now.
    older = inputs.resolve(str(tmp_path), "span-{SPAN}/v{VERSION}/*.csv", span=1, version=1)
    assert older.files == (str(tmp_path / "span-1" / "v1" / "data.csv"),)
    assert older.fingerprint.startswith("split:single_split,num_files:1,total_bytes:8,")


def test_a_newer_span_folder_without_a_matching_file_is_named(tmp_path):
    read = _file(tmp_path / "span-1" / "data.csv")
    (tmp_path / "span-2").mkdir()
    _file(tmp_path / "span-3" / "notes.txt")
    run_input = inputs.resolve(str(tmp_path), "span-{SPAN}/*.csv")
    assert (run_input.span, run_input.files, run_input.skipped_folder) == (1, (str(read),), "span-3")
    # With versions: the newest span's newest version folder.
    (tmp_path / "v" / "span-1" / "v1").mkdir(parents=True)
    _file(tmp_path / "v" / "span-1" / "v1" / "data.csv")
    (tmp_path / "v" / "span-1" / "v2").mkdir()
    assert inputs.resolve(str(tmp_path / "v"), "span-{SPAN}/v{VERSION}/*.csv").skipped_folder == "span-1/v2"
    # Nothing is skipped when the newest folder is read, or when a span is asked for.
    _file(tmp_path / "span-3" / "data.csv")
    assert inputs.resolve(str(tmp_path), "span-{SPAN}/*.csv").skipped_folder is None
    assert inputs.resolve(str(tmp_path), "span-{SPAN}/*.csv", span=1).skipped_folder is None
    assert inputs.resolve(str(tmp_path / "span-1"), "*.csv").skipped_folder is None


def test_the_plain_layout_reads_every_match_but_folders(tmp_path):
    first, second = _file(tmp_path / "a.csv"), _file(tmp_path / "b.csv")
    (tmp_path / "folder.csv").mkdir()
    run_input = inputs.resolve(str(tmp_path), "*.csv")
    assert (run_input.span, run_input.version, run_input.in_spans) == (0, None, False)
    assert run_input.files == (str(first), str(second))
    assert run_input.where(str(first)) == str(first)


def test_nothing_to_read_is_named(tmp_path):
    with pytest.raises(configs.ConfigError, match=r"no input files match 'span-\{SPAN\}/\*.csv' in .* \(set"):
        inputs.resolve(str(tmp_path), "span-{SPAN}/*.csv")
    with pytest.raises(configs.ConfigError, match="data folder .*nowhere does not exist"):
        inputs.resolve(str(tmp_path / "nowhere"), "*.csv")
    with pytest.raises(configs.ConfigError, match="input_pattern 'v\\{VERSION\\}/\\*.csv'"):
        inputs.resolve(str(tmp_path), "v{VERSION}/*.csv")
