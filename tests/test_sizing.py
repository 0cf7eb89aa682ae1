"""Elastic sizing: the provider's in-place facts, as labctl plan and labctl diff state them."""

from __future__ import annotations

from conftest import named, plan_of

from labctl.diff import compare, flatten, render_markdown
from labctl.sizing import SIZING, facts_for, for_property, plan_lines


def test_every_fact_names_a_property_the_program_declares():
    flex = plan_of(appShape="VM.Standard.E4.Flex", appOcpus="2", appMemoryGbs="16")
    declared = {r.resource_type: set(flatten(r.props)) for r in (named(flex, "lab-vm"), named(flex, "lab-mysql"))}
    for fact in facts_for("mysql"):
        assert fact.prop in declared[fact.resource_type], fact.key
        assert "terraform-provider-oci" in fact.source and ".go:" in fact.source
    assert {f.key for f in SIZING} >= {"appShape", "dbShape", "dbStorageGbs"}


def test_plan_lines_follow_the_shape():
    micro = plan_lines({"oci-dblab:appShape": "VM.Standard.E2.1.Micro", "oci-dblab:dbStorageGbs": "50"})
    assert [line.split(":")[0].split(" ")[0] for line in micro] == ["appShape", "dbShape", "dbStorageGbs"]
    assert "dbStorageGbs (now 50): changes in place" in micro[2]
    flex = plan_lines({"oci-dblab:appShape": "VM.Standard.A1.Flex", "oci-dblab:appOcpus": "2"})
    assert "appOcpus (now 2): changes in place; Flex shapes only" in flex
    assert any(line.startswith("appMemoryGbs: changes in place") for line in flex)


def _doc(shape: str, storage: int, ocpus: float) -> dict:
    return {
        "resources": [
            {
                "urn": "urn:db",
                "type": "oci:Mysql/mysqlDbSystem:MysqlDbSystem",
                "name": "lab-mysql",
                "inputs": {"shapeName": shape, "dataStorageSizeInGb": storage},
            },
            {
                "urn": "urn:vm",
                "type": "oci:Core/instance:Instance",
                "name": "lab-vm",
                "inputs": {"shapeConfig": {"ocpus": ocpus}, "displayName": "x"},
            },
        ]
    }


def test_diff_marks_sizing_changes_in_place():
    changes = compare(_doc("MySQL.2", 50, 1), _doc("MySQL.4", 100, 2))
    md = render_markdown(changes, "dev", "main", "head")
    assert "dbShape: in place" in md and "dbStorageGbs: in place" in md and "appOcpus: in place" in md
    assert for_property("oci:Core/instance:Instance", "displayName") is None
    unchanged = render_markdown(compare(_doc("MySQL.2", 50, 1), _doc("MySQL.2", 50, 1)), "dev", "a", "b")
    assert "in place" not in unchanged
