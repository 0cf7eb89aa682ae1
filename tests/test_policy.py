"""policy/rules.py: the default lab passes every rule, and each bad change is caught by the rule meant for it.

Rules are called directly (never through policy/__main__.py, whose PolicyPack starts a server and blocks). They run
on the offline plan's resources and, to show the real pack sees the same, on pulumi-policy ``PolicyResource``s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import mutated, named, plan_of
from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from components import ocimodel
from labctl.offline import PlannedResource
from policy.rules import ADVISORY, MANDATORY, RULES, evaluate

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"
Resources = list[PlannedResource]


def pairs(resources: Resources) -> set[tuple[str, str]]:
    return {(f.rule, f.name) for f in evaluate(resources)}


def tcp_in(source: str, lo: int | None = None, hi: int | None = None, protocol: str = "6", **extra: Any) -> dict:
    rule: dict[str, Any] = {"protocol": protocol, "source": source, "sourceType": "CIDR_BLOCK", "stateless": False}
    if lo is not None:
        rule["tcpOptions"] = {"min": lo, "max": hi if hi is not None else lo}
    return rule | extra


def nsg_rule(resources: Resources, direction: str, peer: str, port: int | None, nsg_id: str = "ocid1.nsg.app") -> None:
    template = named(resources, "lab-public-sl")
    props: dict[str, Any] = {"networkSecurityGroupId": nsg_id, "direction": direction, "protocol": "6"}
    props |= {"source": peer, "sourceType": "CIDR_BLOCK"} if direction == "INGRESS" else {"destination": peer}
    if port is not None:
        props["tcpOptions"] = {"destinationPortRange": {"min": port, "max": port}}
    urn = template.urn.replace(
        "oci:Core/securityList:SecurityList::lab-public-sl", f"{ocimodel.NSG_RULE}::lab-nsg-rule"
    )
    resources.append(
        PlannedResource(
            urn=urn,
            resource_type=ocimodel.NSG_RULE,
            name="lab-nsg-rule",
            parent=template.parent,
            custom=True,
            props=props,
            outputs=dict(props),
            dependencies=[],
            property_dependencies={},
            id="ocid1.nsgrule.lab",
        )
    )


# --- the default lab ----------------------------------------------------------------------------------------------


def test_default_plan_has_no_findings(plan):
    assert evaluate(plan.resources) == []


def test_rules_are_well_formed():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) == 14
    for r in RULES:
        assert r.level in (MANDATORY, ADVISORY), r.id
        assert r.description.endswith(".") and r.check.__doc__, r.id
        assert any(s in r.source for s in ("CIS OCI", "checkov CKV_OCI_", "steampipe", "oci-dblab")), r.id
    assert {r.id for r in RULES if r.level == ADVISORY} == {
        "db-backups-enabled",
        "required-tags",
        "db-alarm-to-topic",
        "student-tag",
        "instance-monitoring-enabled",
    }


def test_every_cited_checkov_id_is_one_we_confirmed():
    # each one is a check of the pinned checkov (requirements-checkov.txt); test_policy_checkov.py proves it exists
    confirmed = {"CKV_OCI_1", "CKV_OCI_2", "CKV_OCI_4", "CKV_OCI_5", "CKV_OCI_6", "CKV_OCI_19", "CKV_OCI_20"}
    confirmed |= {"CKV_OCI_22"}
    import re

    cited = {m for r in RULES for m in re.findall(r"CKV_OCI_\d+", r.source)}
    assert cited == confirmed


# --- config mutations: what a student can actually set ------------------------------------------------------------


def test_ssh_from_anywhere_by_config_is_mandatory_finding():
    p = plan_of(adminCidr="0.0.0.0/0")
    found = evaluate(p.resources)
    assert {(f.rule, f.name, f.level) for f in found} == {
        ("security-list-no-admin-ports-from-internet", "lab-public-sl", MANDATORY)
    }
    assert "port 22" in found[0].message and "CKV_OCI_19" in found[0].source


def test_custom_cidrs_still_pass():
    p = plan_of(vcnCidr="172.20.0.0/20", publicSubnetCidr="172.20.4.0/24", privateSubnetCidr="172.20.8.0/25")
    assert evaluate(p.resources) == []


def test_given_secret_password_passes_and_plaintext_is_caught():
    p = plan_of(secret=("dbPassword",), dbPassword="Str0ng#Passw0rd")
    assert evaluate(p.resources) == []

    def plaintext(rs: Resources) -> None:
        named(rs, "lab-mysql").secret_paths.clear()

    assert pairs(mutated(p, plaintext)) == {("password-inputs-secret", "lab-mysql")}


# --- resource mutations: each caught by the rule meant for it -----------------------------------------------------


def _set_private_ingress_source(source: str) -> Callable[[Resources], None]:
    def change(rs: Resources) -> None:
        for rule in named(rs, "lab-private-sl").props["ingressSecurityRules"]:
            rule["source"] = source

    return change


def _add_public_ingress(rule: dict) -> Callable[[Resources], None]:
    def change(rs: Resources) -> None:
        named(rs, "lab-public-sl").props["ingressSecurityRules"].append(rule)

    return change


def _db_in_public_subnet(rs: Resources) -> None:
    named(rs, "lab-mysql").props["subnetId"] = named(rs, "lab-public-subnet").id


def _vm_in_private_subnet(rs: Resources) -> None:
    named(rs, "lab-vm").props["createVnicDetails"]["subnetId"] = named(rs, "lab-private-subnet").id


def _imds_legacy_on(rs: Resources) -> None:
    named(rs, "lab-vm").props["instanceOptions"]["areLegacyImdsEndpointsDisabled"] = False


def _no_instance_options(rs: Resources) -> None:
    del named(rs, "lab-vm").props["instanceOptions"]


def _in_transit_off(rs: Resources) -> None:
    named(rs, "lab-vm").props["launchOptions"]["isPvEncryptionInTransitEnabled"] = False


def _monitoring_off(rs: Resources) -> None:
    named(rs, "lab-vm").props["agentConfig"] = {"isMonitoringDisabled": True}


def _backups_off(rs: Resources) -> None:
    # a paid shape: MySQL.Free sends no backup policy and passes the rule (tests/test_oci_rules.py)
    db = named(rs, "lab-mysql")
    db.props["shapeName"] = "MySQL.2"
    db.props["backupPolicy"] = {"isEnabled": False}


def _plaintext_password(rs: Resources) -> None:
    named(rs, "lab-mysql").secret_paths.clear()


def _drop_tag(name: str, key: str) -> Callable[[Resources], None]:
    def change(rs: Resources) -> None:
        del named(rs, name).props["freeformTags"][key]

    return change


def _wrong_stack_tag(rs: Resources) -> None:
    named(rs, "lab-mysql").props["freeformTags"]["stack"] = "prod"


def _default_sl_ingress(rs: Resources) -> None:
    named(rs, "lab-default-sl").props["ingressSecurityRules"] = [tcp_in("10.0.0.0/16", protocol="all")]


def _default_sl_unmanaged(rs: Resources) -> None:
    rs.remove(named(rs, "lab-default-sl"))


def _nsg_ssh_anywhere(rs: Resources) -> None:
    nsg_rule(rs, "INGRESS", "0.0.0.0/0", 22)


def _nsg_db_from_vcn(rs: Resources) -> None:
    nsg_rule(rs, "INGRESS", "10.0.0.0/16", 3306)


DB_PORT = "db-port-only-from-app-subnet"
ADMIN_SL = "security-list-no-admin-ports-from-internet"

MUTATIONS: list[tuple[str, Callable[[Resources], None], set[tuple[str, str]]]] = [
    ("db-port-to-vcn-cidr", _set_private_ingress_source("10.0.0.0/16"), {(DB_PORT, "lab-private-sl")}),
    ("db-port-to-anywhere", _set_private_ingress_source("0.0.0.0/0"), {(DB_PORT, "lab-private-sl")}),
    ("db-port-to-other-subnet", _set_private_ingress_source("10.0.1.0/24"), {(DB_PORT, "lab-private-sl")}),
    ("db-port-on-public-list", _add_public_ingress(tcp_in("0.0.0.0/0", 3306)), {(DB_PORT, "lab-public-sl")}),
    ("ssh-from-anywhere", _add_public_ingress(tcp_in("0.0.0.0/0", 22)), {(ADMIN_SL, "lab-public-sl")}),
    ("ssh-in-port-range", _add_public_ingress(tcp_in("0.0.0.0/0", 1, 1024)), {(ADMIN_SL, "lab-public-sl")}),
    (
        "rdp-all-tcp-ports",
        _add_public_ingress(tcp_in("0.0.0.0/0")),
        {(ADMIN_SL, "lab-public-sl"), (DB_PORT, "lab-public-sl")},
    ),
    (
        "all-protocols-anywhere",
        _add_public_ingress(tcp_in("0.0.0.0/0", protocol="all")),
        {(ADMIN_SL, "lab-public-sl"), (DB_PORT, "lab-public-sl")},
    ),
    ("nsg-ssh-anywhere", _nsg_ssh_anywhere, {("nsg-no-admin-ports-from-internet", "lab-nsg-rule")}),
    ("nsg-db-from-vcn", _nsg_db_from_vcn, {(DB_PORT, "lab-nsg-rule")}),
    (
        "default-sl-with-ingress",
        _default_sl_ingress,
        # all protocols from the VCN's private range: SSH from a private source is refused too
        {
            ("default-security-list-no-ingress", "lab-default-sl"),
            (DB_PORT, "lab-default-sl"),
            (ADMIN_SL, "lab-default-sl"),
        },
    ),
    ("default-sl-unmanaged", _default_sl_unmanaged, {("default-security-list-no-ingress", "lab-vcn")}),
    # in the public subnet the DB also has that subnet's route to the internet gateway
    (
        "db-in-public-subnet",
        _db_in_public_subnet,
        {("no-public-ip-in-private-subnet", "lab-mysql"), ("db-subnet-no-internet-route", "lab-public-rt")},
    ),
    # The VM moves too, so the app subnet becomes 10.0.1.0/24 and the DB rule's source no longer matches it.
    (
        "vm-with-public-ip-in-private-subnet",
        _vm_in_private_subnet,
        {("no-public-ip-in-private-subnet", "lab-vm"), (DB_PORT, "lab-private-sl")},
    ),
    ("imds-legacy-on", _imds_legacy_on, {("legacy-imds-disabled", "lab-vm")}),
    ("imds-options-missing", _no_instance_options, {("legacy-imds-disabled", "lab-vm")}),
    ("in-transit-encryption-off", _in_transit_off, {("boot-volume-in-transit-encryption", "lab-vm")}),
    ("monitoring-off", _monitoring_off, {("instance-monitoring-enabled", "lab-vm")}),
    ("backups-off", _backups_off, {("db-backups-enabled", "lab-mysql")}),
    ("plaintext-password", _plaintext_password, {("password-inputs-secret", "lab-mysql")}),
    ("missing-stack-tag", _drop_tag("lab-vcn", "stack"), {("required-tags", "lab-vcn")}),
    ("missing-project-tag", _drop_tag("lab-vm", "project"), {("required-tags", "lab-vm")}),
    ("wrong-stack-tag", _wrong_stack_tag, {("required-tags", "lab-mysql")}),
]


@pytest.mark.parametrize(("change", "expected"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught_by_its_rule(plan, change, expected):
    assert pairs(mutated(plan, change)) == expected


def test_findings_carry_rule_level_and_source_and_are_sorted(plan):
    def many(rs: Resources) -> None:
        _backups_off(rs)
        _imds_legacy_on(rs)
        _drop_tag("lab-vcn", "stack")(rs)
        _add_public_ingress(tcp_in("0.0.0.0/0", 22))(rs)

    found = evaluate(mutated(plan, many))
    by_id = {r.id: r for r in RULES}
    for f in found:
        assert (f.level, f.source) == (by_id[f.rule].level, by_id[f.rule].source)
        assert f.urn.startswith("urn:pulumi:dev::oci-dblab::")
    assert [f.level for f in found] == sorted((f.level for f in found), key=[MANDATORY, ADVISORY].index)
    assert found == evaluate(list(reversed(mutated(plan, many))))


# --- the same rules on pulumi-policy's own resource objects (what the real pack passes) -----------------------------


COMPUTED = {"defaultSecurityListId", "defaultRouteTableId", "privateIp", "publicIp", "ipAddress", "subnetDomainName"}


def as_policy_resources(resources: Resources) -> list[PolicyResource]:
    """What pulumi-policy's analyzer hands a stack policy: one props map (outputs incl. id), no secret markers."""
    out = []
    for r in resources:
        # The mocks echo inputs into outputs; take only what the provider computes, so mutated inputs stay mutated.
        props = {**{k: v for k, v in r.outputs.items() if k in COMPUTED}, **r.props}
        if r.id:
            props["id"] = r.id
        opts = PolicyResourceOptions(
            False, list(r.ignore_changes), None, [], PolicyCustomTimeouts(0, 0, 0), list(r.additional_secret_outputs)
        )
        out.append(
            PolicyResource(r.resource_type, unknown_checking_proxy(props), r.urn, r.name, opts, None, None, [], {})
        )
    return out


def test_real_pack_resources_pass_on_the_default_lab(plan):
    assert evaluate(as_policy_resources(plan.resources)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [m[1:] for m in MUTATIONS if m[0] != "plaintext-password"],
    ids=[m[0] for m in MUTATIONS if m[0] != "plaintext-password"],
)
def test_real_pack_resources_catch_the_same_mutations(plan, change, expected):
    assert {(f.rule, f.name) for f in evaluate(as_policy_resources(mutated(plan, change)))} == expected


def test_real_pack_password_rule_uses_additional_secret_outputs(plan):
    resources = copy.deepcopy(plan.resources)
    named(resources, "lab-mysql").additional_secret_outputs.clear()
    found = evaluate(as_policy_resources(resources))
    assert [(f.rule, f.name) for f in found] == [("password-inputs-secret", "lab-mysql")]
    assert "additional_secret_outputs" in found[0].message


def test_secret_aware_false_reports_what_the_real_pack_would(plan):
    assert evaluate(plan.resources, secret_aware=False) == []
    # The plaintext input is invisible without secret_paths; the state-side marker still passes.
    assert evaluate(mutated(plan, _plaintext_password), secret_aware=False) == []

    def state_in_plaintext(rs: Resources) -> None:
        named(rs, "lab-mysql").additional_secret_outputs.clear()

    assert pairs(mutated(plan, state_in_plaintext)) == set()  # offline: the input is secret, that is what counts
    found = evaluate(mutated(plan, state_in_plaintext), secret_aware=False)
    assert [(f.rule, f.name) for f in found] == [("password-inputs-secret", "lab-mysql")]


def test_unknown_ids_do_not_stop_the_rules_they_link_by_urn(plan):
    """In a fresh preview the DB's subnetId is unknown; the rule follows the property dependency instead."""
    resources = copy.deepcopy(plan.resources)
    db = named(resources, "lab-mysql")
    db.props["subnetId"] = UNKNOWN_STRING_VALUE
    assert evaluate(resources) == []
    db.property_dependencies["subnetId"] = [named(resources, "lab-public-subnet").urn]
    assert pairs(resources) == {
        ("no-public-ip-in-private-subnet", "lab-mysql"),
        ("db-subnet-no-internet-route", "lab-public-rt"),
    }
    with pytest.raises(UnknownValueError):  # what the proxy does when a rule reads the unknown value itself
        _ = as_policy_resources([db])[0].props["subnetId"]


# --- the pack's files (never imported: constructing a PolicyPack blocks) ------------------------------------------


def test_pack_files():
    meta = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python" and meta["description"]
    assert (POLICY_DIR / "requirements.txt").read_text().split() == ["pulumi-policy==1.21.0"]
    main = (POLICY_DIR / "__main__.py").read_text()
    compile(main, "policy/__main__.py", "exec")
    assert "StackValidationPolicy(" in main and "from policy.rules import" in main and "report_violation(" in main


# --- operations: every DB has an alarm to a topic; every resource carries the student tag ------------------------


def _without_db_alarms(rs: Resources) -> None:
    rs[:] = [r for r in rs if not (r.resource_type == ocimodel.MONITORING_ALARM and "-db-" in r.name)]


def _alarms_to_nowhere(rs: Resources) -> None:
    for r in rs:
        if r.resource_type == ocimodel.MONITORING_ALARM:
            r.props["destinations"] = []
            r.property_dependencies["destinations"] = []


def _db_alarms_disabled(rs: Resources) -> None:
    for r in rs:
        if r.resource_type == ocimodel.MONITORING_ALARM:
            r.props["isEnabled"] = False


@pytest.mark.parametrize("change", [_without_db_alarms, _alarms_to_nowhere, _db_alarms_disabled])
def test_a_db_without_an_alarm_to_a_topic_is_reported(plan, change):
    found = [f for f in evaluate(mutated(plan, change)) if f.rule == "db-alarm-to-topic"]
    assert [(f.name, f.level) for f in found] == [("lab-mysql", ADVISORY)]
    assert "NotificationTopic" in found[0].message


def test_an_alarm_on_the_vm_only_does_not_count_for_the_db(plan):
    def only_vm(rs: Resources) -> None:
        _without_db_alarms(rs)
        assert any(r.resource_type == ocimodel.MONITORING_ALARM for r in rs)  # the VM's alarms are still there

    assert ("db-alarm-to-topic", "lab-mysql") in pairs(mutated(plan, only_vm))


def test_student_tag_missing_or_inconsistent_is_reported(plan):
    def untag_vm(rs: Resources) -> None:
        del named(rs, "lab-vm").props["freeformTags"]["student"]

    def other_student(rs: Resources) -> None:
        named(rs, "lab-ops-topic").props["freeformTags"]["student"] = "a23-999"

    missing = [f for f in evaluate(mutated(plan, untag_vm)) if f.rule == "student-tag"]
    assert [(f.name, f.level) for f in missing] == [("lab-vm", ADVISORY)] and "studentId" in missing[0].message
    odd = [f for f in evaluate(mutated(plan, other_student)) if f.rule == "student-tag"]
    assert [f.name for f in odd] == ["lab-ops-topic"] and "'a23-042'" in odd[0].message


def test_a_stack_without_student_id_is_reported_on_every_resource():
    p = plan_of(studentId=None)
    found = {f.name for f in evaluate(p.resources) if f.rule == "student-tag"}
    assert {"lab-vm", "lab-mysql", "lab-vcn", "lab-ops-topic"} <= found
