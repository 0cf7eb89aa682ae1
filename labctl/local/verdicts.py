"""Every reachability verdict of ``labctl plan``, and a few more, re-tested with real TCP connects.

For each verdict the model's answer comes from ``labctl/reach.py`` (the same functions ``labctl plan`` uses), and
the packet's answer from a TCP connect made from the source namespace and address to a listener in the destination
namespace (the real sshd/MariaDB where they listen, a plain listener elsewhere). A connect that completes is
ALLOWED; a timeout (dropped), an unreachable network (no route) or a refusal is DENIED. Model and packet must agree;
a disagreement names the model's reason, i.e. the rule or route it relied on.

Beyond ``labctl plan``'s verdicts: the DB to the internet, the other internet address to the DB's private IP, the
app VM to a DB port no rule opens, a VCN address outside the app subnet to each DB port and, in the admin-cidr
drill, the student's real address to SSH.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from components.ocimodel import ResourceLike, value
from labctl import reach
from labctl.local import netns
from labctl.local.topology import Topology

ALLOWED, DENIED = reach.ALLOWED, reach.DENIED
CLOSED_PORT_CANDIDATES = (3307, 5432, 8080)
INTERNET_PORT = 443


@dataclass(frozen=True)
class Listen:
    ns: str
    address: str
    port: int


@dataclass(frozen=True)
class Case:
    """One verdict to prove: the model's answer, and the connects that test it (ALLOWED when any connects)."""

    id: str
    source: str
    destination: str
    port: int
    expected: str
    model: str
    reason: str
    probes: tuple[netns.Probe, ...]
    listen: Listen


@dataclass(frozen=True)
class Row:
    case: Case
    packet: str
    detail: str

    @property
    def agree(self) -> bool:
        return self.packet == self.case.model


def _net(addr: str) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(f"{addr}/32")


def _egress_to_internet(net: reach._Network, ep: reach._Endpoint, client: str, port: int) -> tuple[str, str]:
    """Whether ``ep`` can open a connection to an internet address (route, public IP, then its egress rules)."""
    assert ep.subnet is not None
    routed, why = net.internet_route(ep.subnet, _net(client))
    if not routed:
        return DENIED, why
    if not ep.wants_public_ip or value(ep.subnet, "prohibitPublicIpOnVnic"):
        return DENIED, f"{ep.label} has no public IP: the internet gateway only carries VNICs with one"
    refused, rule = reach._side(net, ep, _net(client), (), port, server=False)
    if refused:
        return DENIED, refused
    return ALLOWED, f"{why}; {rule}"


def cases(resources: Sequence[ResourceLike], admin_cidr: str, topo: Topology) -> list[Case]:
    """The verdicts of ``labctl plan`` plus the lab's own, each with its probes."""
    net = reach._Network(resources)
    app_ep, db_ep = reach._app_endpoint(net), reach._db_endpoint(net)
    app, db, vcn, inet = topo.host("app"), topo.host("db"), topo.host("vcn"), topo.internet
    app_target = app.public_ip or app.address
    out: list[Case] = []
    for v in reach.verdicts(resources, admin_cidr):
        base = v.id.split(":")[0]
        if base == "internet->app":
            probes = (netns.Probe(inet.ns, inet.admin, app_target, v.port),)
            listen = Listen(app.ns, app.address, v.port)
        elif base == "internet-other->app":
            probes = (netns.Probe(inet.ns, inet.other, app_target, v.port),)
            listen = Listen(app.ns, app.address, v.port)
        elif base == "internet->db":
            probes = tuple(netns.Probe(inet.ns, a, db.address, v.port) for a in (inet.admin, inet.other))
            listen = Listen(db.ns, db.address, v.port)
        elif base == "app-subnet->db":
            probes = (netns.Probe(app.ns, app.address, db.address, v.port),)
            listen = Listen(db.ns, db.address, v.port)
        else:  # a verdict this lab does not know how to send packets for: say so rather than skip silently
            raise ValueError(f"no packet test for verdict {v.id}")
        out.append(Case(v.id, v.source, v.destination, v.port, v.expected, v.actual, v.reason, probes, listen))

    if inet.student != inet.admin:
        model, why = reach._from_internet(net, _net(inet.student), app_ep, reach.SSH_PORT)
        out.append(
            Case(
                f"student->app:{reach.SSH_PORT}",
                f"the student's real address {inet.student} (adminCidr says {admin_cidr})",
                app_ep.label,
                reach.SSH_PORT,
                ALLOWED,
                model,
                why,
                (netns.Probe(inet.ns, inet.student, app_target, reach.SSH_PORT),),
                Listen(app.ns, app.address, reach.SSH_PORT),
            )
        )
    model, why = _egress_to_internet(net, db_ep, inet.admin, INTERNET_PORT)
    out.append(
        Case(
            f"db->internet:{INTERNET_PORT}",
            f"{db_ep.label} ({db.address})",
            f"internet ({inet.admin})",
            INTERNET_PORT,
            DENIED,
            model,
            why,
            (netns.Probe(db.ns, db.address, inet.admin, INTERNET_PORT),),
            Listen(inet.ns, inet.admin, INTERNET_PORT),
        )
    )
    port = topo.db_ports[0]
    out.append(
        Case(
            f"internet-other->db-private-ip:{port}",
            f"internet, {inet.other}",
            f"{db_ep.label} private IP {db.address}",
            port,
            DENIED,
            DENIED,
            "a private IP is not routable from the internet: the internet gateway only translates public IPs",
            (netns.Probe(inet.ns, inet.other, db.address, port),),
            Listen(db.ns, db.address, port),
        )
    )
    closed = next(p for p in CLOSED_PORT_CANDIDATES if p not in topo.db_ports)
    model, why = reach._inside_vcn(net, app_ep, db_ep, closed)
    out.append(
        Case(
            f"app->db-closed-port:{closed}",
            f"{app_ep.label} ({app.address})",
            f"{db_ep.label} ({db.address})",
            closed,
            DENIED,
            model,
            why,
            (netns.Probe(app.ns, app.address, db.address, closed),),
            Listen(db.ns, db.address, closed),
        )
    )
    for port in topo.db_ports:
        refused, rule = reach._side(net, db_ep, _net(vcn.address), (), port, server=True)
        model, why = (DENIED, refused) if refused else (ALLOWED, f"VCN local routing; {rule}")
        out.append(
            Case(
                f"vcn-other->db:{port}",
                vcn.label,
                f"{db_ep.label} ({db.address})",
                port,
                DENIED,
                model,
                why,
                (netns.Probe(vcn.ns, vcn.address, db.address, port),),
                Listen(db.ns, db.address, port),
            )
        )
    return out


def prove(all_cases: Sequence[Case], timeout: float = 1.0) -> list[Row]:
    """Open the listeners, make every connect at once, and compare with the model."""
    with netns.Listeners() as listeners:
        for key in dict.fromkeys(c.listen for c in all_cases):
            listeners.add(key.ns, key.address, key.port)
        flat = [p for c in all_cases for p in c.probes]
        results = netns.probe_all(flat, timeout)
    by_probe = dict(zip(flat, results, strict=True))
    rows = []
    for c in all_cases:
        got = [by_probe[p] for p in c.probes]
        ok = [r for r in got if r.connected]
        packet = ALLOWED if ok else DENIED
        detail = "; ".join(f"{r.probe.source} -> {r.probe.address}:{r.probe.port} {r.detail}" for r in got)
        rows.append(Row(c, packet, detail))
    return rows


def render(rows: Sequence[Row]) -> str:
    out = ["Verdicts, model vs packets"]
    for r in rows:
        mark = "ok  " if r.agree else "DIFF"
        want = "" if r.case.model == r.case.expected else f"  (intended {r.case.expected})"
        out.append(f"  [{mark}] {r.case.id:<34} model {r.case.model:<8} packet {r.packet:<8}{want}  {r.case.reason}")
    return "\n".join(out)


def disagreements(rows: Sequence[Row]) -> list[str]:
    """One message per verdict where packets and the model differ, naming the rule or route the model relied on."""
    return [
        f"{r.case.id}: the model says {r.case.model} ({r.case.reason}) but packets say {r.packet} ({r.detail})"
        for r in rows
        if not r.agree
    ]
