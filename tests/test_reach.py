"""labctl/reach.py: reachability verdicts from the declared network, on the real program's offline plan."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import mutated, named, plan_of

from components.ocimodel import NSG_RULE
from labctl.offline import PlannedResource
from labctl.reach import ALLOWED, DENIED, Verdict, failing, verdicts
from policy.rules import evaluate

ADMIN = "198.51.100.23/32"
IDS = [
    "internet->app:22",
    "internet-other->app:22",
    "internet->db:3306",
    "internet->db:33060",
    "app-subnet->db:3306",
    "app-subnet->db:33060",
]
Resources = list[PlannedResource]


def by_id(results: list[Verdict]) -> dict[str, Verdict]:
    return {v.id: v for v in results}


def add_nsg_rule(rs: Resources, nsg_id: str, direction: str, peer: str, port: int, peer_type: str = "CIDR_BLOCK"):
    key, type_key = ("source", "sourceType") if direction == "INGRESS" else ("destination", "destinationType")
    props = {
        "networkSecurityGroupId": nsg_id,
        "direction": direction,
        "protocol": "6",
        key: peer,
        type_key: peer_type,
        "tcpOptions": {"destinationPortRange": {"min": port, "max": port}},
    }
    rs.append(
        PlannedResource(
            urn=f"urn:pulumi:dev::oci-dblab::{NSG_RULE}::rule-{len(rs)}",
            resource_type=NSG_RULE,
            name=f"rule-{len(rs)}",
            parent=None,
            custom=True,
            props=props,
            outputs=dict(props),
            dependencies=[],
            property_dependencies={},
            id=f"ocid1.nsgrule.{len(rs)}",
        )
    )


# --- the default lab ----------------------------------------------------------------------------------------------


def test_default_lab_verdicts_all_hold(plan):
    results = verdicts(plan.resources, ADMIN)
    assert [v.id for v in results] == IDS
    assert failing(results) == []
    got = by_id(results)
    assert {k: v.actual for k, v in got.items()} == {
        "internet->app:22": ALLOWED,
        "internet-other->app:22": DENIED,
        "internet->db:3306": DENIED,
        "internet->db:33060": DENIED,
        "app-subnet->db:3306": ALLOWED,
        "app-subnet->db:33060": ALLOWED,
    }
    assert "lab-igw" in got["internet->app:22"].reason and "198.51.100.23/32" in got["internet->app:22"].reason
    assert "prohibits public IPs" in got["internet->db:3306"].reason
    assert "lab-private-sl ingress #0" in got["app-subnet->db:3306"].reason
    assert got["app-subnet->db:3306"].source == "app VM lab-vm (10.0.0.2)"
    assert got["app-subnet->db:3306"].destination == "database lab-mysql (10.0.1.2)"


def test_verdicts_are_deterministic(plan):
    assert verdicts(plan.resources, ADMIN) == verdicts(list(reversed(plan.resources)), ADMIN)


def test_bad_admin_cidr_is_refused(plan):
    with pytest.raises(ValueError, match="not a CIDR block"):
        verdicts(plan.resources, "my laptop")


# --- config mutations ---------------------------------------------------------------------------------------------


def test_ssh_from_anywhere_fails_the_verdict_and_fires_the_rule():
    p = plan_of(adminCidr="0.0.0.0/0")
    bad = failing(verdicts(p.resources, "0.0.0.0/0"))
    assert [(v.id, v.actual) for v in bad] == [("internet-other->app:22", ALLOWED)]
    assert "adminCidr 0.0.0.0/0 lets every internet address in" in bad[0].reason
    assert [f.rule for f in evaluate(p.resources)] == ["security-list-no-admin-ports-from-internet"]


def test_wider_admin_cidr_picks_an_outside_address_for_the_negative_check():
    p = plan_of(adminCidr="198.51.100.0/24")
    results = by_id(verdicts(p.resources, "198.51.100.0/24"))
    assert failing(list(results.values())) == []
    assert results["internet-other->app:22"].source == "internet, 203.0.113.200 (not adminCidr)"


def test_custom_cidrs():
    p = plan_of(vcnCidr="172.20.0.0/20", publicSubnetCidr="172.20.4.0/24", privateSubnetCidr="172.20.8.0/25")
    assert failing(verdicts(p.resources, ADMIN)) == []


def test_admin_cidr_in_config_and_in_verdicts_must_agree():
    # The list allows 198.51.100.23/32 only; asking for a whole /24 from it is (rightly) refused.
    p = plan_of()
    v = by_id(verdicts(p.resources, "198.51.100.0/24"))["internet->app:22"]
    assert (v.actual, v.ok) == (DENIED, False)


# --- resource mutations: each caught by the verdict meant for it --------------------------------------------------


def _no_public_route(rs: Resources) -> None:
    named(rs, "lab-public-rt").props["routeRules"] = []


def _route_to_nowhere(rs: Resources) -> None:
    named(rs, "lab-public-rt").props["routeRules"][0]["networkEntityId"] = "ocid1.natgateway.elsewhere"


def _narrow_route(rs: Resources) -> None:
    named(rs, "lab-public-rt").props["routeRules"][0]["destination"] = "192.0.2.0/24"


def _igw_disabled(rs: Resources) -> None:
    named(rs, "lab-igw").props["enabled"] = False


def _db_in_public_subnet(rs: Resources) -> None:
    named(rs, "lab-mysql").props["subnetId"] = named(rs, "lab-public-subnet").id


def _stateless_db_rules(rs: Resources) -> None:
    for rule in named(rs, "lab-private-sl").props["ingressSecurityRules"]:
        rule["stateless"] = True


def _stateless_ssh_rule(rs: Resources) -> None:
    # Stateless SSH in; out only the VCN (stateful) and web ports: nothing carries the reply to the client's port.
    sl = named(rs, "lab-public-sl").props
    sl["ingressSecurityRules"][0]["stateless"] = True
    sl["egressSecurityRules"] = [
        {"protocol": "all", "destination": "10.0.0.0/16", "stateless": False},
        {"protocol": "6", "destination": "0.0.0.0/0", "stateless": True, "tcpOptions": {"min": 80, "max": 443}},
    ]


def _stateless_app_egress(rs: Resources) -> None:
    named(rs, "lab-public-sl").props["egressSecurityRules"][0]["stateless"] = True


def _no_app_egress(rs: Resources) -> None:
    named(rs, "lab-public-sl").props["egressSecurityRules"] = []


def _no_public_ip(rs: Resources) -> None:
    named(rs, "lab-vm").props["createVnicDetails"]["assignPublicIp"] = "false"


def _public_subnet_prohibits_public_ips(rs: Resources) -> None:
    named(rs, "lab-public-subnet").props["prohibitPublicIpOnVnic"] = True


def _ssh_from_anywhere(rs: Resources) -> None:
    named(rs, "lab-public-sl").props["ingressSecurityRules"][0]["source"] = "0.0.0.0/0"


def _public_subnet_on_default_list(rs: Resources) -> None:
    del named(rs, "lab-public-subnet").props["securityListIds"]


def _public_subnet_on_unmanaged_default_list(rs: Resources) -> None:
    _public_subnet_on_default_list(rs)
    rs.remove(named(rs, "lab-default-sl"))


def _nsg_ssh_from_anywhere(rs: Resources) -> None:
    named(rs, "lab-vm").props["createVnicDetails"]["nsgIds"] = ["ocid1.nsg.app"]
    add_nsg_rule(rs, "ocid1.nsg.app", "INGRESS", "0.0.0.0/0", 22)


def _no_instance(rs: Resources) -> None:
    rs.remove(named(rs, "lab-vm"))


def _no_db(rs: Resources) -> None:
    rs.remove(named(rs, "lab-mysql"))


def _db_subnet_missing(rs: Resources) -> None:
    rs.remove(named(rs, "lab-private-subnet"))


# name, change, {verdict id: expected actual} for every verdict that must now fail, a word the reason must contain
MUTATIONS: list[tuple[str, Callable[[Resources], None], dict[str, str], str]] = [
    ("public-route-table-without-igw-route", _no_public_route, {"internet->app:22": DENIED}, "no route covering"),
    ("route-to-a-non-igw", _route_to_nowhere, {"internet->app:22": DENIED}, "not an internet gateway"),
    ("route-not-covering-admin", _narrow_route, {"internet->app:22": DENIED}, "no route covering"),
    ("igw-disabled", _igw_disabled, {"internet->app:22": DENIED}, "disabled"),
    ("vm-without-public-ip", _no_public_ip, {"internet->app:22": DENIED}, "assignPublicIp false"),
    (
        "public-subnet-prohibits-public-ips",
        _public_subnet_prohibits_public_ips,
        {"internet->app:22": DENIED},
        "prohibits public IPs",
    ),
    ("ssh-from-anywhere", _ssh_from_anywhere, {"internet-other->app:22": ALLOWED}, "0.0.0.0/0"),
    ("nsg-ssh-from-anywhere", _nsg_ssh_from_anywhere, {"internet-other->app:22": ALLOWED}, "rule-"),
    (
        "db-in-public-subnet",
        _db_in_public_subnet,
        {"app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "no ingress rule",
    ),
    (
        "stateless-db-rule-without-return-path",
        _stateless_db_rules,
        {"app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "no return path",
    ),
    (
        "stateless-ssh-rule-without-reply-to-client-ports",
        _stateless_ssh_rule,
        {"internet->app:22": DENIED},
        "no return path",
    ),
    (
        "stateless-app-egress-without-return-path",
        _stateless_app_egress,
        {"app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "no return path",
    ),
    (
        "app-without-egress",
        _no_app_egress,
        {"app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "no egress rule",
    ),
    (
        "public-subnet-on-empty-default-list",
        _public_subnet_on_default_list,
        {"internet->app:22": DENIED, "app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "security lists/NSGs",
    ),
    (
        "public-subnet-on-oci-default-list",
        _public_subnet_on_unmanaged_default_list,
        {"internet-other->app:22": ALLOWED},
        "OCI default security list",
    ),
    ("no-instance", _no_instance, {"internet->app:22": DENIED}, "no compute instance"),
    (
        "no-db-system",
        _no_db,
        {"app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "no database is declared",
    ),
    (
        "db-subnet-not-declared",
        _db_subnet_missing,
        {"app-subnet->db:3306": DENIED, "app-subnet->db:33060": DENIED},
        "not declared",
    ),
]


@pytest.mark.parametrize(("change", "broken", "why"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_fails_its_verdict(plan, change, broken, why):
    results = verdicts(mutated(plan, change), ADMIN)
    assert [v.id for v in results] == IDS  # every verdict is still reported, with a reason
    bad = failing(results)
    assert {v.id: v.actual for v in bad} == broken
    assert all(why in v.reason for v in bad), [v.reason for v in bad]
    assert all(v.reason for v in results)


def test_stateless_rules_with_return_paths_are_allowed(plan):
    def stateless_both_ways(rs: Resources) -> None:
        _stateless_db_rules(rs)
        named(rs, "lab-private-sl").props["egressSecurityRules"] = [
            {
                "protocol": "6",
                "destination": "10.0.0.0/24",
                "stateless": True,
                "tcpOptions": {"min": 1024, "max": 65535, "sourcePortRange": {"min": 3306, "max": 33060}},
            }
        ]

    assert failing(verdicts(mutated(plan, stateless_both_ways), ADMIN)) == []


def test_return_rule_must_cover_client_ports(plan):
    def narrow_return(rs: Resources) -> None:
        _stateless_db_rules(rs)
        named(rs, "lab-private-sl").props["egressSecurityRules"] = [
            {"protocol": "6", "destination": "10.0.0.0/24", "stateless": True, "tcpOptions": {"min": 22, "max": 22}}
        ]

    assert {v.id for v in failing(verdicts(mutated(plan, narrow_return), ADMIN))} == {
        "app-subnet->db:3306",
        "app-subnet->db:33060",
    }


def test_db_reached_through_nsgs_only(plan):
    def nsgs(rs: Resources) -> None:
        named(rs, "lab-private-sl").props["ingressSecurityRules"] = []
        named(rs, "lab-vm").props["createVnicDetails"]["nsgIds"] = ["ocid1.nsg.app"]
        named(rs, "lab-mysql").props["nsgIds"] = ["ocid1.nsg.db"]
        for port in (3306, 33060):
            add_nsg_rule(rs, "ocid1.nsg.db", "INGRESS", "ocid1.nsg.app", port, peer_type="NETWORK_SECURITY_GROUP")

    resources = mutated(plan, nsgs)
    assert failing(verdicts(resources, ADMIN)) == []
    assert evaluate(resources) == []


def test_db_port_open_to_the_internet_is_still_denied_but_the_rule_fires(plan):
    # The DB system has only a private endpoint in a subnet without public IPs: the verdict holds, and the
    # policy rule is what catches the over-wide security list.
    def open_db(rs: Resources) -> None:
        for rule in named(rs, "lab-private-sl").props["ingressSecurityRules"]:
            rule["source"] = "0.0.0.0/0"

    resources = mutated(plan, open_db)
    assert failing(verdicts(resources, ADMIN)) == []
    assert {f.rule for f in evaluate(resources)} == {"db-port-only-from-app-subnet"}


def test_without_an_instance_the_app_subnet_is_used_as_source(plan):
    results = by_id(verdicts(mutated(plan, _no_instance), ADMIN))
    assert results["app-subnet->db:3306"].ok
    assert results["app-subnet->db:3306"].source == "app subnet lab-public-subnet (10.0.0.0/24)"
