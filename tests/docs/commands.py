"""The commands the docs show, and how a test runs one: `documented(doc, command)`.

README.md, docs/*.md and bench/README.md show commands in fenced shell blocks (```bash). A test that runs
one takes it from the doc, `documented("docs/runners.md", "airflow dags test chicago-taxi")`, which fails
the test when the doc no longer shows that command, and runs what it returns: the doc's text, with the
program found in the environment the tests run in (as in a shell where `.venv/bin/activate` ran). Values
a reader is meant to change (a run id, a port, `/data/taxi`, PROJECT) are swapped with `replace(old, new)`,
which fails when the doc's command no longer holds `old`. tests/docs/test_commands.py finds these calls
in tests/ (with literal arguments) and fails for every documented command that none of them claims,
unless the doc marks it as needing a cloud account (CLOUD_MARKER in a comment) or the check's allow-list
names it with a reason. The convention is described in docs/tests.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Where the shell blocks are read from (paths relative to the project root).
DOC_PATTERNS = ("README.md", "docs/*.md", "bench/README.md")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
# In a comment on the command's line, or on a comment line above it in the same block (up to a blank line):
# the command needs a cloud account, so no test runs it.
CLOUD_MARKER = "needs a cloud account"
# The environment the tests run in: `.venv/bin/X` and a bare `X` installed there name its programs.
ENV_BIN = Path(sys.executable).parent
# What a running make passes its children; a documented `make` runs as a user starts it, at the top level.
MAKE_VARIABLES = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SAFE = re.compile(r"[\w@%+=:,./-]*")


@dataclasses.dataclass(frozen=True)
class Command:
    doc: str  # relative to the project root
    line: int  # the line it starts on
    text: str  # as shown: continuation lines joined, without a `$ ` prompt or a trailing comment
    comment: str = ""  # its trailing comment
    cloud: bool = False  # marked as needing a cloud account
    replacements: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"

    def replace(self, old: str, new: str) -> Command:
        """The command with a value a reader is meant to change (a placeholder, a port, a path) set to `new`;
        fails the test when the doc's command does not hold `old`."""
        if old not in self.text:
            pytest.fail(f"{self}: the documented command no longer holds {old!r}")
        return dataclasses.replace(self, replacements=(*self.replacements, (old, new)))

    def _tokens(self) -> list[str]:
        lexer = shlex.shlex(self.text, posix=True, punctuation_chars="&|;()<>")
        lexer.whitespace_split = True
        tokens = list(lexer)
        for old, new in self.replacements:
            tokens = [token.replace(old, new) for token in tokens]
        return tokens

    @property
    def steps(self) -> list[Command]:
        """`a && b` as [a, b]: a test runs each, the next only when the one before succeeded."""
        parts = [part.strip() for part in re.split(r"\s&&\s", self.text)]
        return [dataclasses.replace(self, text=part) for part in parts]

    @property
    def background(self) -> bool:
        """Started with a trailing `&`: a test runs it as a process it stops."""
        return self.text.endswith("&") and not self.text.endswith("&&")

    @property
    def env(self) -> dict[str, str]:
        """The variables it sets: `export A=1 B=2`, or the assignments before the program (`A=1 make run`)."""
        tokens = self._tokens()
        if tokens and tokens[0] == "export":
            tokens = tokens[1:]
        found = {}
        for token in tokens:
            if not _ASSIGNMENT.match(token):
                break
            name, value = token.split("=", 1)
            found[name] = value
        return found

    @property
    def words(self) -> list[str]:
        """The program and its arguments, after any assignments, as a shell splits them."""
        tokens = [t for t in self._tokens() if t != "&"] if self.background else self._tokens()
        if tokens and tokens[0] == "export":
            return []
        while tokens and _ASSIGNMENT.match(tokens[0]):
            tokens = tokens[1:]
        return tokens

    @property
    def needs_shell(self) -> bool:
        """Whether it uses what only a shell does: variables, `$(...)`, `&&`, pipes, globs (outside quotes)."""
        text = self.text[:-1] if self.background else self.text
        quote = None
        for char in text:
            if quote == "'":
                quote = None if char == "'" else quote
            elif char in "$`":
                return True
            elif quote == '"':
                quote = None if char == '"' else quote
            elif char in "'\"":
                quote = char
            elif char in "|&;<>(){}*?~":
                return True
        return self._tokens()[:1] == ["export"]

    @property
    def argv(self) -> list[str]:
        """`words` with the program found in this environment: `python` is the tests' interpreter, and
        `.venv/bin/X` or a bare `X` installed beside it is that program."""
        if self.needs_shell:
            pytest.fail(f"{self}: a shell command; run it with .run() or .shell_text")
        program, *args = self.words
        if program in ("python", "python3"):
            program = sys.executable
        elif program.startswith(".venv/bin/"):
            program = str(ENV_BIN / program.removeprefix(".venv/bin/"))
        elif "/" not in program and (ENV_BIN / program).exists():
            program = str(ENV_BIN / program)
        return [program, *args]

    @property
    def shell_text(self) -> str:
        """The text for `bash -c`, with `.venv/bin/` naming this environment and the replacements made."""
        text = self.text.replace(".venv/bin/", f"{ENV_BIN}/")
        for old, new in self.replacements:
            if not _SAFE.fullmatch(new):
                pytest.fail(f"{self}: {new!r} would need quoting in the shell; give a plain value")
            text = text.replace(old, new)
        return text

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (the test's settings; default os.environ) as a shell with the environment activated
        passes it on, plus what the command itself sets."""
        return {**activated(base), **self.env}

    def _args(self) -> list[str]:
        return ["bash", "-c", self.shell_text] if self.needs_shell else self.argv

    def run(self, env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run it from the project root (as the docs do) with `env`; with `check`, fail the test with its
        output unless it exits 0."""
        result = subprocess.run(self._args(), cwd=cwd, env=self.environ(env), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"{self}\nexited {result.returncode}\n--- stdout ---\n{result.stdout[-8000:]}"
                        f"\n--- stderr ---\n{result.stderr[-8000:]}")
        return result

    def start(self, env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT, **popen) -> subprocess.Popen:
        """Start it (a server, a scheduler: what the doc runs with `&` or leaves running) and return the
        process; the test stops it."""
        return subprocess.Popen(self._args(), cwd=cwd, env=self.environ(env), **popen)


def activated(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) as a shell where `.venv/bin/activate` ran passes it on; without what a
    running make passes its children, so a documented `make` runs as a user starts it."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if k not in MAKE_VARIABLES}
    env["PATH"] = f"{ENV_BIN}{os.pathsep}{base.get('PATH', os.defpath)}"
    return env


def run_together(commands: list[Command], env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT,
                 timeout: float = 900) -> subprocess.CompletedProcess:
    """Documented commands run one after another in one shell, as a reader types a block's lines (what one
    exports, the next sees); fails the test with the output unless every one succeeds."""
    script = "\n".join(["set -e", *(command.shell_text for command in commands)])
    result = subprocess.run(["bash", "-c", script], cwd=cwd, env=activated(env), capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        pytest.fail("\n".join(map(str, commands)) + f"\nexited {result.returncode}\n--- stdout ---\n"
                    f"{result.stdout[-8000:]}\n--- stderr ---\n{result.stderr[-8000:]}")
    return result


def doc_paths(root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted({path for pattern in DOC_PATTERNS for path in root.glob(pattern)})


def _strip_comment(line: str) -> tuple[str, str]:
    """(the command, its comment): the first `#` outside quotes that starts a word."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1:].strip()
    return line.rstrip(), ""


def commands_in(text: str, doc: str = "<text>") -> list[Command]:
    """Every command line in the fenced shell blocks of a Markdown text."""
    found: list[Command] = []
    language = None  # inside a fence: its language
    marked = False  # a comment line above, since the last blank line, carries CLOUD_MARKER
    pending: tuple[int, str] | None = None  # a command continued with `\`
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*(```|~~~)\s*(\S*)", line)
        if fence:
            language = None if language is not None else fence.group(2).lower()
            marked, pending = False, None
            continue
        if language not in SHELL_LANGUAGES:
            continue
        stripped = line.strip()
        if pending is None:
            if not stripped:
                marked = False
                continue
            if stripped.startswith("#"):
                marked = marked or CLOUD_MARKER in stripped.lower()
                continue
            stripped = stripped.removeprefix("$ ")
            start, joined = number, ""
        else:
            start, joined = pending
        if stripped.endswith("\\"):
            pending = (start, f"{joined}{stripped[:-1].strip()} ")
            continue
        pending = None
        command, comment = _strip_comment(joined + stripped)
        found.append(Command(doc, start, command, comment, marked or CLOUD_MARKER in comment.lower()))
    return found


def documented_commands(root: Path = PROJECT_ROOT) -> list[Command]:
    return [command for path in doc_paths(root)
            for command in commands_in(path.read_text(), str(path.relative_to(root)))]


def documented(doc: str, command: str) -> Command:
    """`command` as `doc` (a path from the project root) shows it; fails the test when it does not. A test
    that runs a documented command takes it from here, so the doc and the test cannot drift apart."""
    path = PROJECT_ROOT / doc
    shown = commands_in(path.read_text(), doc) if path.is_file() else []
    for found in shown:
        if found.text == command:
            return found
    pytest.fail(f"{doc} no longer shows `{command}` in a shell block; it shows:\n"
                + "\n".join(str(c) for c in shown))
