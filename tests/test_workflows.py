"""The GitHub workflows: valid for actionlint, and wired the way the README says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    assert ACTIONLINT, "actionlint is a test dependency (pyproject [test]); run `make test`"
    return subprocess.run([ACTIONLINT, "-no-color", *map(str, files)], capture_output=True, text=True)


def test_actionlint_passes_on_every_workflow():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert len(files) == 3
    proc = actionlint(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text((WORKFLOWS / "pr-offline.yml").read_text().replace("runs-on: ubuntu-latest", "runs_on: x"))
    proc = actionlint(bad)
    assert proc.returncode != 0 and "runs-on" in proc.stdout


def test_offline_workflow_runs_for_every_pr_without_secrets():
    wf = load("pr-offline.yml")
    assert "pull_request" in wf[True]  # YAML 1.1 reads the key `on` as True
    text = (WORKFLOWS / "pr-offline.yml").read_text()
    assert "secrets." not in text
    steps = wf["jobs"]["test-and-plan"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make test" in runs and "labctl plan" in runs and "labctl diff" in runs
    assert "GITHUB_STEP_SUMMARY" in runs
    comment = [s for s in steps if "gh pr comment" in s.get("run", "")]
    assert comment and "head.repo.full_name == github.repository" in comment[0]["if"]


def test_preview_workflow_uses_pulumi_actions_with_policy_pack_same_repo_only():
    wf = load("pr-preview.yml")
    job = wf["jobs"]["preview"]
    assert "head.repo.full_name == github.repository" in job["if"]
    [step] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    w = step["with"]
    assert w["command"] == "preview" and w["comment-on-pr"] is True and w["diff"] is True
    assert w["policyPacks"] == "policy" and w["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_laptop_matrix_runs_the_offline_suite_on_three_oses_without_real_servers():
    wf = load("laptop-matrix.yml")
    job = wf["jobs"]["offline-suite"]
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "macos-latest", "windows-latest"]
    assert job["runs-on"] == "${{ matrix.os }}" and job["strategy"]["fail-fast"] is False
    runs = [s.get("run", "") for s in job["steps"]]
    assert not any("make" in r.split() for r in runs)  # a student's laptop has no make
    [pytest_run] = [r for r in runs if "pytest" in r]
    assert '-m "not real_servers"' in pytest_run
    assert "secrets." not in (WORKFLOWS / "laptop-matrix.yml").read_text()


def test_real_server_tests_are_marked_and_stay_in_make_test():
    """The marker the matrix deselects lands on exactly the tests that start MariaDB/sshd, and `make test` (plain
    `pytest`) does not deselect it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "real_servers",
            "-p",
            "no:cacheprovider",
            "tests/test_envfile.py",
            "tests/test_provider_host.py",
            "tests/test_portable.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    marked = {line.split("[")[0] for line in proc.stdout.splitlines() if "::" in line}
    assert "tests/test_envfile.py::test_create_writes_both_env_files_0600_and_the_check_passes" in marked
    assert "tests/test_provider_host.py::test_a_stacks_life_up_same_update_refresh_destroy" in marked
    assert "tests/test_envfile.py::test_check_fills_defaults_and_normalises_numbers" not in marked  # no server
    assert "tests/test_provider_host.py::test_the_host_answers_configure_as_the_engine_expects" not in marked
    assert not any(m.startswith("tests/test_portable.py") for m in marked)
    makefile = (ROOT / "Makefile").read_text()
    assert "real_servers" not in makefile  # make test (= .ci/run) deselects nothing
