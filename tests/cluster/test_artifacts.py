"""The clusters' pinned files: the lock's shape, downloads checked against it and cached, the job server's
jars merged into one."""

from __future__ import annotations

import hashlib
import re
import zipfile

import pytest

from cluster import artifacts


def test_the_lock_pins_every_part_with_a_sha256_from_the_two_registries():
    pinned = artifacts.read_lock()
    assert {a.part for a in pinned} == {"flink", "flink-job-server", "spark", "spark-job-server"}
    for artifact in pinned:
        assert re.fullmatch(r"[0-9a-f]{64}", artifact.sha256), artifact
        assert artifact.url.startswith((artifacts.MAVEN_CENTRAL + "/", "https://files.pythonhosted.org/")), artifact
    names = {a.name for a in pinned}
    assert {"apache-flink==1.19.1", "apache-flink-libraries==1.19.1", "pyspark==3.5.3",
            "org.apache.beam:beam-runners-flink-1.19:2.62.0", "org.apache.beam:beam-runners-spark-3:2.62.0"} <= names
    # One version of each jar per job server: Maven's resolution, not a pile of candidates.
    for part in ("flink-job-server", "spark-job-server"):
        modules = [a.name.rsplit(":", 1)[0] for a in pinned if a.part == part]
        assert len(modules) == len(set(modules)), part


def _artifact(path, content: bytes, sha256: str | None = None) -> artifacts.Artifact:
    path.write_bytes(content)
    return artifacts.Artifact("flink", "pypi", "example==1", path.as_uri(), sha256 or hashlib.sha256(content).hexdigest())


def test_a_download_is_checked_cached_and_fetched_again_when_changed(tmp_path):
    artifact = _artifact(tmp_path / "example-1.tar.gz", b"the real bytes")
    cached = artifacts.fetch(artifact, tmp_path / "cache")
    assert cached.read_bytes() == b"the real bytes"
    (tmp_path / "example-1.tar.gz").unlink()  # the source is gone: the cache alone serves it
    assert artifacts.fetch(artifact, tmp_path / "cache") == cached
    cached.write_bytes(b"changed in the cache")
    with pytest.raises(artifacts.ArtifactError, match="cannot download example==1"):
        artifacts.fetch(artifact, tmp_path / "cache")  # never used as it is; fetched again, and the source is gone
    assert not cached.exists()


def test_a_file_whose_hash_differs_from_the_lock_is_refused(tmp_path):
    artifact = _artifact(tmp_path / "example-1.tar.gz", b"tampered", sha256="0" * 64)
    with pytest.raises(artifacts.ArtifactError, match=f"example==1 from {re.escape(artifact.url)} has SHA-256 "
                       f"{hashlib.sha256(b'tampered').hexdigest()}, but cluster/artifacts.lock pins 0{{64}}"):
        artifacts.fetch(artifact, tmp_path / "cache")
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_the_job_servers_jars_merge_into_one(tmp_path):
    def jar(name: str, entries: dict[str, str]):
        path = tmp_path / f"0123456789abcdef-{name}"
        with zipfile.ZipFile(path, "w") as z:
            for entry, text in entries.items():
                z.writestr(entry, text)
        return path

    first = jar("a-1.jar", {"META-INF/MANIFEST.MF": "Main-Class: A\n", "org/A.class": "a",
                            "META-INF/services/org.Registrar": "org.A\n", "META-INF/A.SF": "signature"})
    second = jar("b-1.jar", {"org/A.class": "another a", "org/B.class": "b",
                             "META-INF/services/org.Registrar": "org.B\n"})
    artifacts.merged_jar(tmp_path, [second, first])
    with zipfile.ZipFile(tmp_path / "job-server.jar") as merged:
        assert merged.read("org/A.class") == b"a"  # the first jar by name wins, as on a classpath
        assert merged.read("org/B.class") == b"b"
        assert merged.read("META-INF/services/org.Registrar").decode().split() == ["org.A", "org.B"]
        assert "META-INF/A.SF" not in merged.namelist()
        assert merged.read("META-INF/MANIFEST.MF").decode().strip() == "Manifest-Version: 1.0"
