"""Every cloud-init document the program renders is valid for cloud-init and its shell parts pass shellcheck.

The tools are Debian's ``cloud-init`` and ``shellcheck`` packages (.ci/services.sh installs them). Where CI is set
(CI=true, as GitHub Actions sets it) a missing tool FAILS these tests; on a laptop without them they are skipped
with the install command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.cloudinit import render_cloud_init as render_app_cloud_init
from engines import mariadb_vm, mysql_vm, postgresql_vm, vmdb

FLAVORS = (mysql_vm.FLAVOR, mariadb_vm.FLAVOR, postgresql_vm.FLAVOR)
# Passwords with everything a shell, YAML or SQL could trip on: none of them may reach user_data.
PASSWORDS = ("Adm1n 'q\" #h $d \\b =e!", "Lab-Admin#2026", "x$(reboot)`id`;DROP--Q9a")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} is not installed: .ci/services.sh must install Debian's {name} package in CI")
    pytest.skip(f"{name} is not installed (sudo apt-get install {name})")


def _documents() -> list[tuple[str, str]]:
    docs = [("app-vm", render_app_cloud_init())]
    for flavor in FLAVORS:
        settings = vmdb.DbVmSettings(
            app_subnet_cidr="10.0.0.0/24",
            vcn_cidr="10.0.0.0/16",
            admin_user="admin",
            admin_verifier=vmdb.admin_verifier(flavor.family, PASSWORDS[0], "urn:pulumi:dev::oci-dblab::x"),
        )
        docs.append((flavor.engine, vmdb.render_cloud_init(flavor, settings)))
    return docs


DOCUMENTS = _documents()


@pytest.mark.parametrize("name,text", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_cloud_init_schema_accepts_every_document(name: str, text: str, tmp_path: Path) -> None:
    tool = _tool("cloud-init")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    proc = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"cloud-init schema refused {name}:\n{proc.stdout}\n{proc.stderr}"
    assert "Valid cloud-config" in proc.stdout


def test_cloud_init_schema_can_fail(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: a wrong type in the same document is refused."""
    tool = _tool("cloud-init")
    doc = yaml.safe_load(DOCUMENTS[1][1])
    doc["package_update"] = "sometimes"
    doc["write_files"][0]["permissions"] = 700
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\n" + yaml.safe_dump(doc))
    proc = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "package_update" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name,text", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_shell_parts_pass_shellcheck(name: str, text: str) -> None:
    tool = _tool("shellcheck")
    parts = vmdb.shell_parts(yaml.safe_load(text))
    assert parts, f"{name} has no shell parts to check"
    for part in parts:
        proc = subprocess.run([tool, "--severity=style", "-"], input=part, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"shellcheck on {name}:\n{proc.stdout}\n{part}"


def test_shellcheck_can_fail() -> None:
    tool = _tool("shellcheck")
    proc = subprocess.run([tool, "-"], input="#!/bin/bash\nrm -rf $DIR/*\n", capture_output=True, text=True)
    assert proc.returncode != 0 and "SC2086" in proc.stdout
