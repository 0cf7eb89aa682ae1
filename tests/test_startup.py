"""Start-up (issue 12 item 3): an offline plan imports only the pulumi_oci modules the program declares resources
with; a class of offline workers imports once, with the pool capped at the CPU count and memory reported.

Module checks run in a fresh interpreter (``sys.modules`` of this one holds whatever other tests imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The pulumi_oci files the program's resources and look-ups live in (components/network.py, compute.py,
# lookups.py, database.py), plus each service's shared _inputs/outputs.
CORE_USED = {
    "_inputs",
    "outputs",
    "vcn",
    "default_security_list",
    "internet_gateway",
    "route_table",
    "security_list",
    "subnet",
    "instance",
    "get_images",
}
MYSQL_USED = {"_inputs", "outputs", "mysql_db_system"}


def _fresh(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = """
import json, sys, types
def loaded(prefix):
    return sorted(n[len(prefix):] for n, m in list(sys.modules.items())
                  if n.startswith(prefix) and type(m) is types.ModuleType)
"""


def test_an_offline_plan_imports_only_the_pulumi_oci_modules_it_uses():
    got = _fresh(
        LOADED
        + """
from conftest import full_keys, good_raw
from labctl.offline import run_program
plan = run_program(full_keys(good_raw()), stack="dev")
types_ = sorted({r.resource_type for r in plan.resources})
services = [n for n in loaded("pulumi_oci.") if "." not in n]
print(json.dumps({"core": loaded("pulumi_oci.core."), "mysql": loaded("pulumi_oci.mysql."),
                  "services": services, "types": types_}))
"""
    )
    assert "oci:Core/vcn:Vcn" in got["types"] and "oci:Mysql/mysqlDbSystem:MysqlDbSystem" in got["types"]
    assert set(got["core"]) == CORE_USED
    assert set(got["mysql"]) == MYSQL_USED
    # identity, database, ... are never loaded: the look-ups are raw invokes (components/lookups.py)
    assert set(got["services"]) <= {"_utilities", "provider", "config", "core", "mysql"}


def test_a_class_not_declared_with_use_still_resolves_by_the_full_import():
    got = _fresh(
        LOADED
        + """
import pulumi_oci as oci
from components import ocimods
core = ocimods.use("core", "vcn")
before = len(loaded("pulumi_oci.core."))
vcn = oci.core.Vcn
drg = oci.core.Drg  # not declared: the package's own __init__ runs on the same module object
from pulumi_oci.core.drg import Drg
from pulumi_oci.core.vcn import Vcn
again = ocimods.use("core", "subnet")  # after the full import: the plain package
print(json.dumps({"before": before, "after": len(loaded("pulumi_oci.core.")), "same_vcn": vcn is Vcn,
                  "same_drg": drg is Drg, "same_pkg": core is oci.core is again is sys.modules["pulumi_oci.core"],
                  "subnet": hasattr(again, "Subnet"), "outputs": core.outputs.__name__}))
"""
    )
    assert got["before"] == 3  # vcn, _inputs, outputs
    assert got["after"] > 200
    assert got["same_vcn"] and got["same_drg"] and got["same_pkg"] and got["subnet"]
    assert got["outputs"] == "pulumi_oci.core.outputs"
