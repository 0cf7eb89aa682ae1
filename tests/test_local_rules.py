"""labctl local, pure parts: the nftables translation as text, the topology of the plan, the drills' changes.

Nothing here needs root or builds anything.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from components.ocimodel import NSG_RULE, SECURITY_LIST, security_rules
from labctl import reach
from labctl.local import drills, nft, topology
from labctl.offline import Plan
from tests.conftest import ROOT, named

NAMES = topology.Names("0a1b2c")


@dataclass
class Res:
    """The least a resource needs for ``security_rules``."""

    resource_type: str
    name: str
    props: dict[str, Any]
    urn: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


def _host(rules: list, role: str = "db") -> topology.Host:
    return topology.Host(
        role=role,
        label=f"{role} host",
        ns=NAMES.ns(role),
        ifname=NAMES.host_if(role),
        router_ifname=NAMES.router_if(role),
        address="10.0.1.2",
        router_ip="10.0.1.1",
        subnet="lab-private-subnet",
        routes=(),
        rules=tuple(rules),
    )


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def _chain(text: str, name: str) -> list[str]:
    lines = _lines(text)
    start = lines.index(f"chain {name} {{")
    end = lines.index("}", start)
    return lines[start + 1 : end]


SL = Res(
    SECURITY_LIST,
    "lab-private-sl",
    {
        "ingressSecurityRules": [
            {"protocol": "6", "source": "10.0.0.0/24", "tcpOptions": {"min": 3306, "max": 3306}},
            {"protocol": "6", "source": "10.0.0.0/24", "stateless": True, "tcpOptions": {"min": 5000, "max": 5010}},
            {"protocol": "1", "source": "0.0.0.0/0", "icmpOptions": {"type": 3, "code": 4}},
            {"protocol": "1", "source": "10.0.0.0/16", "icmpOptions": {"type": 8}},
            {"protocol": "17", "source": "10.0.0.0/16", "udpOptions": {"min": 53, "max": 53}},
        ],
        "egressSecurityRules": [
            {
                "protocol": "6",
                "destination": "10.0.0.0/24",
                "stateless": True,
                "tcpOptions": {"sourcePortRange": {"min": 5000, "max": 5010}},
            }
        ],
    },
)
NSG_IN = Res(
    NSG_RULE,
    "lab-db-nsg-in",
    {
        "direction": "INGRESS",
        "protocol": "6",
        "source": "ocid1.networksecuritygroup.app",
        "sourceType": "NETWORK_SECURITY_GROUP",
        "tcpOptions": {"destinationPortRange": {"min": 33060, "max": 33060}},
    },
)


@pytest.fixture(scope="module")
def db_text() -> str:
    host = _host(security_rules(SL) + security_rules(NSG_IN))
    return nft.host_ruleset(host, NAMES.table(), {"ocid1.networksecuritygroup.app": ("10.0.0.2", "10.0.0.3")})


def test_stateful_rule_accepts_and_marks_its_connection(db_text: str):
    ingress = _chain(db_text, "ingress")
    assert 'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/24 tcp dport 3306 ct mark set 0x1 accept' in ingress
    # replies of marked connections pass in both directions; nothing else does by default
    assert "ct mark 0x1 ct state established,related accept" in ingress
    assert "ct mark 0x1 ct state established,related accept" in _chain(db_text, "egress")
    assert "type filter hook input priority filter; policy drop;" in ingress
    assert "type filter hook output priority filter; policy drop;" in _chain(db_text, "egress")


def test_stateless_rules_are_plain_matches_before_the_stateful_ones(db_text: str):
    ingress = _chain(db_text, "ingress")
    stateless = 'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/24 tcp dport 5000-5010 accept'
    assert stateless in ingress
    assert ingress.index(stateless) < ingress.index(
        'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/24 tcp dport 3306 ct mark set 0x1 accept'
    )
    # its return path is a rule of its own, on source ports
    assert 'oifname "dl0a1b2c-db" ip daddr 10.0.0.0/24 tcp sport 5000-5010 accept' in _chain(db_text, "egress")


def test_icmp_type_and_code_and_udp_ports(db_text: str):
    ingress = _chain(db_text, "ingress")
    assert 'iifname "dl0a1b2c-db" ip saddr 0.0.0.0/0 icmp type 3 icmp code 4 ct mark set 0x1 accept' in ingress
    assert 'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/16 icmp type 8 ct mark set 0x1 accept' in ingress
    assert 'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/16 udp dport 53 ct mark set 0x1 accept' in ingress
    assert "# lab-private-sl ingress #2: icmp type 3 code 4 from 0.0.0.0/0 (stateful)" in ingress


def test_nsg_rules_join_the_security_list_rules_with_the_nsg_members_as_peers(db_text: str):
    ingress = _chain(db_text, "ingress")
    assert 'iifname "dl0a1b2c-db" ip saddr { 10.0.0.2, 10.0.0.3 } tcp dport 33060 ct mark set 0x1 accept' in ingress
    assert 'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/24 tcp dport 3306 ct mark set 0x1 accept' in ingress


def test_an_nsg_without_members_and_a_service_peer_match_nothing():
    service = Res(
        SECURITY_LIST,
        "sl",
        {
            "egressSecurityRules": [
                {"protocol": "6", "destination": "all-iad-services", "destinationType": "SERVICE_CIDR_BLOCK"}
            ]
        },
    )
    text = nft.host_ruleset(_host(security_rules(service) + security_rules(NSG_IN)), NAMES.table(), {})
    assert "# skipped: NSG ocid1.networksecuritygroup.app has no VNIC in this lab" in _lines(text)
    assert "# skipped: Oracle Services Network peers are not rehearsed" in _lines(text)
    assert not [line for line in _lines(text) if "33060" in line and line.endswith("accept")]


def test_no_rules_means_every_packet_is_dropped():
    text = nft.host_ruleset(_host([]), NAMES.table(), {})
    assert "# no ingress rule: every packet is dropped" in _chain(text, "ingress")
    assert "# no egress rule: every packet is dropped" in _chain(text, "egress")


def test_all_protocols_rule_has_no_protocol_match():
    sl = Res(SECURITY_LIST, "pub", {"egressSecurityRules": [{"protocol": "all", "destination": "0.0.0.0/0"}]})
    text = nft.host_ruleset(_host(security_rules(sl), "app"), NAMES.table(), {})
    assert 'oifname "dl0a1b2c-app" ip daddr 0.0.0.0/0 ct mark set 0x1 accept' in _chain(text, "egress")


def _topo(plan: Plan, resources: list | None = None, student: str | None = None) -> topology.Topology:
    return topology.build(resources or plan.resources, "198.51.100.23/32", NAMES, "dev", student_cidr=student)


def test_topology_of_the_default_stack(plan: Plan):
    topo = _topo(plan)
    app, db, vcn = topo.host("app"), topo.host("db"), topo.host("vcn")
    assert app.address == named(plan, "lab-vm").outputs["privateIp"]
    assert app.public_ip == named(plan, "lab-vm").outputs["publicIp"]
    assert db.address == named(plan, "lab-mysql").outputs["ipAddress"]
    assert (app.router_ip, db.router_ip) == ("10.0.0.1", "10.0.1.1")
    assert [r.destination for r in app.routes] == ["10.0.0.0/16", "0.0.0.0/0"]
    assert "lab-public-rt" in app.routes[1].source
    assert [r.destination for r in db.routes] == ["10.0.0.0/16"]  # the private route table has no rule: no way out
    assert not any(vcn.address in s for s in ("10.0.0.0/24", "10.0.1.0/24"))
    assert topo.internet.admin == topo.internet.student == "198.51.100.23"
    assert topo.internet.other not in ("198.51.100.23", app.public_ip)
    assert topo.nat == ((app.public_ip, app.address),)
    assert topo.db_ports == (3306, 33060)
    names = [h.ifname for h in topo.hosts] + [h.router_ifname for h in topo.hosts] + [topo.internet.router_ifname]
    assert all(len(n) <= 15 and "0a1b2c" in n for n in names)
    assert all("0a1b2c" in ns for ns in topo.namespaces)


def test_router_ruleset_is_the_internet_gateway(plan: Plan):
    topo = _topo(plan)
    app = topo.host("app")
    text = nft.router_ruleset(topo)
    inet_if = topo.internet.router_ifname
    assert f'iifname "{inet_if}" ip daddr {app.public_ip} dnat to {app.address}' in _chain(text, "prerouting")
    assert f'oifname "{inet_if}" ip saddr {app.address} snat to {app.public_ip}' in _chain(text, "postrouting")
    forward = _chain(text, "forward")
    assert forward.index(f'iifname "{inet_if}" ct status dnat accept') < forward.index(f'iifname "{inet_if}" drop')
    assert f'oifname "{inet_if}" drop' in forward


def test_default_stack_rules_name_their_security_lists(plan: Plan):
    text = nft.render(_topo(plan))
    assert "# lab-public-sl ingress #0: tcp port 22 from 198.51.100.23/32 (stateful)" in _lines(text)
    assert 'iifname "dl0a1b2c-app" ip saddr 198.51.100.23/32 tcp dport 22 ct mark set 0x1 accept' in _lines(text)
    assert 'iifname "dl0a1b2c-db" ip saddr 10.0.0.0/24 tcp dport 33060 ct mark set 0x1 accept' in _lines(text)


def test_admin_host_of_a_range_and_bad_admin_cidr():
    assert topology.admin_host("203.0.113.7/32") == "203.0.113.7"
    assert topology.admin_host("198.51.100.0/24") == "198.51.100.23"
    assert topology.admin_host("0.0.0.0/0") == "203.0.113.7"
    with pytest.raises(topology.TopologyError, match="adminCidr"):
        topology.admin_host("not-a-cidr")


def test_an_admin_address_inside_the_vcn_is_refused(plan: Plan):
    with pytest.raises(topology.TopologyError, match="inside the VCN"):
        topology.build(plan.resources, "10.0.0.9/32", NAMES, "dev")


@pytest.mark.parametrize("name", sorted(drills.DRILLS))
def test_each_drill_breaks_what_it_says_and_the_model_sees_it(plan: Plan, name: str):
    drill = drills.get_drill(name)
    broken = drills.apply(drill, plan.resources)
    config, student = drills.config_change(drill, {"oci-dblab:adminCidr": "198.51.100.23/32"})
    by_id = {v.id: v for v in reach.verdicts(broken, config["oci-dblab:adminCidr"])}
    sl = {r.name: r for r in broken if r.resource_type == SECURITY_LIST}
    if name == "db-ingress":
        assert sl["lab-private-sl"].props["ingressSecurityRules"] == []
        assert by_id["app-subnet->db:3306"].actual == reach.DENIED
    elif name == "ssh-ingress":
        assert sl["lab-public-sl"].props["ingressSecurityRules"] == []
        assert by_id["internet->app:22"].actual == reach.DENIED
    elif name == "public-route":
        assert named(broken, "lab-public-rt").props["routeRules"] == []
        assert by_id["internet->app:22"].actual == reach.DENIED
    elif name == "db-egress-only":
        egress = sl["lab-private-sl"].props["egressSecurityRules"]
        assert [r["destination"] for r in egress] == ["10.0.0.0/24", "10.0.0.0/24"]
        assert by_id["app-subnet->db:3306"].actual == reach.DENIED
    else:
        assert (config["oci-dblab:adminCidr"], student) == (topology.DRILL_ADMIN_CIDR, "198.51.100.23/32")
    # the plan itself is never changed
    assert named(plan, "lab-private-sl").props["ingressSecurityRules"]


def test_unknown_drill_is_a_clear_error():
    with pytest.raises(drills.DrillError, match="choose one of db-ingress"):
        drills.get_drill("db-egress")


def test_labctl_local_rules_prints_the_translation_without_root():
    done = subprocess.run(
        [sys.executable, "-m", "labctl", "local", "rules", "--break", "ssh-ingress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "table inet dblab_000000 {" in done.stdout
    assert "dnat to 10.0.0.2" in done.stdout
    assert "tcp dport 22" not in done.stdout  # the drill removed the SSH rule
    assert "tcp dport 3306 ct mark set 0x1 accept" in done.stdout


@pytest.mark.parametrize(
    ("system", "euid", "missing", "words"),
    [
        ("Darwin", 0, [], "needs Linux"),
        ("Linux", 1000, [], "needs root"),
        ("Linux", 0, ["nft"], "missing nft; install them (on Debian/Ubuntu: sudo apt-get install iproute2 nftables"),
    ],
)
def test_preconditions_say_what_is_missing_and_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, system: str, euid: int, missing: list[str], words: str
):
    from labctl.local import command, netns

    monkeypatch.setattr(command.platform, "system", lambda: system)
    monkeypatch.setattr(command.os, "geteuid", lambda: euid)
    monkeypatch.setattr(netns, "tools_missing", lambda: list(missing))
    with pytest.raises(command.LocalError, match=words.replace("(", r"\(")):
        command.preconditions()


def test_a_disagreement_names_the_rule_the_model_relied_on():
    from labctl.local import netns, verdicts

    probe = netns.Probe("ns", "10.0.0.2", "10.0.1.2", 3306)
    case = verdicts.Case(
        "app-subnet->db:3306",
        "app",
        "db",
        3306,
        "ALLOWED",
        "ALLOWED",
        "lab-private-sl ingress #0: tcp port 3306 from 10.0.0.0/24 (stateful)",
        (probe,),
        verdicts.Listen("ns", "10.0.1.2", 3306),
    )
    rows = [verdicts.Row(case, "DENIED", "10.0.0.2 -> 10.0.1.2:3306 timed out (packets dropped)")]
    [message] = verdicts.disagreements(rows)
    assert "model says ALLOWED (lab-private-sl ingress #0: tcp port 3306" in message
    assert "packets say DENIED (10.0.0.2 -> 10.0.1.2:3306 timed out" in message
    assert "[DIFF] app-subnet->db:3306" in verdicts.render(rows)
