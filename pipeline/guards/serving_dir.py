"""The serving directory: numbered model versions that appear whole or not at all, and leave the same way.

A model server (TF Serving) watches the directory and serves the highest number. A new version is copied
under a hidden staging name beside the versions and then renamed into place; a rename within one
filesystem is atomic, so the server sees no version or a complete one, never half a model. Staging names
are not numbers, which TF Serving ignores. Retired versions are renamed away before they are deleted.
Both the Pusher and a rollback publish through here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

STAGING_PREFIX = ".staging-"
RETIRING_PREFIX = ".retiring-"


def serving_versions(serving_model_dir: str) -> list[str]:
    """The version directories under the serving directory, oldest first (versions are integers)."""
    if not os.path.isdir(serving_model_dir):
        return []
    return sorted(
        (name for name in os.listdir(serving_model_dir) if name.isdigit()
         and os.path.isdir(os.path.join(serving_model_dir, name))),
        key=int,
    )


def next_version(serving_model_dir: str) -> str:
    """A Unix-time version like TFX's Pusher writes, but always above the newest one present."""
    versions = serving_versions(serving_model_dir)
    return str(max(int(time.time()), int(versions[-1]) + 1 if versions else 0))


def tree_digest(path: str | os.PathLike) -> str:
    """A hash of a directory's relative file names and contents."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def serving_copy_of(model_dir: str, serving_model_dir: str) -> str | None:
    """The serving version's path when it holds exactly the files of `model_dir`, else None."""
    versions = serving_versions(serving_model_dir)
    if not versions:
        return None
    live = os.path.join(serving_model_dir, versions[-1])
    return live if tree_digest(live) == tree_digest(model_dir) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_staging(serving_model_dir: str) -> list[str]:
    """Delete staging and retiring folders whose writer died (a killed push); returns their names."""
    removed = []
    if not os.path.isdir(serving_model_dir):
        return removed
    for name in os.listdir(serving_model_dir):
        if not name.startswith((STAGING_PREFIX, RETIRING_PREFIX)):
            continue
        pid = name.rsplit("-", 1)[-1]
        if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
            continue
        shutil.rmtree(os.path.join(serving_model_dir, name), ignore_errors=True)
        removed.append(name)
    return removed


def publish(source: str, serving_model_dir: str, version: str | None = None) -> str:
    """Copy the model at `source` in as a new version, atomically; returns the version's path."""
    os.makedirs(serving_model_dir, exist_ok=True)
    remove_abandoned_staging(serving_model_dir)
    version = version or next_version(serving_model_dir)
    target = os.path.join(serving_model_dir, version)
    if os.path.exists(target):
        raise FileExistsError(f"serving version {target} already exists")
    staging = os.path.join(serving_model_dir, f"{STAGING_PREFIX}{version}-{os.getpid()}")
    try:
        shutil.copytree(source, staging)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def apply_retention(serving_model_dir: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions (0 keeps all); the serving one is never deleted."""
    versions = serving_versions(serving_model_dir)
    if keep <= 0 or len(versions) <= keep:
        return []
    retired = versions[:-keep]
    for version in retired:
        aside = os.path.join(serving_model_dir, f"{RETIRING_PREFIX}{version}-{os.getpid()}")
        os.rename(os.path.join(serving_model_dir, version), aside)
        shutil.rmtree(aside)
    return retired
