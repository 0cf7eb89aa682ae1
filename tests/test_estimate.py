"""Monthly cost and critical path of offline plans (labctl.estimate)."""

from __future__ import annotations

import json

import pytest
from conftest import plan_of

from engines import mysql as mysql_engine
from labctl import estimate
from labctl.estimate import CostLine, critical_path, monthly_cost

HOURS = 744


@pytest.fixture(scope="module")
def default_plan():
    return plan_of()


def test_price_table_entries_all_cite_known_sources():
    table = estimate.price_table()
    ids = set(table["sources"])
    cited = list(table["always_free"]["sources"]) + list(table["block_volume"]["sources"]) + table["mysql"]["sources"]
    for spec in table["compute"].values():
        cited += spec["sources"]
    assert cited and set(cited) <= ids
    for src in table["sources"].values():
        assert src["url"] and src["says"] and src["read_on"]
    assert table["hours_per_month"] == HOURS


def test_duration_table_entries_all_cite_known_sources():
    table = estimate.duration_table()
    for spec in table["types"].values():
        assert set(spec["sources"]) <= set(table["sources"])


def test_default_lab_is_free(default_plan):
    report = monthly_cost(default_plan.resources)
    assert report.total == 0.0
    assert report.currency == "USD"
    assert not [ln for ln in report.lines if not ln.free]
    items = {(ln.name, ln.item) for ln in report.lines}
    assert ("lab-vm", "VM.Standard.E2.1.Micro compute") in items
    assert ("lab-mysql", "MySQL.Free DB system") in items
    assert ("lab-vm", "boot volume storage") in items
    assert any("freetier_topic-Always_Free_Resources" in s for s in report.sources)
    json.dumps(report.to_dict())


def test_e4_flex_app_is_priced_per_ocpu_and_gb_hour():
    report = monthly_cost(plan_of(appShape="VM.Standard.E4.Flex", appOcpus="2", appMemoryGbs="16").resources)
    paid = {ln.item: ln for ln in report.lines if not ln.free}
    assert set(paid) == {"VM.Standard.E4.Flex OCPU", "VM.Standard.E4.Flex memory"}
    assert paid["VM.Standard.E4.Flex OCPU"].quantity == 2 * HOURS
    assert paid["VM.Standard.E4.Flex OCPU"].monthly == round(2 * HOURS * 0.025, 2) == 37.2
    assert paid["VM.Standard.E4.Flex memory"].monthly == round(16 * HOURS * 0.0015, 2) == 17.86
    assert report.total == pytest.approx(37.2 + 17.86)


def test_paid_mysql_shape_and_storage():
    report = monthly_cost(plan_of(dbShape="MySQL.2", dbStorageGbs="100").resources)
    paid = {ln.item: ln.monthly for ln in report.lines if not ln.free}
    assert paid == {"MySQL.2 ECPU": round(2 * HOURS * 0.0366, 2), "DB storage": 4.0}
    assert report.total == pytest.approx(54.46 + 4.0)


def test_free_tier_already_used_by_other_stacks_is_counted(default_plan):
    report = monthly_cost(default_plan.resources, {"e2_micro_instances": 2, "mysql_free_systems": 1})
    assert {ln.item for ln in report.blocked} == {"VM.Standard.E2.1.Micro compute", "MySQL.Free DB system"}
    assert all("Always Free limit" in ln.note for ln in report.blocked)
    # the 200 GB of block storage is used up too: the boot volume becomes paid
    full = monthly_cost(default_plan.resources, {"block_volume_gbs": 200})
    assert full.total == pytest.approx(round(50 * 0.0255, 2) + round(50 * 0.017, 2))


def test_a1_pool_covers_two_ocpus_and_twelve_gb_then_charges():
    free_lines, _ = estimate.price_instance("a", "VM.Standard.A1.Flex", 2, 12, None, estimate.FreeTier())
    assert sum(ln.monthly for ln in free_lines) == 0.0
    lines, _ = estimate.price_instance("b", "VM.Standard.A1.Flex", 4, 24, None, estimate.FreeTier())
    paid = {ln.item: ln for ln in lines if not ln.free}
    assert paid["VM.Standard.A1.Flex OCPU"].quantity == pytest.approx(4 * HOURS - 1500)
    assert paid["VM.Standard.A1.Flex memory"].quantity == pytest.approx(24 * HOURS - 9000)


def test_unknown_shape_is_reported_not_silently_free():
    lines, _ = estimate.price_instance("x", "VM.Standard.E6.Flex", 1, 6, None, estimate.FreeTier())
    assert lines[0].note == "not in the price table" and not lines[0].free
    with pytest.raises(ValueError, match="unknown free-tier key"):
        estimate.FreeTier({"micro": 1})


def test_cost_line_fields():
    line = CostLine("n", "t", "i", 1, "u", 0.5, 0.5, False)
    assert line.note == "" and line.blocked is False


def test_critical_path_of_default_plan_runs_through_db_system_to_the_check(default_plan):
    report = critical_path(default_plan.resources)
    assert report.path[0] == "lab-vcn"
    assert report.path[-2:] == ["lab-mysql", "lab-env"]
    assert "lab-private-subnet" in report.path
    assert "lab-vm" not in report.path  # the VM is built in parallel with the DB
    assert report.ratio == pytest.approx(1.0, abs=0.02)
    assert report.seconds == pytest.approx(sum(estimate.create_seconds(r) for r in _types(default_plan, report.path)))
    assert report.serial_seconds > report.seconds
    assert report.physical_limit_seconds == 5 + 2 + 750 + 30


def _types(plan, names):
    by_name = {r.name: r.resource_type for r in plan.resources if r.custom}
    return [by_name[n] for n in names]


class R:
    """A minimal stand-in for PlannedResource, to build DAGs by hand."""

    def __init__(self, name, rtype, deps=(), parent=None, custom=True, prop_deps=None):
        self.name, self.urn, self.resource_type = name, f"urn:{name}", rtype
        self.dependencies = [f"urn:{d}" for d in deps]
        self.property_dependencies = {k: [f"urn:{d}" for d in v] for k, v in (prop_deps or {}).items()}
        self.parent = f"urn:{parent}" if parent else None
        self.custom = custom
        self.props = {}


def test_depending_on_a_component_waits_for_all_of_its_children():
    rs = [
        R("net", "oci-dblab:network:Network", custom=False),
        R("vcn", estimate.VCN, parent="net"),
        R("sub", estimate.SUBNET, deps=["vcn"], parent="net"),
        R("db", mysql_engine.DB_SYSTEM, prop_deps={"subnetId": ["sub"]}),
        R("env", estimate.DYNAMIC, deps=["net", "db"]),
    ]
    report = critical_path(rs)
    assert report.path == ["vcn", "sub", "db", "env"]
    assert report.seconds == 5 + 2 + 750 + 30
    assert report.ratio == 1.0


def test_a_db_that_waits_for_the_vm_is_flagged_by_the_ratio():
    rs = [
        R("vcn", estimate.VCN),
        R("sub", estimate.SUBNET, deps=["vcn"]),
        R("vm", estimate.INSTANCE, deps=["sub"]),
        R("db", mysql_engine.DB_SYSTEM, deps=["sub", "vm"]),
    ]
    report = critical_path(rs)
    assert report.path == ["vcn", "sub", "vm", "db"]
    assert report.ratio == pytest.approx((5 + 2 + 90 + 750) / (5 + 2 + 750), abs=0.001)


@pytest.mark.parametrize("order", ["rt-first", "sl-first"])
def test_ties_on_the_critical_path_are_broken_by_a_stable_key_not_by_order(order):
    """A route table and a security list take equally long; the subnet waits for both. Whichever the engine
    registered (or listed) first, the path is the same: the smaller URN wins the tie."""
    deps = ["rt", "sl"] if order == "rt-first" else ["sl", "rt"]
    rs = [
        R("vcn", estimate.VCN),
        R("rt", "oci:Core/routeTable:RouteTable", deps=["vcn"]),
        R("sl", "oci:Core/securityList:SecurityList", deps=["vcn"]),
        R("sub", estimate.SUBNET, deps=deps),
        R("db", mysql_engine.DB_SYSTEM, deps=["sub"]),
    ]
    if order == "sl-first":
        rs[1], rs[2] = rs[2], rs[1]
    assert estimate.create_seconds(rs[1].resource_type) == estimate.create_seconds(rs[2].resource_type)
    assert critical_path(rs).path == ["vcn", "rt", "sub", "db"]
    # two resources ending at the same moment: the path's tail is chosen by the same key
    twins = [R("vcn", estimate.VCN), R("b", estimate.SUBNET, deps=["vcn"]), R("a", estimate.SUBNET, deps=["vcn"])]
    assert critical_path(twins).path == ["vcn", "a"]
    assert critical_path(list(reversed(twins))).path == ["vcn", "a"]
