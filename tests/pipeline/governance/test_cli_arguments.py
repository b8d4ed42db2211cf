"""Every argument of the `pipeline` command a user can mistype: one line on stderr, exit status 2, no traceback.

The bulk calls `cli.main(argv)` in this process (the installed `pipeline` and `taxi-pipeline` scripts call
the same function with sys.argv, and parsing happens before anything is opened); a representative set runs
the installed scripts as a user does. Paths that are not a store are checked on real files (an empty one,
the run lock's, a text file, an SQLite database of something else) and left as they were; outputs that
cannot be written, a taken port and an unknown host stop with one line before any work. Commands against
a real store of real runs are in test_cli.py.
"""

from __future__ import annotations

import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.governance import cli
from pipeline.guards import store_lock

MAX_ID = str(2**63 - 1)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """A folder, a file that is not an SQLite store, and paths that do not exist."""
    root = tmp_path_factory.mktemp("cli_paths")
    (root / "notes.txt").write_text("not a database\n")
    (root / "empty.db").touch()
    with sqlite3.connect(root / "other.db") as connection:
        connection.execute("CREATE TABLE trips (fare REAL)")
    return {"{dir}": str(root), "{text}": str(root / "notes.txt"), "{missing}": str(root / "missing" / "x"),
            "{missing_db}": str(root / "metadata.db"), "{empty}": str(root / "empty.db"),
            "{sqlite}": str(root / "other.db")}


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
    (["runs", "--metadata-path", "{empty}"], "argument --metadata-path: {empty} is an empty file, not an ML Metadata store"),
    (["runs", "--metadata-path", "{sqlite}"],
     "argument --metadata-path: {sqlite} is an SQLite database without ML Metadata's tables"),
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
    (["promote", "--to", "{text}"], "argument --to: {text} is a file, not a serving directory"),
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


# ------------------------------------------------------------------------------- paths that are not a store


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _not_a_store(kind: str, root: Path) -> Path:
    """A real file of each kind a user may point the command at by mistake."""
    path = root / f"{kind}.db"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("run 1: fine\n")
    elif kind == "sqlite":
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE trips (fare REAL)")
            connection.execute("INSERT INTO trips VALUES (12.5)")
        connection.close()
    return path


@pytest.mark.parametrize("kind", ["empty", "text", "sqlite"])
@pytest.mark.parametrize("given", ["--metadata-path", "configuration"])
def test_a_file_that_is_not_a_store_is_refused_and_left_unchanged(kind, given, tmp_path, monkeypatch, capsys):
    path = _not_a_store(kind, tmp_path)
    before = _snapshot(path)
    if given == "configuration":
        monkeypatch.setenv("PIPELINE_METADATA_PATH", str(path))
        argv = ["runs"]
    else:
        argv = ["runs", "--metadata-path", str(path)]
    code = cli.main(argv) if given == "configuration" else pytest.raises(SystemExit, cli.main, argv).value.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1 and str(path) in err and "not an ML Metadata store" in err, err
    assert _snapshot(path) == before


def test_the_run_lock_is_not_a_store_while_held_or_after(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_OUTPUT_ROOT", str(tmp_path))
    config = configs.load_config()
    lock = store_lock.lock_path_for(config.metadata_path)
    with store_lock.hold(config, "test", say=lambda _: None):
        held = _snapshot(lock)
        assert held[0], "a held lock records its holder"
        for command in (["runs"], ["lineage", "serving"], ["blessing"], ["report", "latest"]):
            with pytest.raises(SystemExit) as stopped:
                cli.main([*command, "--metadata-path", str(lock)])
            err = capsys.readouterr().err
            assert stopped.value.code == 2 and f"{lock} is not an SQLite database" in err, err
        assert _snapshot(lock) == held
    released = _snapshot(lock)
    assert released[0] == b""
    with pytest.raises(SystemExit) as stopped:
        cli.main(["rollback", "--metadata-path", str(lock)])
    assert stopped.value.code == 2 and f"{lock} is an empty file" in capsys.readouterr().err
    assert _snapshot(lock) == released
    assert not os.path.exists(config.metadata_path)


# ------------------------------------------------------------------------ what is found only when it is used


@pytest.fixture
def empty_store(tmp_path, monkeypatch) -> Path:
    """A real ML Metadata store no pipeline has run against, as the configuration's store."""
    monkeypatch.setenv("PIPELINE_OUTPUT_ROOT", str(tmp_path / "output"))
    path = Path(configs.load_config().metadata_path)
    path.parent.mkdir(parents=True)
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(path)
    metadata_store.MetadataStore(connection)
    return path


@pytest.mark.parametrize("argv", [
    ["report", "latest", "-o", "/proc/r.html"],
    ["blessing", "latest", "--summary-file", "/proc/foo.md"],
    ["lineage", "serving", "-o", "/proc/lineage.txt"],
], ids=lambda argv: " ".join(argv))
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(argv, empty_store, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    # Stopped before the store was read: on this store the command would otherwise say nothing ran (1).
    assert code == 2 and captured.out == ""
    assert captured.err == f"error: cannot write {argv[-1]}: No such file or directory\n"
    assert not os.path.exists(argv[-1] + ".partial")


def test_the_github_step_summary_is_checked_first_too(empty_store, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/proc/summary.md")
    assert cli.main(["blessing"]) == 2
    assert capsys.readouterr() == ("", "error: cannot write /proc/summary.md: No such file or directory\n")


def test_an_output_that_can_be_written_is_left_as_it_was_when_nothing_is_written(empty_store, tmp_path, capsys):
    existing = tmp_path / "summary.md"
    existing.write_text("earlier job\n")
    before = _snapshot(existing)
    assert cli.main(["blessing", "--summary-file", str(existing)]) == 1  # no run in this store
    assert "has never run" in capsys.readouterr().err
    assert _snapshot(existing) == before
    assert cli.main(["report", "latest", "-o", str(tmp_path / "new.html")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output", "summary.md"]


def _tensorboard(*argv: str, logdir: Path) -> subprocess.CompletedProcess:
    """The installed command, in a process of its own: were the checks to pass, TensorBoard would start."""
    return subprocess.run([str(BIN / "pipeline"), "tensorboard", "--logdir", str(logdir), *argv],
                          capture_output=True, text=True, timeout=60)


def test_tensorboard_on_a_port_already_taken_is_one_line_and_exit_status_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _tensorboard("--port", str(port), logdir=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: cannot serve on port {port} of localhost: it is already in use\n"


@pytest.mark.parametrize(("host", "why"), [
    ("999.999.1.1", ""),  # not an address, and no such name
    ("no-such-host.invalid", ""),
    ("192.0.2.1", "Cannot assign requested address"),  # an address, but not this machine's (TEST-NET-1)
])
def test_tensorboard_on_a_host_it_cannot_serve_on_names_it_and_exits_2(host, why, tmp_path):
    result = _tensorboard("--host", host, "--port", "0", logdir=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: cannot serve on host {host}: {why}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


# ------------------------------------------------------------------------------------- random arguments

# Words a user might type, right or wrong; each case draws a few. `tensorboard` is parsed only (it would
# start a server); every other command runs against a real, empty store.
_WORDS = [
    "runs", "lineage", "rollback", "report", "blessing", "promote", "tensorboard", "latest", "serving",
    "--limit", "--format", "json", "text", "dot", "--output", "-o", "--metadata-path", "--serving-model-dir",
    "--pipeline-name", "--production", "--force", "--reason", "--to", "--summary-file", "--port", "--host",
    "--logdir", "--help", "-h", "0", "1", "-1", "007", "2.5", MAX_ID, str(2**64), "1e3", "", " ", "\t",
    "١٢", "ünïcode", "--", "-", "--limit=3", "--format=xml", "{dir}", "{text}", "{missing}", "{empty}",
    "{sqlite}", "/proc/x.html", "/dev/null", "chicago-taxi",
]


def _random_argv(rng: random.Random, paths: dict[str, str]) -> list[str]:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.7:
        words.insert(0, rng.choice(_WORDS[:7]))
    if rng.random() < 0.2:
        words.append("".join(rng.choice("ab-_=./ 0\x7f€") for _ in range(rng.randint(0, 8))))
    return [_fill(word, paths) for word in words]


def test_random_arguments_end_in_an_answer_or_one_line_never_a_traceback(
    empty_store, paths, tmp_path, monkeypatch, capsys
):
    rng = random.Random(33)
    monkeypatch.chdir(tmp_path)  # a report without -o would be written here
    codes = []
    for _ in range(300):
        argv = _random_argv(rng, paths)
        try:
            args = cli.build_parser().parse_args(argv)
            code = 0 if args.command == "tensorboard" else cli.main(argv)
        except SystemExit as stopped:
            code = stopped.code
        captured = capsys.readouterr()
        assert code in (0, 1, 2), (argv, code, captured.err)
        assert "Traceback" not in captured.err, (argv, captured.err)
        if code:
            assert len(captured.err.splitlines()) == 1, (argv, captured.err)
        codes.append(code)
    assert {0, 1, 2} <= set(codes)  # help, "nothing ran" from the store, and malformed arguments
    assert _snapshot(Path(paths["{empty}"]))[0] == b""
