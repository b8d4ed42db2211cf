"""Serving versions appear whole or not at all, and retention never removes the serving one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline import configs
from pipeline.guards import serving_dir


def _model(path: Path, files: int = 300, size: int = 20_000) -> Path:
    """A model-like folder with many files, so a copy takes long enough to be watched."""
    (path / "variables").mkdir(parents=True)
    for i in range(files):
        (path / "variables" / f"shard-{i:04d}").write_bytes(os.urandom(size))
    (path / "saved_model.pb").write_bytes(b"graph")
    return path


def _files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def test_a_watcher_never_sees_a_partial_version(tmp_path):
    source = _model(tmp_path / "model")
    expected = _files(source)
    serving = tmp_path / "serving"
    serving.mkdir()
    seen: list[int] = []
    done = threading.Event()

    def watch():
        # What a model server polling the directory would load: any all-digit folder.
        while not done.is_set():
            for version in serving_dir.serving_versions(str(serving)):
                seen.append(_files(serving / version))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            serving_dir.publish(str(source), str(serving))
    finally:
        done.set()
        watcher.join()
    assert len(serving_dir.serving_versions(str(serving))) == 3
    assert seen, "the watcher never looked"
    assert set(seen) == {expected}
    assert not [n for n in os.listdir(serving) if n.startswith(".")]


def test_a_copy_that_fails_midway_leaves_no_version_and_no_staging(tmp_path):
    source = _model(tmp_path / "model", files=50)
    # A dangling link: copytree copies the other files, then fails on it.
    (source / "variables" / "zz-broken").symlink_to(tmp_path / "missing")
    serving = tmp_path / "serving"
    serving.mkdir()
    (serving / "100").mkdir()
    with pytest.raises(Exception, match="zz-broken"):
        serving_dir.publish(str(source), str(serving))
    assert sorted(os.listdir(serving)) == ["100"]


def test_versions_are_numbered_above_the_newest_and_never_overwritten(tmp_path):
    source = _model(tmp_path / "model", files=2)
    serving = tmp_path / "serving"
    (serving / "99999999999").mkdir(parents=True)
    target = serving_dir.publish(str(source), str(serving))
    assert Path(target).name == "100000000000"
    with pytest.raises(FileExistsError):
        serving_dir.publish(str(source), str(serving), version="100000000000")


def test_retention_keeps_the_newest_versions(tmp_path):
    source = _model(tmp_path / "model", files=2)
    serving = str(tmp_path / "serving")
    published = [Path(serving_dir.publish(str(source), serving)).name for _ in range(4)]
    assert serving_dir.apply_retention(serving, 0) == []
    assert serving_dir.apply_retention(serving, 2) == published[:2]
    assert serving_dir.serving_versions(serving) == published[2:]
    # Keeping one always keeps the serving (newest) one.
    assert serving_dir.apply_retention(serving, 1) == [published[2]]
    assert serving_dir.serving_versions(serving) == [published[3]]
    assert os.listdir(serving) == [published[3]]


def test_staging_left_by_a_killed_push_is_removed_but_a_live_one_is_not(tmp_path):
    serving = tmp_path / "serving"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, cwd=configs.PROJECT_ROOT)
    (serving / f"{serving_dir.STAGING_PREFIX}123-{dead.stdout.strip()}" / "variables").mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = serving / f"{serving_dir.STAGING_PREFIX}124-{sleeper.pid}"
        live.mkdir()
        assert serving_dir.remove_abandoned_staging(str(serving)) == [
            f"{serving_dir.STAGING_PREFIX}123-{dead.stdout.strip()}"
        ]
        assert live.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_serving_copy_of_compares_content(tmp_path):
    source = _model(tmp_path / "model", files=3)
    serving = str(tmp_path / "serving")
    assert serving_dir.serving_copy_of(str(source), serving) is None
    target = serving_dir.publish(str(source), serving)
    assert serving_dir.serving_copy_of(str(source), serving) == target
    (source / "saved_model.pb").write_bytes(b"another graph")
    assert serving_dir.serving_copy_of(str(source), serving) is None
