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
ONS_USED = {"_inputs", "outputs", "notification_topic", "subscription"}  # components/operations.py
MONITORING_USED = {"_inputs", "outputs", "alarm"}


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
                  "ons": loaded("pulumi_oci.ons."), "monitoring": loaded("pulumi_oci.monitoring."),
                  "services": services, "types": types_, "paramiko": "paramiko" in sys.modules}))
"""
    )
    assert "oci:Core/vcn:Vcn" in got["types"] and "oci:Mysql/mysqlDbSystem:MysqlDbSystem" in got["types"]
    assert set(got["core"]) == CORE_USED
    assert set(got["mysql"]) == MYSQL_USED
    assert set(got["ons"]) <= ONS_USED and set(got["monitoring"]) == MONITORING_USED
    # identity, database, ... are never loaded: the look-ups are raw invokes (components/lookups.py)
    assert set(got["services"]) <= {"_utilities", "provider", "config", "core", "mysql", "ons", "monitoring"}
    assert not got["paramiko"]  # the connection check's SSH client is imported when a check runs, not for a plan


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


# --- offline class workers ------------------------------------------------------------------------------------
def test_the_offline_pool_is_capped_at_the_cpu_count():
    from labctl.runners import OfflineRunner, cpu_count, offline_parallel

    assert offline_parallel(4, cpus=2) == 2
    assert offline_parallel(8, cpus=1) == 1
    assert offline_parallel(2, cpus=8) == 2  # a narrower request is kept
    assert offline_parallel(0, cpus=2) == 1
    runner = OfflineRunner(processes=32, cpus=2)
    assert (runner.requested, runner.processes) == (32, 2)
    assert OfflineRunner(processes=64).processes == min(64, cpu_count())


def test_forkserver_with_preload_where_the_os_has_it_else_spawn():
    from labctl.runners import PRELOAD_BASE, pool_context

    ctx, method = pool_context(PRELOAD_BASE, methods=["spawn"])  # Windows: no fork, no forkserver
    assert method == "spawn" and ctx.get_start_method() == "spawn"
    ctx, method = pool_context(PRELOAD_BASE, methods=["fork", "spawn"])  # fork alone is not used (threads)
    assert method == "spawn"
    ctx, method = pool_context(PRELOAD_BASE, methods=["fork", "spawn", "forkserver"])
    assert method == "forkserver" and ctx.get_start_method() == "forkserver"


def _one_student(student_id: str = "s01") -> "StackJob":  # noqa: F821, UP037
    from conftest import full_keys, good_raw, make_ssh_public_key

    from labctl.runners import StackJob

    raw = good_raw(studentId=student_id, sshPublicKey=make_ssh_public_key(student_id), adminCidr="198.51.100.7/32")
    return StackJob(student_id, f"student-{student_id}", full_keys(raw))


def test_both_start_methods_give_the_same_plan_and_report_worker_memory(tmp_path):
    from labctl.runners import OfflineRunner

    plans = {}
    job = _one_student()
    for methods in (None, ["spawn"]):  # the OS's choice (forkserver on Linux), and a platform without forkserver
        out = tmp_path / ("os" if methods is None else "spawn")
        runner = OfflineRunner(plan_dir=out, processes=1, start_methods=methods)
        try:
            log = tmp_path / f"{out.name}.log"
            result = runner.run(job, "preview", log, 1)
        finally:
            runner.close()
        assert result.status == "succeeded", result.error
        plans[runner.start_method] = (out / "student-s01.json").read_text()
        line = log.read_text()
        assert "worker " in line and " MiB" in line and ("PSS" in line or "RSS" in line), line
        assert "_worker" not in plans[runner.start_method]  # the memory note is not part of the plan
        summary = runner.memory_summary()
        assert f"offline workers: 1 ({runner.start_method}" in summary and "memory per worker" in summary
    assert "spawn" in plans and len(plans) == 2  # forkserver where the OS has it (Linux here)
    first, second = plans.values()
    assert first == second


def test_process_memory_reads_pss_else_rss(tmp_path):
    from labctl.runners import process_memory

    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text("Name:\tpython\nVmRSS:\t  204800 kB\n")
    assert process_memory(7, proc=tmp_path) == (200.0, "RSS")
    (tmp_path / "7" / "smaps_rollup").write_text("Rss:  204800 kB\nPss:   51200 kB\n")
    assert process_memory(7, proc=tmp_path) == (50.0, "PSS")
    assert process_memory(8, proc=tmp_path) is None
    mib, kind = process_memory()  # this process: PSS on Linux
    assert mib > 10 and kind in ("PSS", "RSS", "peak RSS")


def test_a_worker_forked_with_another_trees_components_plans_its_own(tmp_path):
    """The forkserver outlives a runner: a later class of another project must not plan with preloaded modules of
    this tree. A copy of the program whose VCN label differs proves which tree was planned."""
    import shutil

    from labctl.runners import OfflineRunner

    other = tmp_path / "other"
    shutil.copytree(ROOT, other, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "bench", ".pulumi-state"))
    net = other / "components" / "network.py"
    net.write_text(net.read_text().replace('VCN_DNS_LABEL = "labvcn"', 'VCN_DNS_LABEL = "othervcn"'))
    job = _one_student()
    runner = OfflineRunner(plan_dir=tmp_path / "plans", processes=1)
    try:
        assert runner.run(job, "preview", tmp_path / "a.log", 1).status == "succeeded"  # preloads this tree
        mine = (tmp_path / "plans" / "student-s01.json").read_text()
        from dataclasses import replace

        assert runner.run(replace(job, project_dir=other), "preview", tmp_path / "b.log", 1).status == "succeeded"
        theirs = (tmp_path / "plans" / "student-s01.json").read_text()
    finally:
        runner.close()
    assert '"labvcn"' in mine and '"othervcn"' not in mine
    assert '"othervcn"' in theirs


def test_pulumi_yaml_is_parsed_once_per_file_version(tmp_path):
    """A class plans one Pulumi.yaml per student: parsed once, read again only when the file changes
    (labctl/cliconfig.py caches by content)."""
    import os

    from labctl.cliconfig import load_project

    text = (ROOT / "Pulumi.yaml").read_text()
    (tmp_path / "Pulumi.yaml").write_text(text)
    first = load_project(tmp_path)
    assert load_project(tmp_path) is first
    (tmp_path / "Pulumi.yaml").write_text(text.replace("name: oci-dblab", "name: oci-dblab2", 1))
    st = (tmp_path / "Pulumi.yaml").stat()
    os.utime(tmp_path / "Pulumi.yaml", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = load_project(tmp_path)
    assert second is not first and second.name == "oci-dblab2" and first.name == "oci-dblab"


def test_labctl_class_offline_caps_parallel_and_reports_worker_memory(tmp_path, capsys):
    import re

    from labctl.cli import main
    from labctl.runners import cpu_count

    argv = ["class", "up", str(ROOT / "examples" / "roster.csv"), "--class-config", str(ROOT / "examples/class.yaml")]
    code = main([*argv, "--offline", "--parallel", "32", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    found = re.search(
        r"offline workers: (\d+) \((forkserver|spawn), --parallel 32 capped at the CPU count\); "
        r"memory per worker \((PSS|RSS)\): max (\d+) MiB, total (\d+) MiB",
        out,
    )
    assert found, out
    assert 1 <= int(found.group(1)) <= min(cpu_count(), 3)  # three students, at most one worker per CPU
    assert int(found.group(4)) > 0 and int(found.group(5)) >= int(found.group(4))
    for log in (tmp_path / "logs").iterdir():
        assert re.search(r"attempt 1: [0-9.]+s, worker \d+ (PSS|RSS) \d+ MiB", log.read_text()), log.read_text()
