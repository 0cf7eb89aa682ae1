"""The real __main__.py, run offline under the OCI mocks: what it declares, and how."""

from __future__ import annotations

import pytest
from conftest import named, plan_of

from labctl.offline import Plan, PlannedResource

VCN = "oci:Core/vcn:Vcn"
SL = "oci:Core/securityList:SecurityList"
DEFAULT_SL = "oci:Core/defaultSecurityList:DefaultSecurityList"
SUBNET = "oci:Core/subnet:Subnet"
RT = "oci:Core/routeTable:RouteTable"
IGW = "oci:Core/internetGateway:InternetGateway"
INSTANCE = "oci:Core/instance:Instance"
DBSYS = "oci:Mysql/mysqlDbSystem:MysqlDbSystem"
PASSWORD = "random:index/randomPassword:RandomPassword"
ENVFILE = "pulumi-python:dynamic/dblab:EnvFile"
NETWORK, APP, DB = "oci-dblab:network:Network", "oci-dblab:compute:AppServer", "oci-dblab:database:Database"
OPS, TOPIC, ALARM = (
    "oci-dblab:operations:Operations",
    "oci:Ons/notificationTopic:NotificationTopic",
    "oci:Monitoring/alarm:Alarm",
)

EXPECTED = {
    (NETWORK, "lab"): None,
    (APP, "lab"): None,
    (DB, "lab"): None,
    (VCN, "lab-vcn"): NETWORK,
    (DEFAULT_SL, "lab-default-sl"): NETWORK,
    (IGW, "lab-igw"): NETWORK,
    (RT, "lab-public-rt"): NETWORK,
    (RT, "lab-private-rt"): NETWORK,
    (SL, "lab-public-sl"): NETWORK,
    (SL, "lab-private-sl"): NETWORK,
    (SUBNET, "lab-public-subnet"): NETWORK,
    (SUBNET, "lab-private-subnet"): NETWORK,
    (INSTANCE, "lab-vm"): APP,
    (PASSWORD, "lab-admin-password"): DB,
    (PASSWORD, "lab-app-password"): DB,
    (DBSYS, "lab-mysql"): DB,
    (ENVFILE, "lab-env"): None,
    (OPS, "lab-ops"): None,
    (TOPIC, "lab-ops-topic"): OPS,
    **{
        (ALARM, f"lab-ops-{k}"): OPS
        for k in ("db-cpu", "db-memory", "db-storage", "db-backup-failure", "vm-cpu", "vm-memory", "vm-down")
    },
}


def parent_type(r: PlannedResource) -> str | None:
    if r.parent is None or r.parent.endswith("::oci-dblab-dev") or "pulumi:pulumi:Stack::" in r.parent:
        return None
    return r.parent.split("::")[2].split("$")[-1]


def test_declares_exactly_the_lab_and_nothing_else(plan):
    got = {(r.resource_type, r.name): parent_type(r) for r in plan.resources}
    assert got == EXPECTED


def test_components_are_children_of_the_stack(plan):
    for r in plan.resources:
        if not r.custom:
            assert r.parent is not None and r.parent.split("::")[2] == "pulumi:pulumi:Stack"


def ingress(r: PlannedResource) -> list[tuple[str, str, int, int, bool]]:
    return [
        (x["protocol"], x["source"], x["tcpOptions"]["min"], x["tcpOptions"]["max"], x.get("stateless", False))
        for x in r.props.get("ingressSecurityRules", [])
    ]


def test_public_security_list_allows_only_ssh_from_admin_cidr(plan):
    assert ingress(named(plan, "lab-public-sl")) == [("6", "198.51.100.23/32", 22, 22, False)]


def test_private_security_list_allows_only_db_ports_from_the_app_subnet(plan):
    assert ingress(named(plan, "lab-private-sl")) == [
        ("6", "10.0.0.0/24", 3306, 3306, False),
        ("6", "10.0.0.0/24", 33060, 33060, False),
    ]
    assert named(plan, "lab-private-sl").props.get("egressSecurityRules", []) == []


def test_default_security_list_is_managed_and_empty(plan):
    dsl = named(plan, "lab-default-sl")
    vcn = named(plan, "lab-vcn")
    assert dsl.props["manageDefaultResourceId"] == vcn.outputs["defaultSecurityListId"]
    assert dsl.props.get("ingressSecurityRules", []) == []


def test_routes_public_to_internet_private_nowhere(plan):
    igw = named(plan, "lab-igw")
    public_rt, private_rt = named(plan, "lab-public-rt"), named(plan, "lab-private-rt")
    assert [(r["destination"], r["networkEntityId"]) for r in public_rt.props["routeRules"]] == [("0.0.0.0/0", igw.id)]
    assert private_rt.props.get("routeRules", []) == []
    assert igw.props["enabled"] is True


def test_subnets(plan):
    vcn = named(plan, "lab-vcn")
    pub, priv = named(plan, "lab-public-subnet"), named(plan, "lab-private-subnet")
    assert vcn.props["cidrBlocks"] == ["10.0.0.0/16"] and vcn.props["dnsLabel"] == "labvcn"
    assert (pub.props["cidrBlock"], priv.props["cidrBlock"]) == ("10.0.0.0/24", "10.0.1.0/24")
    assert pub.props["routeTableId"] == named(plan, "lab-public-rt").id
    assert priv.props["routeTableId"] == named(plan, "lab-private-rt").id
    assert pub.props["securityListIds"] == [named(plan, "lab-public-sl").id]
    assert priv.props["securityListIds"] == [named(plan, "lab-private-sl").id]
    assert priv.props["prohibitPublicIpOnVnic"] is True and pub.props["prohibitPublicIpOnVnic"] is False


def test_app_vm(plan):
    vm = named(plan, "lab-vm")
    assert vm.props["shape"] == "VM.Standard.E2.1.Micro" and "shapeConfig" not in vm.props
    assert vm.props["createVnicDetails"]["subnetId"] == named(plan, "lab-public-subnet").id
    assert vm.props["createVnicDetails"]["assignPublicIp"] == "true"
    assert vm.props["instanceOptions"]["areLegacyImdsEndpointsDisabled"] is True
    assert vm.props["availabilityDomain"] == "Mock:MOCK-1-AD-1"
    assert vm.props["sourceDetails"]["sourceId"].startswith("ocid1.image.")
    meta = vm.props["metadata"]
    assert meta["ssh_authorized_keys"].startswith("ssh-ed25519 ")
    import base64

    cloud_init = base64.b64decode(meta["user_data"]).decode()
    assert cloud_init.startswith("#cloud-config") and "- mysql" in cloud_init and "/home/opc/app" in cloud_init


def test_database_sits_in_the_private_subnet_without_public_ip(plan):
    db = named(plan, "lab-mysql")
    assert db.props["subnetId"] == named(plan, "lab-private-subnet").id
    assert "isPublic" not in db.props and "publicIp" not in db.outputs
    assert (db.props["shapeName"], db.props["dataStorageSizeInGb"]) == ("MySQL.Free", 50)
    assert (db.props["port"], db.props["portX"], db.props["hostnameLabel"]) == (3306, 33060, "mysql")
    # MySQL.Free: no backup or deletion policy is sent (tests/test_oci_rules.py)
    assert "backupPolicy" not in db.props and "deletionPolicies" not in db.props
    assert db.props["adminUsername"] == "admin"


def test_admin_password_change_never_replaces_the_db_system(plan):
    assert "adminPassword" in named(plan, "lab-mysql").ignore_changes


def test_admin_password_is_secret_everywhere(plan):
    db = named(plan, "lab-mysql")
    assert "adminPassword" in db.secret_paths
    assert "adminPassword" in db.additional_secret_outputs
    assert plan.secret_outputs == {"dbAdminPassword"}
    generated = named(plan, "lab-admin-password")
    assert "result" in generated.additional_secret_outputs
    assert generated.props["length"] >= 8 and generated.props["minSpecial"] >= 1
    assert plan.outputs["dbAdminPassword"] == generated.outputs["result"]


def closure(plan: Plan, r: PlannedResource) -> set[str]:
    """URNs r waits for: its dependencies, recursively, and the children of components among them."""
    seen: set[str] = set()
    todo = list(r.dependencies) + [u for us in r.property_dependencies.values() for u in us]
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        dep = plan.by_urn(urn)
        todo += dep.dependencies + [u for us in dep.property_dependencies.values() for u in us]
        todo += [c.urn for c in plan.resources if c.parent == urn]
    return seen


def test_app_and_database_do_not_wait_for_each_other(plan):
    vm, db = named(plan, "lab-vm"), named(plan, "lab-mysql")
    app_side = {vm.urn} | {c.urn for c in plan.resources if c.resource_type == APP}
    db_side = {db.urn, named(plan, "lab-admin-password").urn, named(plan, "lab-app-password").urn} | {
        c.urn for c in plan.resources if c.resource_type == DB
    }
    assert not closure(plan, vm) & db_side
    assert not closure(plan, db) & app_side
    assert named(plan, "lab-private-subnet").urn in closure(plan, db)
    assert named(plan, "lab-public-subnet").urn in closure(plan, vm)


def test_tags_on_every_oci_resource(plan):  # (EnvFile and RandomPassword are not OCI resources)
    for r in plan.resources:
        if r.resource_type.startswith("oci:"):
            assert r.props["freeformTags"] == {"project": "oci-dblab", "stack": "dev", "student": "a23-042"}, r.name


def test_display_names_carry_the_student(plan):
    for r in plan.resources:
        if r.resource_type.startswith("oci:"):
            # a Notifications topic has a (tenancy-unique) name instead of a display name
            shown = r.props["name"] if r.resource_type == TOPIC else r.props["displayName"]
            assert shown.startswith("dblab-a23-042-"), r.name


def test_exports(plan):
    out = plan.outputs
    assert set(out) == {
        "appPublicIp",
        "appPrivateIp",
        "dbPrivateIp",
        "dbPort",
        "dbHostname",
        "dbAdminUser",
        "dbName",
        "dbAdminPassword",
        "sshCommand",
        "vcnId",
        "envFile",
        "connectionCheck",
        "alarmTopicId",
    }
    assert out["alarmTopicId"] == named(plan, "lab-ops-topic").id
    assert out["dbPrivateIp"].startswith("10.0.1.") and out["appPrivateIp"].startswith("10.0.0.")
    assert out["dbHostname"] == "mysql.priv.labvcn.oraclevcn.com"
    assert (out["dbPort"], out["dbAdminUser"], out["dbName"]) == (3306, "admin", "lab")
    assert out["sshCommand"] == f"ssh -i ~/.ssh/id_ed25519 opc@{out['appPublicIp']}"
    assert out["vcnId"] == named(plan, "lab-vcn").id


def test_envfile_gets_the_tiers_outputs_and_secret_passwords(plan):
    env = named(plan, "lab-env")
    vm, db = named(plan, "lab-vm"), named(plan, "lab-mysql")
    p = env.props
    assert (p["appHost"], p["sshUser"]) == (vm.outputs["publicIp"], "opc")
    assert (p["dbHost"], p["dbPort"]) == (db.outputs["ipAddress"], 3306)
    assert p["dbHostname"] == "mysql.priv.labvcn.oraclevcn.com"
    assert (p["dbName"], p["adminUser"], p["appUser"]) == ("lab", "admin", "lab_app")
    assert p["adminPassword"] == named(plan, "lab-admin-password").outputs["result"]
    assert p["appPassword"] == named(plan, "lab-app-password").outputs["result"]
    assert p["adminPassword"] != p["appPassword"]
    assert {"adminPassword", "appPassword", "__provider"} <= env.secret_paths
    assert {"adminPassword", "appPassword"} <= set(env.additional_secret_outputs)
    assert (p["localPath"], p["remoteDir"], p["checkTimeoutSeconds"]) == (".env", "/home/opc/app", 600)
    assert p["providerVersion"]
    # it waits for both tiers (through their outputs), and nothing waits for it
    assert vm.urn in closure(plan, env) and db.urn in closure(plan, env)
    assert not any(env.urn in closure(plan, r) for r in plan.resources if r.urn != env.urn)
    assert plan.outputs["envFile"]["local"] == ".env"


def test_connection_check_can_be_turned_off():
    p = plan_of(connectionCheck="false")
    assert not p.by_type(ENVFILE) and len(p.by_type(PASSWORD)) == 2
    assert p.outputs["connectionCheck"] == {"ok": None, "skipped": True}
    assert any("connectionCheck is false" in w for w in p.warnings)


def test_given_password_is_used_as_secret_and_nothing_is_generated():
    p = plan_of(secret=("dbPassword",), dbPassword="Str0ng#Passw0rd")
    assert [r.name for r in p.by_type(PASSWORD)] == ["lab-app-password"]
    db = named(p, "lab-mysql")
    assert db.props["adminPassword"] == "Str0ng#Passw0rd" and "adminPassword" in db.secret_paths
    assert "dbAdminPassword" in p.secret_outputs


def test_flex_shape_and_given_image():
    image = "ocid1.image.oc1.phx.aaaaaaaa5u6v7w8x9y2z3a4b5c6d7e8f9g2h3i4j5k6m7n8p9q2r3s4t"
    p = plan_of(appShape="VM.Standard.A1.Flex", appOcpus="2", appMemoryGbs="12", appImageId=image)
    vm = named(p, "lab-vm")
    assert vm.props["shapeConfig"] == {"ocpus": 2.0, "memoryInGbs": 12.0}
    assert vm.props["sourceDetails"]["sourceId"] == image


def test_custom_cidrs_flow_into_rules():
    p = plan_of(vcnCidr="172.20.0.0/20", publicSubnetCidr="172.20.4.0/24", privateSubnetCidr="172.20.8.0/25")
    assert {x[1] for x in ingress(named(p, "lab-private-sl"))} == {"172.20.4.0/24"}


@pytest.mark.parametrize("stack", ["dev", "student-a23-042"])
def test_plans_are_deterministic(stack):
    a, b = plan_of(stack=stack), plan_of(stack=stack)
    assert [(r.urn, r.id, r.props) for r in a.resources] == [(r.urn, r.id, r.props) for r in b.resources]
