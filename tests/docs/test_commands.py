"""How tests/docs/commands.py reads the commands the docs show: prompts, comments, continuations, settings,
and the values a test may swap."""

from __future__ import annotations

import pytest

from tests.docs.commands import commands_in


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
