"""labctl/tfplan.py: the plan as Terraform plan JSON loses nothing, hides every secret, speaks the OCI provider."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, named, plan_of

from labctl import cli, tfplan
from labctl.analyzerhost import UNKNOWN


@pytest.fixture(scope="module")
def secret_plan():
    return plan_of(secret=("dbPassword",), dbPassword="Str0ng#Passw0rd-tfplan")


@pytest.mark.parametrize("which", ["default", "secret-password"])
def test_every_resource_round_trips(plan, secret_plan, which):
    p = plan if which == "default" else secret_plan
    doc = json.loads(tfplan.render(p))
    back = tfplan.from_tfplan(doc)
    custom = [r for r in p.resources if r.custom]
    assert set(back) == {r.urn for r in custom}
    for r in custom:
        got = back[r.urn]
        assert got["type"] == tfplan.terraform_type(r.resource_type)
        assert got["name"] == r.name
        assert got["properties"] == tfplan.expected_properties(r, p.resources), r.name


def test_round_trip_would_catch_a_lost_attribute(plan):
    doc = json.loads(tfplan.render(plan))
    for rc in doc["resource_changes"]:
        if rc["name"] == "lab-vm":
            del rc["change"]["after"]["instance_options"]
    for rp in doc["planned_values"]["root_module"]["resources"]:
        if rp["name"] == "lab-vm":
            del rp["values"]["instance_options"]
    vm = named(plan, "lab-vm")
    assert tfplan.from_tfplan(doc)[vm.urn]["properties"] != tfplan.expected_properties(vm, plan.resources)


def test_terraform_names_and_shapes(plan):
    doc = tfplan.to_tfplan(plan)
    assert doc["format_version"] == "1.2" and doc["terraform_version"]
    by_address = {r["address"]: r for r in doc["planned_values"]["root_module"]["resources"]}
    sl = by_address["oci_core_security_list.lab-private-sl"]["values"]
    rule = sl["ingress_security_rules"][0]
    assert rule["tcp_options"] == [{"min": 3306, "max": 3306}] and rule["source_type"] == "CIDR_BLOCK"
    vm = by_address["oci_core_instance.lab-vm"]["values"]
    assert vm["launch_options"] == [{"is_pv_encryption_in_transit_enabled": True}]
    assert vm["instance_options"] == [{"are_legacy_imds_endpoints_disabled": True}]
    assert "project" in vm["freeform_tags"] and "ssh_authorized_keys" in vm["metadata"]  # map keys are data
    assert vm["create_vnic_details"][0]["freeform_tags"]["stack"] == "dev"
    assert {r["provider_name"] for r in by_address.values() if r["type"].startswith("oci_")} == {tfplan.OCI_PROVIDER}
    db = by_address["oci_mysql_mysql_db_system.lab-mysql"]
    assert db["values"]["port_x"] == 33060 and "subnet_id" not in db["values"]  # unknown until apply
    changes = {c["address"]: c["change"] for c in doc["resource_changes"]}
    assert changes["oci_mysql_mysql_db_system.lab-mysql"]["after_unknown"]["subnet_id"] is True
    assert all(c["actions"] == ["create"] and c["after_unknown"]["id"] is True for c in changes.values())


def test_types_follow_the_provider_naming_rule():
    for token, tf_type in tfplan.TF_TYPES.items():
        if token.startswith("oci:"):
            module, resource = token.split(":")[1].split("/")
            assert tf_type == f"oci_{tfplan.snake(module)}_{tfplan.snake(resource)}"
    assert tfplan.terraform_type("oci:Identity/policy:Policy") == "oci_identity_policy"
    assert tfplan.terraform_type("pulumi-python:dynamic:Resource") == tfplan.DYNAMIC_TYPE


def test_snake_and_camel_are_inverse_for_every_attribute_of_the_plan(plan):
    def keys(x, in_map=False):
        if isinstance(x, dict):
            for k, v in x.items():
                if not in_map:
                    yield k
                yield from keys(v, in_map=k in tfplan.MAP_ATTRIBUTES)
        elif isinstance(x, list):
            for v in x:
                yield from keys(v)

    names = {k for r in plan.resources for k in keys(r.props) if not k.startswith("__")}
    assert names and all(tfplan.camel(tfplan.snake(k)) == k for k in names)
    assert tfplan.snake("isPvEncryptionInTransitEnabled") == "is_pv_encryption_in_transit_enabled"


def test_secrets_never_reach_the_document(secret_plan):
    text = tfplan.render(secret_plan)
    assert "Str0ng#Passw0rd-tfplan" not in text
    doc = json.loads(text)
    [db] = [c for c in doc["resource_changes"] if c["name"] == "lab-mysql"]
    assert db["change"]["after"]["admin_password"] is None
    assert db["change"]["after_sensitive"]["admin_password"] is True
    assert UNKNOWN not in text  # unknowns are flagged in after_unknown, never written as sentinels


def test_cli_writes_tfplan(capsys):
    code = cli.main(["plan", "--stack", "dev", "--project-dir", str(ROOT), "--format", "tfplan"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    doc = json.loads(out)
    assert {c["type"] for c in doc["resource_changes"]} >= {"oci_core_instance", "oci_core_security_list"}
