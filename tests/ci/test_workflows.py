"""The GitHub Actions workflows, checked without network: actionlint (syntax, expressions, shell) and zizmor
(pinned actions, template injection, permissions, credentials), and what the project adds: every command
a workflow runs is a make target that tests/ci/test_make_targets.py runs (or the test suite itself)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import PROJECT_ROOT
from tests.docs.commands import commands_in

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
# What each make target a workflow may call is tested by: the e2e tests run all but these two, which are
# the test suite itself (`test`, everything; `unit-test`, the tests without the e2e marker).
TESTED_TARGETS = {"validate-data", "train", "check-blessing", "promote", "rollback"}
SUITE_TARGETS = {"test", "unit-test"}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _offline_env() -> dict[str, str]:
    """No token, no network look-ups: the checks give the same answer anywhere."""
    return {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}


def _workflows() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(WORKFLOWS.glob("*.yml"))}


def _steps(workflow: dict):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def test_actionlint_finds_nothing():
    files = [str(path) for path in sorted(WORKFLOWS.glob("*.yml"))]
    result = subprocess.run([str(BIN / "actionlint"), "-no-color", *files], check=False, cwd=PROJECT_ROOT,
                            env=_offline_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_zizmor_finds_nothing_even_as_an_auditor():
    """The auditor persona also reports what the default one leaves out (secrets outside an environment...)."""
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", "--persona", "auditor", "--format", "plain",
         str(WORKFLOWS)],
        cwd=PROJECT_ROOT, env=_offline_env(), check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_command_is_a_tested_make_target():
    called = set()
    for name, workflow in _workflows().items():
        for job_id, step in _steps(workflow):
            if "run" not in step:
                continue
            command = step["run"].strip()
            match = re.fullmatch(r"make ([\w-]+)", command)
            assert match, f"{name}, job {job_id}: `{command}` is not a single make target"
            called.add(match.group(1))
    assert called <= TESTED_TARGETS | SUITE_TARGETS, called - TESTED_TARGETS - SUITE_TARGETS
    assert called >= TESTED_TARGETS  # and the tested ones are all in use
    tested = _make_targets_run_by_test_make_targets()
    for target in TESTED_TARGETS:
        assert target in tested, f"make {target} is not run by test_make_targets.py"


def _make_targets_run_by_test_make_targets() -> set[str]:
    """The targets of the documented make commands test_make_targets.py runs: its documented(doc, command)
    calls (which fail when the doc no longer shows the command), each `make` of `a && b` counted."""
    tree = ast.parse((Path(__file__).parent / "test_make_targets.py").read_text())
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "documented":
            doc, text = (arg.value for arg in node.args)
            for command in commands_in(f"```bash\n{text}\n```\n", doc):
                for step in command.steps:
                    if step.words[:1] == ["make"]:
                        targets.update(step.words[1:])
    return targets


def test_actions_are_pinned_and_checkouts_keep_no_credentials():
    for name, workflow in _workflows().items():
        assert workflow["permissions"] == {}, f"{name}: permissions are granted per job, none at the top"
        for job_id, step in _steps(workflow):
            if "uses" not in step:
                continue
            assert PINNED.match(step["uses"]), f"{name}, job {job_id}: {step['uses']} is not pinned to a commit"
            if step["uses"].startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}, job {job_id}"
    text = "\n".join(path.read_text() for path in WORKFLOWS.glob("*.yml"))
    # Each pin says which release it is, for the next person who updates it.
    assert all(re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line) for line in text.splitlines() if "uses:" in line)
    assert "secrets." not in text, "credentials come from workload identity (OIDC), not stored secrets"


def test_continuous_training_triggers_jobs_and_the_protected_promotion():
    workflow = _workflows()["continuous-training.yml"]
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers["push"]["paths"]) >= {
        "modules/**", "schema/**", "pipeline/**", "examples/**", "requirements.lock", "requirements-orchestrators.lock",
    }
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "1"]  # weekly
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"data_root", "promote"}
    jobs = workflow["jobs"]
    assert [jobs[j].get("needs") for j in ("test", "validate-data", "train", "promote")] == [
        None, "test", "validate-data", "train"
    ]
    commands = {j: [s["run"] for s in jobs[j]["steps"] if "run" in s] for j in jobs}
    assert commands == {
        "test": ["make unit-test"],
        "validate-data": ["make validate-data"],
        "train": ["make train", "make check-blessing"],
        "promote": ["make promote"],
    }
    assert jobs["promote"]["environment"] == "production"
    # The promotion publishes the run the training job judged, named by `pipeline blessing`'s step output.
    [gate] = [s for s in jobs["train"]["steps"] if s.get("run") == "make check-blessing"]
    assert jobs["train"]["outputs"]["run"].startswith(f"${{{{ steps.{gate['id']}.outputs.run }}}}")
    [publish] = [s for s in jobs["promote"]["steps"] if s.get("run") == "make promote"]
    assert publish["env"]["PROMOTION_RUN"] == "${{ needs.train.outputs.run }}"
    assert "inputs.promote" in jobs["promote"]["if"] and "refs/heads/main" in jobs["promote"]["if"]
    rollback = _workflows()["rollback.yml"]
    assert rollback[True]["workflow_dispatch"]["inputs"]["reason"]["required"] is True
    assert rollback["jobs"]["rollback"]["environment"] == "production"


def test_the_test_workflow_runs_the_readme_test_command():
    workflow = _workflows()["ci.yml"]
    assert [s["run"] for _, s in _steps(workflow) if "run" in s] == ["make test"]


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A workflow with an injectable input, a moving tag and default permissions fails both checks."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text(
        "name: bad\non:\n  workflow_dispatch:\n    inputs:\n      reason: {type: string}\njobs:\n  a:\n"
        "    runs-on: ubuntu-22.04\n    steps:\n      - uses: actions/checkout@v5\n"
        "      - run: echo ${{ inputs.reason }} && make rollback\n        shell: bsh\n"
    )
    lint = subprocess.run([str(BIN / "actionlint"), "-no-color", str(tmp_path / ".github" / "workflows" / "bad.yml")],
                          cwd=tmp_path, env=_offline_env(), check=False, capture_output=True, text=True, timeout=120)
    assert lint.returncode == 1 and "bsh" in lint.stdout
    audit = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", "--format", "plain", str(tmp_path / ".github" / "workflows")],
        env=_offline_env(), check=False, capture_output=True, text=True, timeout=120,
    )
    assert audit.returncode != 0
    for finding in ("template-injection", "unpinned-uses", "excessive-permissions", "artipacked"):
        assert finding in audit.stdout, audit.stdout
