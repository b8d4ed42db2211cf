"""The files the local clusters are made of, pinned in artifacts.lock and fetched into a cache.

Like requirements.lock for Python packages: every file (a Flink or Spark distribution from PyPI, each jar of
a Beam job server from Maven Central) is named with its URL and SHA-256, checked after download, and kept
in the cache, so a second start downloads nothing. `python -m cluster lock` writes the lock anew: Maven
resolves the job servers' poms (flink-job-server.pom.xml, spark-job-server.pom.xml) and PyPI's index gives
the distributions' files and hashes; installing needs neither Maven nor pip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
LOCK_FILE = CLUSTER_DIR / "artifacts.lock"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
PYPI_SIMPLE = "https://pypi.org/simple"
# What each part of a cluster is made of: the distributions by PyPI requirement, the job servers by pom.
DISTRIBUTIONS = {"flink": ("apache-flink==1.19.1", "apache-flink-libraries==1.19.1"), "spark": ("pyspark==3.5.3",)}
JOB_SERVER_POMS = {"flink-job-server": "flink-job-server.pom.xml", "spark-job-server": "spark-job-server.pom.xml"}
_DOWNLOAD_ATTEMPTS = 3


class ArtifactError(RuntimeError):
    """A download failed or does not match its pinned hash; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    part: str  # flink, flink-job-server, spark, spark-job-server
    source: str  # pypi or maven
    name: str  # a requirement (apache-flink==1.19.1) or Maven coordinates (group:artifact:version)
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


def cache_dir() -> Path:
    """Downloads and assembled homes: $PIPELINE_CLUSTER_CACHE, else ~/.cache/tfx-reference-pipeline/cluster."""
    configured = os.environ.get("PIPELINE_CLUSTER_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfx-reference-pipeline" / "cluster"


def read_lock(path: Path = LOCK_FILE) -> list[Artifact]:
    artifacts = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            artifacts.append(Artifact(*line.split("\t")))
    return artifacts


def lock_digest(part: str, path: Path = LOCK_FILE) -> str:
    """A digest of one part's pinned files: an assembled home is reused only while it is unchanged."""
    pinned = "\n".join(f"{a.url} {a.sha256}" for a in read_lock(path) if a.part == part)
    return hashlib.sha256(pinned.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(artifact: Artifact, cache: Path | None = None) -> Path:
    """The artifact's file in the cache, downloaded first if absent; its SHA-256 is checked either way."""
    downloads = (cache or cache_dir()) / "downloads"
    target = downloads / f"{artifact.sha256[:16]}-{artifact.filename}"
    if target.exists():
        if _sha256(target) == artifact.sha256:
            return target
        target.unlink()  # A file changed in the cache is never used: fetched again below.
    downloads.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    error: Exception | None = None
    for _ in range(_DOWNLOAD_ATTEMPTS):
        try:
            with urllib.request.urlopen(artifact.url, timeout=120) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            break
        except OSError as exc:  # URLError and timeouts are OSErrors: try again, then say which file.
            error = exc
    else:
        partial.unlink(missing_ok=True)
        raise ArtifactError(f"cannot download {artifact.name} from {artifact.url}: {error}")
    actual = _sha256(partial)
    if actual != artifact.sha256:
        partial.unlink()
        raise ArtifactError(
            f"{artifact.name} from {artifact.url} has SHA-256 {actual}, but cluster/artifacts.lock pins "
            f"{artifact.sha256}: refusing it"
        )
    os.replace(partial, target)
    return target


def fetch_part(part: str, cache: Path | None = None) -> list[Path]:
    """Every pinned file of one part (flink, flink-job-server, spark, spark-job-server), checked."""
    files = [fetch(artifact, cache) for artifact in read_lock() if artifact.part == part]
    if not files:
        raise ArtifactError(f"cluster/artifacts.lock pins nothing for {part}")
    return files


def assembled(part: str, build, cache: Path | None = None) -> Path:
    """A directory built once per lock digest by `build(directory, files)`, renamed into place when whole."""
    home = (cache or cache_dir()) / f"{part}-{lock_digest(part)}"
    if home.is_dir():
        return home
    files = fetch_part(part, cache)
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{part}-", dir=home.parent))
    try:
        build(staging, files)
        os.rename(staging, home)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not home.is_dir():  # Another process assembled it first; anything else is an error.
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return home


def merged_jar(directory: Path, files: list[Path]) -> None:
    """A job server's jars merged into one, `directory/job-server.jar`, as Beam's own job server jar is
    built (its shadow jar): the first copy of each class, the ServiceLoader registrations of all of them,
    no jar signatures. Beam's Flink runner ships the job server's classpath with every job, and Flink's
    JobManager pays per file, not per byte: one jar costs each job far less than the many Maven resolves
    (docs/distributed-engines.md)."""
    seen: set[str] = set()
    services: dict[str, list[str]] = {}
    with zipfile.ZipFile(directory / "job-server.jar", "w", zipfile.ZIP_DEFLATED) as merged:
        merged.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", (1980, 1, 1, 0, 0, 0)), "Manifest-Version: 1.0\n\n")
        for jar in sorted(files, key=lambda path: path.name.split("-", 1)[1]):
            with zipfile.ZipFile(jar) as source:
                for entry in source.infolist():
                    name, upper = entry.filename, entry.filename.upper()
                    if name.startswith("META-INF/services/") and not entry.is_dir():
                        services.setdefault(name, []).append(source.read(entry).decode().strip())
                    elif upper == "META-INF/MANIFEST.MF" or upper.startswith("META-INF/") and upper.endswith(
                        (".SF", ".DSA", ".RSA")
                    ):
                        continue
                    elif name not in seen:
                        seen.add(name)
                        merged.writestr(entry, source.read(entry))
        for name, registrations in sorted(services.items()):
            merged.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), "\n".join(registrations) + "\n")


def unpack_sdist(archive: Path, member_prefix: str, destination: Path) -> None:
    """The members of an sdist under `<name>-<version>/<member_prefix>`, moved to the top of `destination`."""
    with tarfile.open(archive) as tar:
        root = tar.getnames()[0].split("/", 1)[0]
        prefix = f"{root}/{member_prefix}"
        members = []
        for member in tar.getmembers():
            if member.name.startswith(prefix) and (member.isfile() or member.isdir()):
                member.name = member.name[len(prefix):]
                if member.name:
                    members.append(member)
        tar.extractall(destination, members=members, filter="data")


# Writing the lock (needs Maven and the network; installing needs neither).


def _pypi_file(requirement: str) -> tuple[str, str]:
    """The URL and SHA-256 of a requirement's source distribution, from PyPI's JSON simple index."""
    name, version = requirement.split("==")
    request = urllib.request.Request(
        f"{PYPI_SIMPLE}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    wanted = f"{name}-{version}.tar.gz"
    for entry in files:
        if entry["filename"] == wanted:
            return entry["url"], entry["hashes"]["sha256"]
    raise ArtifactError(f"PyPI has no {wanted}")


def _maven_jars(pom: Path) -> list[tuple[str, str, Path]]:
    """(coordinates, Central URL, local file) of every runtime jar Maven resolves for `pom`."""
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "dependencies.txt"
        subprocess.run(
            ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:list", f"-DoutputFile={listing}",
             "-DincludeScope=runtime", "-DoutputAbsoluteArtifactFilename=true"],
            check=True,
        )
        lines = listing.read_text().splitlines()
    jars = []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) < 6 or fields[2] != "jar":
            continue
        group, artifact = fields[0], fields[1]
        classifier = fields[3] if len(fields) == 7 else ""
        version = fields[-3]
        local = Path(fields[-1])
        path = f"{group.replace('.', '/')}/{artifact}/{version}/{local.name}"
        coordinates = ":".join(filter(None, (group, artifact, classifier, version)))
        jars.append((coordinates, f"{MAVEN_CENTRAL}/{path}", local))
    return sorted(jars)


def write_lock(path: Path = LOCK_FILE) -> None:
    rows = []
    for part, requirements in DISTRIBUTIONS.items():
        for requirement in requirements:
            url, sha256 = _pypi_file(requirement)
            rows.append(Artifact(part, "pypi", requirement, url, sha256))
    for part, pom in JOB_SERVER_POMS.items():
        for coordinates, url, local in _maven_jars(CLUSTER_DIR / pom):
            rows.append(Artifact(part, "maven", coordinates, url, _sha256(local)))
    header = (
        "# Every file the local Flink and Spark clusters are made of, with its SHA-256, checked after each\n"
        "# download (cluster/artifacts.py). Written by `python -m cluster lock`; review the diff.\n"
        "# part\tsource\tname\turl\tsha256\n"
    )
    body = "".join("\t".join(dataclasses.astuple(row)) + "\n" for row in rows)
    path.write_text(header + body)
