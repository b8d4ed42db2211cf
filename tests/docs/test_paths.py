"""Every repository path the docs name exists: README.md, docs/ and the folders' READMEs go stale first
when code moves, and a reader who follows a dead path stops reading."""

import re
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What a path named in backticks ends with, when it has no folder in it.
FILE_SUFFIXES = (".py", ".md", ".lock", ".in", ".txt", ".pbtxt", ".ipynb", ".yml", ".yaml", ".json", ".toml",
                 ".cfg", ".ini", ".sh", ".xml", ".csv")
# Not repository paths: placeholders, globs, variables, URLs, options, home and absolute paths.
NOT_A_PATH = re.compile(r"[<>{}*$~=:@|\[\]()'\",;]|^-|^/|^\.\.|\.\.\.")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# Python files the docs name that are upstream's, not ours (TFX's own taxi example).
UPSTREAM_MODULES = {"taxi_pipeline_native_keras.py", "taxi_utils_native_keras.py"}


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _ignored(path: str) -> bool:
    """Outputs the docs describe (tfx_output/, bench/data/...): git-ignored, so not in a clean clone."""
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=PROJECT_ROOT).returncode == 0


def _docs() -> list[Path]:
    return sorted(PROJECT_ROOT / p for p in _tracked() if p.endswith(".md") and not p.startswith("tests/"))


def named_paths(text: str) -> set[str]:
    """The repository paths named in a Markdown text's code spans: a span without spaces that holds a
    folder (`pipeline/runners/`) or ends like a file (`setup.py`)."""
    found = set()
    for span in CODE_SPAN.findall(text):
        if " " in span or NOT_A_PATH.search(span) or span.startswith("."):
            if not span.startswith((".github/", ".ci/", ".importlinter")):
                continue
        if "/" in span and not span.startswith("http") or span.endswith(FILE_SUFFIXES):
            found.add(span.rstrip("."))
    return found


def missing_paths(doc: Path, tracked: set[str]) -> list[str]:
    """The paths `doc` names inside this repository that are not in it. A path is taken to be the
    repository's when its first part is an entry at the root (`pipeline/...`, `Makefile`) or in the doc's
    own folder (bench/README.md's `results/...`); others are upstream's (`tfx/examples/...`) or a run's
    outputs described relative to where they go."""
    entries = {p for t in tracked for p in [*(str(a) for a in Path(t).parents), t]} - {"."}
    modules = {Path(t).name for t in tracked if t.endswith(".py")}
    here = doc.parent.relative_to(PROJECT_ROOT)
    missing = []
    for path in sorted(named_paths(doc.read_text())):
        clean = path.rstrip("/")
        # `pipeline/runners/lifecycle.main`: a module's attribute.
        candidates = [clean, re.sub(r"\.\w+$", ".py", clean)]
        first = clean.split("/")[0]
        if "/" not in clean and clean.endswith(".py"):  # a module named alone: ours somewhere, or upstream's
            if clean not in modules and clean not in UPSTREAM_MODULES:
                missing.append(path)
            continue
        if first in entries and "/" not in first:
            paths = candidates
        elif str(here / first) in entries:
            paths = [str(here / c) for c in candidates]
        else:
            continue
        if any(p in entries for p in paths) or any(_ignored(p) for p in paths):
            continue
        missing.append(path)
    return missing


def test_every_path_the_docs_name_exists():
    tracked = _tracked()
    missing = {str(doc.relative_to(PROJECT_ROOT)): found for doc in _docs() if (found := missing_paths(doc, tracked))}
    assert not missing, missing


def test_a_moved_path_is_caught(tmp_path):
    tracked = _tracked()
    doc = PROJECT_ROOT / "docs" / "a-doc-under-test.md"
    try:
        doc.write_text("See `pipeline/lifecycle.py`, `pipeline/runners/lifecycle.py`, `pipeline/runners/lifecycle.main`, "
                       "`docs/tests.md` and `docs/gone.md`; `tfx_output/ci/blessing.md` is an output, "
                       "`<pipeline>/x.py` a placeholder, `tfx/examples/x.py` upstream's; `lifecycle.py` is ours, "
                       "`lifecycles.py` nobody's.\n")
        assert missing_paths(doc, tracked) == ["docs/gone.md", "lifecycles.py", "pipeline/lifecycle.py"]
        # The same text in any file of the repository (a docstring, a comment).
        assert written_paths_missing(tracked | {"docs/a-doc-under-test.md"}) == [
            "docs/a-doc-under-test.md:1: pipeline/lifecycle.py", "docs/a-doc-under-test.md:1: docs/gone.md"]
    finally:
        doc.unlink()


def test_the_readme_is_a_front_door():
    """Under 250 lines: the two commands, what a run prints, the map; the reference is in docs/."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    assert "make run" in readme and "make test" in readme
    for doc in (PROJECT_ROOT / "docs").glob("*.md"):
        assert f"`docs/{doc.name}`" in readme, f"README's map does not name docs/{doc.name}"


# A repository path written out in code, comments, configuration or docs: a top-level folder of ours, then
# a file. Not preceded by a path of something else (TFX's tfx/examples/...).
WRITTEN_PATH = re.compile(r"(?<![\w/.-])((?:pipeline|modules|tests|docs|bench|cluster|scripts|schema|data|notebooks|"
                          r"examples|\.github|\.ci)/[\w./-]+\.(?:py|md|pbtxt|lock|txt|ipynb|ya?ml|sh|xml|json))\b")
TEXT_SUFFIXES = (".py", ".md", ".pbtxt", ".ipynb", ".yml", ".yaml", ".sh", ".toml", ".cfg", ".ini", ".txt", ".xml")
TEXT_NAMES = {"Makefile", "Dockerfile", ".importlinter", ".ci/run"}


def written_paths_missing(tracked: set[str]) -> list[str]:
    missing = []
    for name in sorted(tracked):
        if not (name.endswith(TEXT_SUFFIXES) or name in TEXT_NAMES) or name.startswith("bench/results/"):
            continue
        if name.startswith("tests/docs/"):  # these checks' own examples of paths that are not there
            continue
        text = (PROJECT_ROOT / name).read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for path in WRITTEN_PATH.findall(line):
                if path in tracked or _ignored(path):
                    continue
                missing.append(f"{name}:{number}: {path}")
    return missing


def test_every_path_the_code_and_its_comments_name_exists():
    """Comments and docstrings name the files they lean on (`see pipeline/guards/recovery.py`); a move
    leaves them pointing nowhere unless something checks."""
    assert written_paths_missing(_tracked()) == []
