"""Every command README.md, docs/ and bench/README.md show in a shell block is run by a test, marked in the doc
as needing a cloud account, or named below with the reason no test runs it (docs/tests.md, "Commands in
the docs"). A test claims a command by taking it from the doc with `documented(doc, command)`
(tests/docs/commands.py) and running what that returns."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.docs.commands import PROJECT_ROOT, Command, commands_in, documented_commands

_SUITE = "the suite itself, or a part of it: run inside the suite, those tests would run twice"
_BENCH = ("the benchmark: many full pipeline runs, tens of minutes to hours (bench/README.md), and it writes its "
          "results into bench/results/, the committed measurements")
# (doc, command): why no test runs it. Only what a test cannot sensibly run; a command that needs a cloud
# account says so in the doc instead.
ALLOWED = {
    ("README.md", "make test"): _SUITE + " (.ci/run and the CI workflow run it; tests/ci/test_workflows.py "
                                         "checks the workflow's one command is `make test`)",
    ("docs/tests.md", '.venv/bin/python -m pytest -m "not e2e"'): _SUITE + " (`make unit-test` runs it; "
                                                                    "tests/ci/test_make_targets.py checks so)",
    ("docs/tests.md", ".venv/bin/python -m pytest tests/pipeline/guards"): _SUITE,
    ("docs/configuration.md", "PIPELINE_BEAM_PROFILE=multi_processing PIPELINE_BEAM_DIRECT_NUM_WORKERS=2 make run"):
        "a whole run with Beam's work in two worker processes that each import TensorFlow: 80 s on the suite's "
        "sample against 29 s in memory; tried as the data gate's second run, it added 100 s to that module, beyond "
        "what the docs' commands may add to the suite (tests/pipeline/beam/test_profiles.py checks the profile's "
        "args; make bench runs the profile at 1.5M rows)",
    ("docs/runners.md", "docker build -t us-central1-docker.pkg.dev/PROJECT/REPO/chicago-taxi:v1 ."):
        "builds the image for Vertex AI: a Docker daemon, gigabytes of packages, many minutes; "
        "tests/pipeline/runners/test_kubeflow_v2_runner.py checks the Dockerfile against the lock",
    ("bench/README.md", "make bench"): _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run compare --reps 3"): _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run compare --small --before /path/to/other/checkout --reps 3"):
        _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run compare --before /path/to/other/checkout --reps 3"): _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run scale --sizes 150k,1.5M,10M"): _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run scale --sizes 150k,1.5M,10M --before /path/to/other/checkout"):
        _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run scale --sizes 1.5M,10M --engines auto,flink --tag flink"):
        _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.run scale --sizes 150k,1.5M,10M --scales sample,full"): _BENCH,
    ("bench/README.md", ".venv/bin/python -m bench.payload --examples <a run's CsvExampleGen/examples/<id>>"):
        _BENCH + "; it takes a run written as tf.Examples, which the pipeline no longer writes",
    ("bench/README.md", ".venv/bin/python -m bench.cli --before /path/to/other/checkout --reps 5"):
        "the `pipeline` command's benchmark: a store of real runs (`make run`), two checkouts, a few minutes of "
        "calls that would time the suite's load rather than the code; it writes bench/results/cli.json, a "
        "committed measurement. tests/pipeline/governance/test_cli.py runs each command it times",
}


def claims(root: Path = PROJECT_ROOT / "tests") -> tuple[set[tuple[str, str]], list[str]]:
    """The (doc, command) pairs the tests under `root` take with `documented(...)`, and every such call
    whose arguments are not two literal strings (which this check could not read). tests/docs/ is left
    out: it holds the helper and this check's own examples."""
    found, unreadable = set(), []
    for path in sorted(root.rglob("*.py")):
        if "docs" in path.relative_to(root).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "documented":
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if len(args) == len(node.args) == 2 and not node.keywords:
                found.add((args[0], args[1]))
            else:
                unreadable.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found, unreadable


def uncovered(commands: list[Command], claimed: set[tuple[str, str]], allowed: dict) -> list[str]:
    return [str(c) for c in commands if not c.cloud and (c.doc, c.text) not in claimed | set(allowed)]


def test_every_documented_command_is_run_by_a_test_or_needs_a_cloud_account_or_says_why_not():
    commands = documented_commands()
    claimed, unreadable = claims()
    assert not unreadable, f"documented(...) with arguments other than two literal strings: {unreadable}"
    missing = uncovered(commands, claimed, ALLOWED)
    assert not missing, (
        "commands no test runs: run each from a test with documented(doc, command) (tests/docs/commands.py), "
        "or mark it `# needs a cloud account (...)` in the doc, or add it to ALLOWED with the reason:\n"
        + "\n".join(missing))


def test_every_claim_and_exception_names_a_command_the_docs_show():
    """A test claiming a command the doc no longer shows fails when it runs; this says so also for tests that
    are skipped here (an orchestrator not installed). An exception for a command that a test now runs, or
    that the doc marks as needing a cloud account, is stale."""
    commands = documented_commands()
    shown = {(c.doc, c.text) for c in commands}
    claimed, _ = claims()
    assert sorted(claimed - shown) == []
    assert sorted(set(ALLOWED) - shown) == []
    cloud = {(c.doc, c.text) for c in commands if c.cloud}
    assert sorted(set(ALLOWED) & (claimed | cloud)) == []
    assert sorted(claimed & cloud) == []


EXAMPLE = """\
Some text, `make run` in a span is not a command.

```bash
$ make run                      # a prompt and a comment
PIPELINE_X=1 PIPELINE_Y="a b" make run   # settings first
python -m tool --a 1 \\
    --b "two # three"   # continued
# a comment line
tool &
```

```
output, not commands
```

```bash
make train && make check-blessing
# Needs a cloud account (GCP): everything below, up to the blank line.
gcloud one
gcloud two \\
    --more

gcloud three   # needs a cloud account (GCP)
export A=1 B='x y'
```
"""


def test_commands_are_read_with_prompts_comments_continuations_and_settings():
    found = commands_in(EXAMPLE, "example.md")
    assert [(c.line, c.text, c.cloud) for c in found] == [
        (4, "make run", False),
        (5, 'PIPELINE_X=1 PIPELINE_Y="a b" make run', False),
        (6, 'python -m tool --a 1 --b "two # three"', False),
        (9, "tool &", False),
        (17, "make train && make check-blessing", False),
        (19, "gcloud one", True),
        (20, "gcloud two --more", True),
        (23, "gcloud three", True),
        (24, "export A=1 B='x y'", False),
    ]
    first, settings, continued, background, both, *_, export = found
    assert first.comment == "a prompt and a comment" and first.words == ["make", "run"]
    assert settings.env == {"PIPELINE_X": "1", "PIPELINE_Y": "a b"} and settings.words == ["make", "run"]
    assert not settings.needs_shell and settings.argv == ["make", "run"]
    assert continued.words == ["python", "-m", "tool", "--a", "1", "--b", "two # three"]
    assert background.background and background.words == ["tool"] and not background.needs_shell
    assert [step.text for step in both.steps] == ["make train", "make check-blessing"] and both.needs_shell
    assert export.env == {"A": "1", "B": "x y"} and export.words == [] and export.needs_shell


def test_a_replacement_changes_a_value_and_needs_it_there():
    command = commands_in("```bash\nROLLBACK_REASON=\"a b\" tool --port 6007 /data/taxi\n```\n")[0]
    changed = command.replace("6007", "0").replace("a b", "it's $(not run)")
    assert changed.argv[1:] == ["--port", "0", "/data/taxi"]
    assert changed.env == {"ROLLBACK_REASON": "it's $(not run)"}
    assert command.argv[1:] == ["--port", "6007", "/data/taxi"]  # the doc's own, unchanged
    with pytest.raises(pytest.fail.Exception, match="no longer holds '8082'"):
        command.replace("8082", "0")


def test_an_uncovered_command_is_named_with_its_doc_and_line(tmp_path):
    found = commands_in(EXAMPLE, "example.md")
    claimed = {("example.md", "make run"), ("example.md", "tool &")}
    allowed = {("example.md", "make train && make check-blessing"): "a reason"}
    assert uncovered(found, claimed, allowed) == [
        "example.md:5: PIPELINE_X=1 PIPELINE_Y=\"a b\" make run",
        'example.md:6: python -m tool --a 1 --b "two # three"',
        "example.md:24: export A=1 B='x y'",
    ]
    (tmp_path / "test_x.py").write_text(
        "from tests.docs.commands import documented\n"
        "documented('README.md', 'make run').run()\n"
        "COMMAND = 'make run'\n"
        "documented('README.md', COMMAND)\n")
    assert claims(tmp_path) == ({("README.md", "make run")}, [f"{tmp_path.name}/test_x.py:4"])
