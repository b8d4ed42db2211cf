"""The layout's rules, checked: imports point down pipeline/'s layers (`.importlinter`, run by import-linter),
no import hides inside a function unless it says why, and the pipeline names nothing of the task."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_imports_follow_the_layers():
    result = subprocess.run([str(LINT_IMPORTS)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def _explained(lines: list[str], index: int) -> bool:
    """Whether the import on line `index`, or the block of imports it belongs to, carries a comment."""
    while True:
        if "#" in lines[index]:
            return True
        previous = lines[index - 1].strip() if index else ""
        if previous.startswith("#"):
            return True
        if not previous.startswith(("import ", "from ")):
            return False
        index -= 1


def test_an_import_inside_a_function_says_why():
    """Function-level imports only for start-up speed (or an optional package), with a comment saying so."""
    silent = []
    for path in sorted([*(PROJECT_ROOT / "pipeline").rglob("*.py"), *(PROJECT_ROOT / "cluster").rglob("*.py")]):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and not _explained(lines, inner.lineno - 1):
                    silent.append(f"{path.relative_to(PROJECT_ROOT)}:{inner.lineno}: {lines[inner.lineno - 1].strip()}")
    assert not silent, "imports inside functions without a comment saying why:\n" + "\n".join(silent)


def test_the_pipeline_names_nothing_of_the_default_task():
    """The task lives in modules/, schema/ and data/: no column, label or name of it in pipeline/."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from modules import task

    schema = text_format.Parse((PROJECT_ROOT / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema())
    names = {feature.name for feature in schema.feature} | {task.LABEL_KEY, *task.NAME.split("-")}
    found = []
    for path in sorted((PROJECT_ROOT / "pipeline").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for name in names:
                if re.search(rf"\b{re.escape(name)}\b", line, re.IGNORECASE):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number} ({name}): {line.strip()}")
    assert not found, "\n".join(found)
