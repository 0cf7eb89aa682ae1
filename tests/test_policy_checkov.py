"""checkov (pinned, in its own virtualenv: `make checkov`) judges `labctl plan --format tfplan` of our stacks.

The default stack passes every OCI check that applies, with CKV_OCI_17 skipped for the reason the README gives; a
stack with SSH open to the world fails CKV_OCI_19. Without the repository's .checkov.yaml the skip is visible: the
stateful security lists fail CKV_OCI_17, which is the decision the README explains.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from conftest import ROOT, plan_of

from labctl import tfplan
from policy.rules import RULES

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CONFIG = ROOT / ".checkov.yaml"
# The OCI checks of the pinned checkov that apply to the resource types we declare (the other OCI checks are for
# buckets, file systems, block volumes, IAM policies, data catalogs and Kubernetes).
DEFAULT_PASSED = {
    ("CKV_OCI_4", "oci_core_instance.lab-vm"),
    ("CKV_OCI_5", "oci_core_instance.lab-vm"),
    ("CKV_OCI_6", "oci_core_instance.lab-vm"),
    ("CKV_OCI_16", "oci_core_security_list.lab-private-sl"),
    ("CKV_OCI_16", "oci_core_security_list.lab-public-sl"),
    ("CKV_OCI_19", "oci_core_security_list.lab-private-sl"),
    ("CKV_OCI_19", "oci_core_security_list.lab-public-sl"),
    ("CKV_OCI_20", "oci_core_security_list.lab-private-sl"),
    ("CKV_OCI_20", "oci_core_security_list.lab-public-sl"),
}


def run_checkov(tmp_path, plans: dict, *args: str) -> dict[str, dict[str, set[tuple[str, str]]]]:
    """{file name: {"passed"|"failed"|"skipped": {(check id, resource address)}}} for one checkov run."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make checkov` (make test does)"
    files = []
    for name, plan in plans.items():
        path = tmp_path / f"{name}.json"
        path.write_text(tfplan.render(plan))
        files += ["-f", str(path)]
    proc = subprocess.run(
        [str(CHECKOV), *args, *files, "-o", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    out: dict[str, dict[str, set[tuple[str, str]]]] = {
        n: {"passed": set(), "failed": set(), "skipped": set()} for n in plans
    }
    for report in reports:
        assert report.get("check_type", "terraform_plan") == "terraform_plan"
        results = report.get("results", {})
        for kind in ("passed", "failed", "skipped"):
            for c in results.get(f"{kind}_checks", []):
                name = c["file_path"].rsplit("/", 1)[-1].removesuffix(".json")
                out[name][kind].add((c["check_id"], c["resource"]))
    return out


@pytest.fixture(scope="module")
def plans():
    return {"default": plan_of(), "ssh-world": plan_of(adminCidr="0.0.0.0/0")}


@pytest.fixture(scope="module")
def with_config(tmp_path_factory, plans):
    # what CI sees: the repository's config
    return run_checkov(tmp_path_factory.mktemp("ck"), plans, "--config-file", str(CONFIG))


def test_default_stack_passes_with_the_documented_skips(with_config):
    assert with_config["default"]["failed"] == set()
    assert with_config["default"]["passed"] == DEFAULT_PASSED


def test_ssh_open_to_the_world_fails_ckv_oci_19(with_config):
    assert with_config["ssh-world"]["failed"] == {("CKV_OCI_19", "oci_core_security_list.lab-public-sl")}


def test_without_the_skip_the_stateful_lists_fail_ckv_oci_17_and_everything_else_passes(tmp_path, plans):
    got = run_checkov(tmp_path, {"default": plans["default"]}, "--framework", "terraform_plan", "--skip-download")
    assert got["default"]["failed"] == {
        ("CKV_OCI_17", "oci_core_security_list.lab-private-sl"),
        ("CKV_OCI_17", "oci_core_security_list.lab-public-sl"),
    }
    assert got["default"]["passed"] == DEFAULT_PASSED


def _readme_table() -> dict[str, tuple[str, str]]:
    """check id -> (verdict, reason) from the README's checkov table."""
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- checkov-table -->")
    end = text.index("<!-- /checkov-table -->")
    rows = {}
    for line in text[start:end].splitlines():
        m = re.match(r"\|\s*`(CKV_OCI_\d+)`[^|]*\|\s*([^|]+?)\s*\|\s*(.+?)\s*\|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_readme_table_matches_checkov_and_the_config():
    table = _readme_table()
    skipped = set(yaml.safe_load(CONFIG.read_text())["skip-check"])
    assert {c for c, (verdict, _) in table.items() if verdict.startswith("skipped")} == skipped
    assert {c for c, (verdict, _) in table.items() if verdict.startswith("passed")} == {c for c, _ in DEFAULT_PASSED}
    for check, (_, reason) in table.items():
        assert len(reason) > 20, check
    # every checkov id a policy rule cites is one this checkov runs and the README lists, or is said to be n/a
    cited = {m for r in RULES for m in re.findall(r"CKV_OCI_\d+", r.source)}
    listed = set(table)
    assert cited - listed <= {"CKV_OCI_1", "CKV_OCI_2", "CKV_OCI_22"}  # not applicable to our resource types


def test_checkov_is_pinned_in_one_place():
    pins = (ROOT / "requirements-checkov.txt").read_text().split()
    assert len(pins) == 1 and re.fullmatch(r"checkov==\d+\.\d+\.\d+", pins[0])
    assert "requirements-checkov.txt" in (ROOT / "Makefile").read_text()


def test_ci_runs_checkov_on_every_stack_into_the_job_summary():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "pr-offline.yml").read_text())
    steps = wf["jobs"]["test-and-plan"]["steps"]
    [step] = [s for s in steps if "checkov" in s.get("run", "")]
    run = step["run"]
    assert "for f in Pulumi.*.yaml" in run and "--format tfplan" in run
    assert ".venv-checkov/bin/checkov --config-file .checkov.yaml" in run and "GITHUB_STEP_SUMMARY" in run
    assert any("make test" in s.get("run", "") for s in steps[: steps.index(step)])  # make test builds the venv
