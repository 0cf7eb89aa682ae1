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
    assert len(files) == 2
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
