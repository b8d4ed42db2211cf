"""Every argument of the `pipeline` command a user can mistype: one line on stderr, exit status 2, no traceback.

The bulk calls `cli.main(argv)` in this process (the installed `pipeline` and `taxi-pipeline` scripts call
the same function with sys.argv, and parsing happens before anything is opened); a representative set runs
the installed scripts as a user does. Commands against a real store are in test_cli.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.governance import cli

MAX_ID = str(2**63 - 1)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """A folder, a file that is not an SQLite store, and paths that do not exist."""
    root = tmp_path_factory.mktemp("cli_paths")
    (root / "notes.txt").write_text("not a database\n")
    return {"{dir}": str(root), "{text}": str(root / "notes.txt"), "{missing}": str(root / "missing" / "x"),
            "{missing_db}": str(root / "metadata.db")}


# (argv, what the error line must say). {...} are filled from `paths`.
MALFORMED = [
    ([], "the following arguments are required: command"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["runs", "--limit", "-5"], "argument --limit: expected a whole number of at least 1, got '-5'"),
    (["runs", "--limit", "0"], "argument --limit: expected a whole number of at least 1, got '0'"),
    (["runs", "--limit", "ten"], "argument --limit: expected a whole number"),
    (["runs", "--limit", "2.5"], "argument --limit: expected a whole number"),
    (["runs", "--limit"], "argument --limit: expected one argument"),
    (["runs", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["runs", "--bogus"], "unrecognized arguments: --bogus"),
    (["runs", "--metadata-path", "{missing_db}"], "argument --metadata-path: no ML Metadata store at {missing_db}"),
    (["runs", "--metadata-path", "{dir}"], "argument --metadata-path: {dir} is a directory"),
    (["runs", "--metadata-path", "{text}"], "argument --metadata-path: {text} is not an SQLite database"),
    (["runs", "--serving-model-dir", "{missing}"], "argument --serving-model-dir: no directory {missing}"),
    (["runs", "--serving-model-dir", "{text}"], "argument --serving-model-dir: {text} is a file"),
    (["runs", "--pipeline-name", ""], "argument --pipeline-name: expected a name, got an empty one"),
    (["lineage"], "the following arguments are required: model"),
    (["lineage", "abc"], "argument model: expected `serving`, a serving version or an artifact id"),
    (["lineage", "-1"], "argument model: expected `serving`"),
    (["lineage", "0"], "argument model: expected `serving`"),
    (["lineage", "99999999999999999999"], f"a whole number from 1 to {MAX_ID}), got '99999999999999999999'"),
    (["lineage", str(2**63)], f"got '{2**63}'"),
    (["lineage", "١٢"], "argument model: expected `serving`"),  # Arabic-Indic digits: isdigit(), but no id
    (["lineage", "serving", "--format", "svg"], "argument --format: invalid choice: 'svg'"),
    (["lineage", "serving", "-o", "{missing}"], "argument --output/-o: cannot write {missing}: no directory"),
    (["lineage", "serving", "-o", "{dir}"], "argument --output/-o: {dir} is a directory"),
    (["rollback", "99999999999999999999"], "argument version: expected a serving version or an artifact id"),
    (["rollback", "-3"], "argument version: expected a serving version or an artifact id"),
    (["rollback", "latest"], "argument version: expected a serving version or an artifact id"),
    (["rollback", "1", "--serving-model-dir", "{missing}"], "argument --serving-model-dir: no directory"),
    (["rollback", "1", "--metadata-path", "{missing_db}"], "argument --metadata-path: no ML Metadata store"),
    (["rollback", "1", "--reason"], "argument --reason: expected one argument"),
    (["report"], "the following arguments are required: run"),
    (["report", " "], "argument run: expected a run name"),
    (["report", "latest", "--output", "{missing}"], "argument --output/-o: cannot write {missing}"),
    (["report", "latest", "-o", "{dir}"], "argument --output/-o: {dir} is a directory"),
    (["tensorboard", "--port", "70000"], "argument --port: expected a port number from 0 (any free port) to 65535"),
    (["tensorboard", "--port", "-1"], "argument --port: expected a port number"),
    (["tensorboard", "--port", "http"], "argument --port: expected a port number"),
    (["tensorboard", "--host", ""], "argument --host: expected a name"),
    (["tensorboard", ""], "argument run: expected a run name"),
    (["tensorboard", "--logdir", "{missing}"], "argument --logdir: no directory {missing}"),
]


def _fill(text: str, paths: dict[str, str]) -> str:
    for key, value in paths.items():
        text = text.replace(key, value)
    return text


def _assert_one_line_error(code, err: str, out: str, expected: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch(r"(pipeline(?: [a-z]+)?): error: .+ \(see \1 --help\)", lines[0]), err
    assert expected in lines[0], err


@pytest.mark.parametrize(("argv", "expected"), MALFORMED, ids=[" ".join(argv) or "(none)" for argv, _ in MALFORMED])
def test_a_malformed_argument_is_one_line_and_exit_status_2(argv, expected, paths, capsys):
    argv = [_fill(arg, paths) for arg in argv]
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    captured = capsys.readouterr()
    _assert_one_line_error(stopped.value.code, captured.err, captured.out, _fill(expected, paths))


# As a user runs them: both names of the installed command.
AS_A_USER = [
    ("taxi-pipeline", ["rollback", "99999999999999999999"], "argument version"),
    ("pipeline", ["runs", "--limit", "-5"], "argument --limit"),
    ("pipeline", ["lineage", "abc"], "argument model"),
    ("pipeline", ["report", "latest", "-o", "{missing}"], "argument --output/-o"),
    ("pipeline", ["tensorboard", "--port", "70000"], "argument --port"),
]


@pytest.mark.parametrize(("script", "argv", "expected"), AS_A_USER, ids=[" ".join([s, *a]) for s, a, _ in AS_A_USER])
def test_the_installed_command_says_it_in_one_line(script, argv, expected, paths):
    argv = [_fill(arg, paths) for arg in argv]
    result = subprocess.run([str(BIN / script), *argv], capture_output=True, text=True, timeout=120)
    _assert_one_line_error(result.returncode, result.stderr, result.stdout, expected)


@pytest.mark.parametrize("argv", [
    ["rollback", MAX_ID], ["rollback", "1795836118"], ["rollback"], ["lineage", "serving"], ["lineage", "007"],
    ["runs", "--limit", "1"], ["tensorboard"], ["tensorboard", "--port", "0"], ["tensorboard", "--port", "65535"],
    ["tensorboard", "--logdir", "."],
    ["report", "2026-11-28T03:20:54.637816"],
])
def test_well_formed_arguments_are_accepted(argv):
    args = cli.build_parser().parse_args(argv)
    assert args.command == argv[0]
    if argv[:2] == ["lineage", "007"]:
        assert args.model == "7"
