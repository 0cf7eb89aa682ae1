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


def _vm_doc(app_shape: str, db_shape: str, db_ocpus: float | None, boot: int, image: str) -> dict:
    db_inputs: dict = {"shape": db_shape, "sourceDetails": {"bootVolumeSizeInGbs": boot, "sourceId": image}}
    if db_ocpus is not None:
        db_inputs["shapeConfig"] = {"ocpus": db_ocpus}
    return {
        "resources": [
            {
                "urn": "urn:dbvm",
                "type": "oci:Core/instance:Instance",
                "name": "lab-db-vm",
                "inputs": db_inputs,
                "ignoreChanges": ["metadata", "sourceDetails.sourceId", "availabilityDomain"],
            },
            {"urn": "urn:vm", "type": "oci:Core/instance:Instance", "name": "lab-vm", "inputs": {"shape": app_shape}},
        ]
    }


def test_diff_names_the_db_vms_own_keys_and_ignored_properties():
    """A DB VM is an instance like the app VM: its shape is dbShape, not appShape; its image is ignoreChanges."""
    base = _vm_doc("VM.Standard.E2.1.Micro", "VM.Standard.E2.1.Micro", None, 50, "img-x86")
    head = _vm_doc("VM.Standard.E4.Flex", "VM.Standard.A1.Flex", 1, 80, "img-arm")
    md = render_markdown(compare(base, head), "dev", "main", "head")
    db_row = next(line for line in md.splitlines() if "`lab-db-vm`" in line)
    app_row = next(line for line in md.splitlines() if "`lab-vm`" in line)
    assert "(dbShape: in place)" in db_row and "appShape" not in db_row and "appOcpus" not in db_row
    assert "(dbStorageGbs: in place)" in db_row
    assert "`img-arm` (ignoreChanges: `pulumi up` keeps the old value)" in db_row
    assert "(appShape: in place)" in app_row and "ignoreChanges" not in app_row
    assert for_property("oci:Core/instance:Instance", "shape", "lab-db-vm").key == "dbShape"
    assert for_property("oci:Core/instance:Instance", "shape", "lab-vm").key == "appShape"
    assert for_property("oci:Core/instance:Instance", "displayName", "lab-db-vm") is None


def test_plan_says_a_shape_move_across_processor_architectures_is_not_in_place():
    for engine in ("mysql-vm", "mariadb-vm", "postgresql-vm"):
        lines = plan_lines({"oci-dblab:dbEngine": engine})
        (db,) = [line for line in lines if line.startswith("dbShape")]  # the Flex-size rows are diff-only
        assert "processor architecture" in db and "--replace" in db
    (app,) = [line for line in plan_lines({}) if line.startswith("appShape")]
    assert "same processor architecture only" in app and "--replace" in app
