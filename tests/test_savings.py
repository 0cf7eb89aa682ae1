"""labctl plan: what labHours saves per month (paid shapes only, Always Free shows 0 with why), and the warning for
an Always Free VM at risk of idle reclamation. Each figure is recomputed here from the price table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMPARTMENT, SSH_PUB

from labctl import estimate
from labctl.cli import main
from labctl.plan import build_report, plan_stack, render_text

HOURS = "Mon-Fri 07:00-17:00 Asia/Jakarta"  # 50 h a week


def plan(tmp_path: Path, **keys: str) -> dict:
    lines = [
        "config:",
        "  oci:region: ap-singapore-1",
        f"  oci-dblab:compartmentId: {COMPARTMENT}",
        f"  oci-dblab:sshPublicKey: {SSH_PUB}",
        "  oci-dblab:adminCidr: 198.51.100.23/32",
        "  oci-dblab:studentId: a23-042",
        "  oci-dblab:alertEmail: lab@example.edu",
    ]
    lines += [f'  oci-dblab:{k}: "{v}"' for k, v in keys.items()]
    f = tmp_path / "Pulumi.x.yaml"
    f.write_text("\n".join(lines) + "\n")
    p, config = plan_stack("x", f)
    return build_report(p, config)


def off_hours() -> float:
    per_month = estimate.hours_per_month()
    return per_month - round(50 * per_month / 168, 1)


def lines(report: dict) -> dict[str, dict]:
    return {ln["name"]: ln for ln in report["labHours"]["lines"]}


def idle(report: dict) -> list[str]:
    return [w for w in report["warnings"] if "Reclamation of Idle Compute Instances" in w]


def test_paid_flex_vm_saves_its_ocpu_and_memory_hours_and_the_paid_db_its_ecpu_hours(tmp_path):
    rep = plan(
        tmp_path, labHours=HOURS, appShape="VM.Standard.E4.Flex", appOcpus="2", appMemoryGbs="16", dbShape="MySQL.2"
    )
    table = estimate.price_table()
    e4 = table["compute"]["VM.Standard.E4.Flex"]
    vm_hour = 2 * e4["ocpu_hour"] + 16 * e4["memory_gb_hour"]
    db_hour = 2 * table["mysql"]["ecpu_hour"]
    by = lines(rep)
    assert by["lab-vm"]["monthly_saved"] == pytest.approx(round(vm_hour * off_hours(), 2))
    assert by["lab-vm"]["how"] == "Resource Scheduler (labHours)"
    assert by["lab-mysql"]["monthly_saved"] == pytest.approx(round(db_hour * off_hours(), 2), abs=0.01)
    assert by["lab-mysql"]["how"] == "labctl class stop|start (cron job)"
    assert rep["summary"]["labHoursSavedUsd"] == by["lab-vm"]["monthly_saved"]  # the schedules' part only
    assert rep["labHours"]["savedWithDbStopStartUsd"] == pytest.approx(
        by["lab-vm"]["monthly_saved"] + by["lab-mysql"]["monthly_saved"]
    )
    assert rep["labHours"]["labHoursPerMonth"] == round(50 * estimate.hours_per_month() / 168, 1)
    assert any("resource-billing-stopped-instances" in s for s in rep["labHours"]["sources"])
    assert any("billing2.html" in s for s in rep["labHours"]["sources"])
    assert idle(rep) == []  # a paid VM is not Always Free: never reclaimed
    text = render_text(rep)
    assert f"Lab hours {HOURS}" in text and "by the VM schedules" in text


def test_an_a1_vm_beyond_the_free_pool_saves_only_its_paid_hours(tmp_path):
    rep = plan(tmp_path, labHours=HOURS, appShape="VM.Standard.A1.Flex", appOcpus="4", appMemoryGbs="24")
    table = estimate.price_table()
    a1, free = table["compute"]["VM.Standard.A1.Flex"], table["always_free"]
    h = estimate.hours_per_month()
    running = 1 - off_hours() / h
    expected = 0.0
    parts = (
        (4 * h, free["a1_ocpu_hours"], a1["ocpu_hour"]),
        (24 * h, free["a1_memory_gb_hours"], a1["memory_gb_hour"]),
    )
    for qty, pool, price in parts:
        paid = max(0.0, qty - pool)
        expected += (paid - max(0.0, qty * running - pool)) * price
    assert expected > 0
    assert lines(rep)["lab-vm"]["monthly_saved"] == pytest.approx(round(expected, 2), abs=0.01)


@pytest.mark.parametrize(
    "shape, ocpus, mem", [("VM.Standard.E2.1.Micro", None, None), ("VM.Standard.A1.Flex", "1", "6")]
)
def test_always_free_vm_saves_nothing_and_is_warned_about_idle_reclamation(tmp_path, shape, ocpus, mem):
    keys = {"labHours": HOURS, "appShape": shape}
    if ocpus:
        keys |= {"appOcpus": ocpus, "appMemoryGbs": mem}
    rep = plan(tmp_path, **keys)
    by = lines(rep)
    assert by["lab-vm"]["monthly_saved"] == 0.0 and "Always Free" in by["lab-vm"]["note"]
    assert by["lab-mysql"]["monthly_saved"] == 0.0 and "Always Free" in by["lab-mysql"]["note"]  # MySQL.Free
    [warning] = idle(rep)
    assert "lab-vm" in warning and "7 days" in warning and "95th" in warning and "20 %" in warning
    assert "labHours (50 h a week) saves nothing" in warning and "start schedule" in warning
    assert ("memory (A1 shapes)" in warning) == ("A1" in shape)


def test_without_lab_hours_nothing_is_saved_and_the_free_vm_is_still_warned_about(tmp_path):
    rep = plan(tmp_path)
    assert rep["labHours"] is None and rep["summary"]["labHoursSavedUsd"] == 0.0
    [warning] = idle(rep)
    assert "far below that most of the week" in warning and "labHours" not in warning
    assert "Lab hours: not set" in render_text(rep)


def test_plan_json_carries_the_saving(tmp_path, capsys):
    f = tmp_path / "Pulumi.y.yaml"
    f.write_text(
        "config:\n  oci:region: ap-singapore-1\n"
        f"  oci-dblab:compartmentId: {COMPARTMENT}\n  oci-dblab:sshPublicKey: {SSH_PUB}\n"
        f"  oci-dblab:adminCidr: 198.51.100.23/32\n  oci-dblab:labHours: {HOURS}\n  oci-dblab:dbShape: MySQL.2\n"
    )
    assert main(["plan", "--stack", "y", "--config", str(f), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["labHours"]["savedWithDbStopStartUsd"] > 0 and doc["labHours"]["savedBySchedulesUsd"] == 0.0


def test_a_stopped_resource_without_any_price_line_is_unknown_never_free():
    from labctl.savings import _saved

    assert _saved([], 0.7) == (None, False)
    line = estimate.CostLine("db", "t", "x DB system", 1, "DB system", 0.0, 0.0, False, estimate.NOT_PRICED)
    assert _saved([line], 0.7) == (None, False)
    free = estimate.CostLine("db", "t", "ECPU", 100, "ECPU-hour", 0.1, 0.0, True, "Always Free")
    assert _saved([free], 0.7) == (0.0, False)


def test_a_paid_engine_is_never_shown_as_an_always_free_saving(tmp_path):
    rep = plan(tmp_path, labHours=HOURS, dbEngine="postgresql")  # OCI Database with PostgreSQL: no Always Free shape
    [db] = [ln for ln in rep["labHours"]["lines"] if ln["how"].startswith("labctl class stop")]
    assert db["monthly_saved"] is None or db["monthly_saved"] > 0
    assert "Always Free" not in db["note"]
