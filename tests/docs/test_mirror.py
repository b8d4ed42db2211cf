"""Tests mirror the code: every module has its test module (tests/<folder>/test_<module>.py), or the README
of its folder names it under "## Tests" and says where it is tested instead, or why not."""

import re

from tests.conftest import PROJECT_ROOT

CODE_FOLDERS = ("pipeline", "modules", "cluster", "bench", "scripts")


def _tests_section(readme) -> str:
    if not readme.exists():
        return ""
    match = re.search(r"^## Tests\n(.*?)(?=^## |\Z)", readme.read_text(), re.M | re.S)
    return match.group(1) if match else ""


def unaccounted_modules(root=PROJECT_ROOT) -> list[str]:
    missing = []
    for folder in CODE_FOLDERS:
        for module in sorted((root / folder).rglob("*.py")):
            if module.name == "__init__.py" and module.parent.name != "upstream" or "__pycache__" in module.parts:
                continue
            relative = module.relative_to(root)
            stem = "init" if module.name == "__init__.py" else module.stem
            if (root / "tests" / relative.parent / f"test_{stem}.py").exists():
                continue
            if f"`{module.name}`" in _tests_section(module.parent / "README.md"):
                continue
            missing.append(str(relative))
    return missing


def test_every_module_has_its_test_module_or_its_folders_readme_says_where_it_is_tested():
    assert unaccounted_modules() == []


def test_a_module_with_neither_is_named(tmp_path):
    for path in ("pipeline/metadata/tested.py", "pipeline/metadata/explained.py", "pipeline/metadata/neither.py",
                 "tests/pipeline/metadata/test_tested.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    (tmp_path / "pipeline/metadata/README.md").write_text(
        "# x\n\n## Tests\n\n- `explained.py`: through another test.\n\n## Other\n\n`neither.py` is named here only.\n")
    assert unaccounted_modules(tmp_path) == ["pipeline/metadata/neither.py"]
