"""The policy pack judged the way the engine judges a stack: served by ``python -m pulumi.policy`` in its own
interpreter (policy/ as cwd, the port it prints), called over the Analyzer gRPC service, fed the offline plan's
resources in both forms the engine sends: a preview of a fresh stack (ids unknown) and the state after ``up``.

The table below is stacks × forms × expected findings. Every rule reaches its verdict in both forms: a
"can't run policy ... during preview" advisory would show up as an extra, unexpected diagnostic.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable

import pytest
from conftest import named, plan_of
from pulumi.runtime.proto import analyzer_pb2

from labctl.analyzerhost import FORMS, PREVIEW, UNKNOWN, UP, PolicyPackHost, as_json, encode
from labctl.offline import Plan, PlannedResource
from policy.rules import ADVISORY, MANDATORY, RULES, evaluate

Resources = list[PlannedResource]
Change = Callable[[Resources], None]

ADMIN_SL = "security-list-no-admin-ports-from-internet"
DB_PORT = "db-port-only-from-app-subnet"
PRIVATE = "no-public-ip-in-private-subnet"
PASSWORD = "password-inputs-secret"
DEFAULT_SL = "default-security-list-no-ingress"


@pytest.fixture(scope="module")
def pack():
    with PolicyPackHost() as host:
        host.configure()
        yield host


@pytest.fixture(scope="module")
def ssh_world_plan() -> Plan:
    return plan_of(adminCidr="0.0.0.0/0")


def _place(rs: Resources, name: str, prop: str, subnet: str) -> None:
    """Move ``name`` into ``subnet`` the way a changed program would: value, property dependency, dependencies."""
    r, sub = named(rs, name), named(rs, subnet)
    target = r.props["createVnicDetails"] if prop == "createVnicDetails" else r.props
    old = target["subnetId"]
    target["subnetId"] = sub.id
    old_urn = next(x.urn for x in rs if x.id == old)
    r.property_dependencies[prop] = [sub.urn if u == old_urn else u for u in r.property_dependencies[prop]]
    r.dependencies = [sub.urn if u == old_urn else u for u in r.dependencies]


def _db_ingress_from(source: str) -> Change:
    def change(rs: Resources) -> None:
        for rule in named(rs, "lab-private-sl").props["ingressSecurityRules"]:
            rule["source"] = source

    return change


def _password_unmarked(rs: Resources) -> None:
    db = named(rs, "lab-mysql")
    db.secret_paths.clear()
    db.additional_secret_outputs.clear()


def _unmanaged_default_sl(rs: Resources) -> None:
    rs.remove(named(rs, "lab-default-sl"))


def _backups_off(rs: Resources) -> None:
    # a paid shape: MySQL.Free sends no backup policy and passes the rule (tests/test_oci_rules.py)
    db = named(rs, "lab-mysql")
    db.props["shapeName"] = "MySQL.2"
    db.props["backupPolicy"] = {"isEnabled": False}


def _db_alarms_removed(rs: Resources) -> None:
    rs[:] = [r for r in rs if not (r.resource_type == "oci:Monitoring/alarm:Alarm" and "-db-" in r.name)]


def _vm_untagged(rs: Resources) -> None:
    del named(rs, "lab-vm").props["freeformTags"]["student"]


def _in_transit_off(rs: Resources) -> None:
    named(rs, "lab-vm").props["launchOptions"]["isPvEncryptionInTransitEnabled"] = False


def _nothing(rs: Resources) -> None:
    pass


# (case, which plan, change, expected {(rule, resource name, level)}) — the same in both forms.
CASES: list[tuple[str, str, Change, set[tuple[str, str, str]]]] = [
    ("default-stack", "default", _nothing, set()),
    ("ssh-open-to-the-world", "ssh-world", _nothing, {(ADMIN_SL, "lab-public-sl", MANDATORY)}),
    ("db-port-open-to-the-world", "default", _db_ingress_from("0.0.0.0/0"), {(DB_PORT, "lab-private-sl", MANDATORY)}),
    ("db-port-open-to-the-vcn", "default", _db_ingress_from("10.0.0.0/16"), {(DB_PORT, "lab-private-sl", MANDATORY)}),
    (
        # the VM (which asks for a public IP) moves to the private subnet; the app subnet moves with it
        "public-ip-in-private-subnet",
        "default",
        lambda rs: _place(rs, "lab-vm", "createVnicDetails", "lab-private-subnet"),
        {(PRIVATE, "lab-vm", MANDATORY), (DB_PORT, "lab-private-sl", MANDATORY)},
    ),
    (
        "db-in-public-subnet",
        "default",
        lambda rs: _place(rs, "lab-mysql", "subnetId", "lab-public-subnet"),
        # the public subnet's route table sends 0.0.0.0/0 to the internet gateway
        {(PRIVATE, "lab-mysql", MANDATORY), ("db-subnet-no-internet-route", "lab-public-rt", MANDATORY)},
    ),
    ("password-without-secret-marking", "default", _password_unmarked, {(PASSWORD, "lab-mysql", MANDATORY)}),
    ("default-security-list-unmanaged", "default", _unmanaged_default_sl, {(DEFAULT_SL, "lab-vcn", MANDATORY)}),
    ("backups-off", "default", _backups_off, {("db-backups-enabled", "lab-mysql", ADVISORY)}),
    ("db-without-alarm", "default", _db_alarms_removed, {("db-alarm-to-topic", "lab-mysql", ADVISORY)}),
    ("vm-without-student-tag", "default", _vm_untagged, {("student-tag", "lab-vm", ADVISORY)}),
    (
        "boot-volume-not-encrypted-in-transit",
        "default",
        _in_transit_off,
        {("boot-volume-in-transit-encryption", "lab-vm", MANDATORY)},
    ),
]

TABLE = [(c[0], form, *c[1:]) for c in CASES for form in FORMS]


def _resources(plan: Plan, ssh_world_plan: Plan, which: str, change: Change) -> tuple[Plan, Resources]:
    base = ssh_world_plan if which == "ssh-world" else plan
    resources = copy.deepcopy(base.resources)
    change(resources)
    return base, resources


def _found(pack: PolicyPackHost, base: Plan, resources: Resources, form: str) -> set[tuple[str, str, str]]:
    request = encode(resources, form, stack=base.stack, stack_outputs=base.outputs, secret_outputs=base.secret_outputs)
    names = {r.urn: r.name for r in resources}
    return {(d.policy, names.get(d.urn, d.urn), d.level) for d in pack.analyze_stack(request)}


@pytest.mark.parametrize(("case", "form", "which", "change", "expected"), TABLE, ids=[f"{c[0]}-{c[1]}" for c in TABLE])
def test_pack_verdicts_over_the_analyzer_protocol(pack, plan, ssh_world_plan, case, form, which, change, expected):
    base, resources = _resources(plan, ssh_world_plan, which, change)
    assert _found(pack, base, resources, form) == expected


@pytest.mark.parametrize(("case", "which", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_offline_evaluation_agrees_with_the_pack(plan, ssh_world_plan, case, which, change, expected):
    """``labctl plan`` runs the same rules in-process: same verdicts as the served pack."""
    _, resources = _resources(plan, ssh_world_plan, which, change)
    assert {(f.rule, f.name, f.level) for f in evaluate(resources)} == expected


def test_the_pack_describes_itself_as_the_rules_do(pack):
    info = pack.info()
    assert info.name == "oci-dblab" and info.supportsConfig
    got = {p.name: (p.enforcementLevel, p.policy_type) for p in info.policies}
    levels = {MANDATORY: analyzer_pb2.MANDATORY, ADVISORY: analyzer_pb2.ADVISORY}
    assert got == {r.id: (levels[r.level], analyzer_pb2.POLICY_TYPE_STACK) for r in RULES}


def test_configure_changes_what_the_pack_enforces(plan, ssh_world_plan):
    """Configure is honoured: the engine's policy config can disable a rule (proves the call reaches the pack)."""
    with PolicyPackHost() as host:
        host.configure({ADMIN_SL: analyzer_pb2.DISABLED})
        request = encode(ssh_world_plan.resources, UP, stack_outputs=ssh_world_plan.outputs)
        assert host.analyze_stack(request) == []


def test_preview_form_hides_ids_and_what_derives_from_them(plan):
    by_name = {r["name"]: r for r in as_json(encode(plan.resources, PREVIEW)) if r.get("type", "").startswith("oci:")}
    db, vm = by_name["lab-mysql"]["properties"], by_name["lab-vm"]["properties"]
    assert db["id"] == db["subnetId"] == db["ipAddress"] == UNKNOWN
    assert db["adminPassword"]["value"] == UNKNOWN  # a generated password does not exist before `up`
    assert vm["createVnicDetails"]["subnetId"] == UNKNOWN and vm["createVnicDetails"]["assignPublicIp"] == "true"
    assert by_name["lab-default-sl"]["properties"]["manageDefaultResourceId"] == UNKNOWN
    assert by_name["lab-private-sl"]["properties"]["ingressSecurityRules"][0]["source"] == "10.0.0.0/24"
    # ... while the links the rules use are there, by URN
    assert by_name["lab-mysql"]["propertyDependencies"]["subnetId"]["urns"] == [named(plan, "lab-private-subnet").urn]
    assert UNKNOWN not in str(as_json(encode(plan.resources, UP)))


def test_up_form_carries_ids_secrets_and_options(plan):
    by_name = {r["name"]: r for r in as_json(encode(plan.resources, UP))}
    db = by_name["lab-mysql"]
    assert db["properties"]["id"] == named(plan, "lab-mysql").id
    assert db["properties"]["subnetId"] == named(plan, "lab-private-subnet").id
    assert set(db["properties"]["adminPassword"]) == {"4dabf18193072939515e22adb298388d", "value"}  # secret object
    assert "adminPassword" in db["options"]["additionalSecretOutputs"]
    assert db["provider"]["type"] == "pulumi:providers:oci"
    assert "pulumi:pulumi:Stack" in {r["type"] for r in by_name.values()}


def test_a_rule_that_links_by_id_cannot_run_in_preview(tmp_path, plan):
    """Negative control: the preview form makes an id-reading rule fail the way the issue describes."""
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (tmp_path / "__main__.py").write_text(
        textwrap.dedent(
            """
            from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy

            def validate(args, report_violation):
                ids = {r.props["id"]: r for r in args.resources if r.resource_type.startswith("oci:Core/subnet")}
                for r in args.resources:
                    if r.resource_type.startswith("oci:Mysql/") and r.props["subnetId"] not in ids:
                        report_violation("subnet not declared", r.urn)

            PolicyPack("by-id", [StackValidationPolicy(name="by-id", description="d.", validate=validate,
                                                       enforcement_level=EnforcementLevel.MANDATORY)])
            """
        )
    )
    with PolicyPackHost(tmp_path) as host:
        host.configure()
        [preview] = host.analyze_stack(encode(plan.resources, PREVIEW))
        assert preview.cannot_run and preview.level == ADVISORY and "value at .id" in preview.message
        assert host.analyze_stack(encode(plan.resources, UP)) == []


def test_a_pack_that_fails_to_start_is_reported_with_its_stderr(tmp_path):
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (tmp_path / "__main__.py").write_text("raise SystemExit('broken pack: no PolicyPack here')\n")
    from labctl.analyzerhost import PackStartError

    with pytest.raises(PackStartError, match="broken pack"):
        PolicyPackHost(tmp_path).start()
