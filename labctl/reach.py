"""Reachability verdicts: who can open a TCP connection to the app VM and the database, from the declared network.

Pure: reads the resources of one plan (``PlannedResource`` offline, or anything with ``resource_type``, ``name``,
``urn``, ``props``) and never talks to OCI. The model follows OCI's documented behaviour:

- a packet is allowed into or out of a VNIC when any security list of its subnet, or any NSG of the VNIC, has a
  matching rule (rules only allow; there are no deny rules). A subnet without ``securityListIds`` uses the VCN's
  default security list: as declared by ``DefaultSecurityList``, or OCI's own defaults (SSH from 0.0.0.0/0) when the
  program leaves it alone;
- a rule matches on protocol (``"6"`` TCP or ``"all"``), peer (CIDR containing the whole peer address range, or the
  peer's NSG) and ports (no ``tcpOptions``: every port);
- stateful rules track the connection, so replies pass. When a stateless rule matches, the reply needs its own rule
  (an egress rule on the server side, an ingress rule on the client side) covering the client's ephemeral ports.
  If stateful and stateless rules both match, this model treats the traffic as stateless (the stricter reading);
- from the internet, the destination needs a public IP (subnet without ``prohibitPublicIpOnVnic`` or
  ``prohibitInternetIngress``, and a VNIC that asks for one: ``assignPublicIp``; a MySQL DB system has only a private
  endpoint), and its subnet's route table needs a route covering the client's address to an enabled internet gateway
  of the same VCN (the replies leave through it). Inside one VCN, subnets reach each other through local routing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import engines
from components.ocimodel import (
    DEFAULT_ROUTE_TABLE,
    DEFAULT_SECURITY_LIST,
    INTERNET_GATEWAY,
    NSG_RULE,
    ROUTE_TABLE,
    SECURITY_LIST,
    SUBNET,
    TCP,
    VCN,
    PortRange,
    ResourceLike,
    SecurityRule,
    by_id,
    get,
    items,
    network,
    of_type,
    output,
    security_rules,
    truthy,
    value,
)
from policy.rules import ADMIN_SOURCE_MIN_PREFIX, app_instances, db_endpoints, judge_admin_source

ALLOWED = "ALLOWED"
DENIED = "DENIED"
SSH_PORT = 22
# Ports judged when no database is declared: the default engine's.
DEFAULT_DB_PORTS = (engines.get(engines.DEFAULT).port, *engines.get(engines.DEFAULT).extra_ports)
# Client source ports: Linux's default ip_local_port_range. A stateless return rule must cover them.
EPHEMERAL: PortRange = (32768, 60999)
# Internet addresses (documentation ranges, RFC 5737) used as "someone who is not the admin".
OTHER_INTERNET_HOSTS = ("198.51.100.200", "203.0.113.200", "192.0.2.200")
ANYWHERE = "0.0.0.0/0"

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Verdict:
    """Whether ``source`` can open a TCP connection to ``destination`` on ``port``, and whether that is intended."""

    id: str
    source: str
    destination: str
    port: int
    expected: str  # ALLOWED | DENIED
    actual: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class _Endpoint:
    label: str
    subnet: ResourceLike | None
    address: Net | None
    nsg_ids: tuple[str, ...] = ()
    wants_public_ip: bool = False
    public_ip_note: str = ""
    missing: str = ""  # why the endpoint could not be built


@dataclass(frozen=True)
class _Packet:
    """A TCP packet seen at a VNIC: ``peer`` is the other end, ``src``/``dst`` its port ranges."""

    peer: Net
    peer_nsgs: tuple[str, ...]
    src: PortRange
    dst: PortRange


def _covers(rule_range: PortRange | None, packet: PortRange) -> bool:
    return rule_range is None or (rule_range[0] <= packet[0] and packet[1] <= rule_range[1])


def _matches(rule: SecurityRule, direction: str, pkt: _Packet) -> bool:
    if rule.direction != direction or rule.protocol not in (TCP, "all"):
        return False
    if rule.peer_type == "NETWORK_SECURITY_GROUP":
        peer_ok = rule.peer in pkt.peer_nsgs
    else:
        net = rule.peer_network
        peer_ok = net is not None and net.version == pkt.peer.version and pkt.peer.subnet_of(net)  # type: ignore[arg-type]
    return peer_ok and _covers(rule.dst_ports, pkt.dst) and _covers(rule.src_ports, pkt.src)


@dataclass
class _Network:
    """Index of the declared network resources, and the security rules that apply to a VNIC."""

    resources: Sequence[ResourceLike]
    ids: dict[str, ResourceLike] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = by_id(self.resources)

    def _managed_default(self, rtype: str, default_id: Any) -> ResourceLike | None:
        for r in of_type(self.resources, rtype):
            if default_id is not None and get(r.props, "manageDefaultResourceId") == default_id:
                return r
        return None

    def vcn_of(self, subnet: ResourceLike) -> ResourceLike | None:
        vcn = self.ids.get(value(subnet, "vcnId") or "")
        return vcn if vcn is not None and vcn.resource_type == VCN else None

    def subnet_rules(self, subnet: ResourceLike) -> tuple[list[SecurityRule], list[str]]:
        """Rules of the security lists attached to ``subnet``, and notes on lists that could not be resolved."""
        rules: list[SecurityRule] = []
        notes: list[str] = []
        sl_ids = [x for x in items(value(subnet, "securityListIds")) if isinstance(x, str)]
        if not sl_ids:
            vcn = self.vcn_of(subnet)
            default_id = output(vcn, "defaultSecurityListId") if vcn is not None else None
            managed = self._managed_default(DEFAULT_SECURITY_LIST, default_id)
            if managed is not None:
                return security_rules(managed), notes
            notes.append(f"{subnet.name} has no securityListIds and uses OCI's unmanaged default security list")
            return _oci_default_security_list(subnet.name), notes
        for sl_id in sl_ids:
            sl = self.ids.get(sl_id)
            if sl is not None and sl.resource_type == SECURITY_LIST:
                rules += security_rules(sl)
                continue
            managed = self._managed_default(DEFAULT_SECURITY_LIST, sl_id)
            if managed is not None:
                rules += security_rules(managed)
            else:
                notes.append(f"security list {sl_id} of {subnet.name} is not declared in this stack; ignored")
        return rules, notes

    def nsg_rules(self, nsg_ids: Sequence[str]) -> list[SecurityRule]:
        return [
            sr
            for r in of_type(self.resources, NSG_RULE)
            if value(r, "networkSecurityGroupId") in nsg_ids
            for sr in security_rules(r)
        ]

    def vnic_rules(self, ep: _Endpoint) -> tuple[list[SecurityRule], list[str]]:
        assert ep.subnet is not None
        rules, notes = self.subnet_rules(ep.subnet)
        return rules + self.nsg_rules(ep.nsg_ids), notes

    def route_table(self, subnet: ResourceLike) -> tuple[ResourceLike | None, str]:
        rt_id = value(subnet, "routeTableId")
        if rt_id is None:
            vcn = self.vcn_of(subnet)
            default_id = output(vcn, "defaultRouteTableId") if vcn is not None else None
            managed = self._managed_default(DEFAULT_ROUTE_TABLE, default_id)
            if managed is None:
                return None, f"{subnet.name} uses the VCN's default route table, which has no rules"
            return managed, ""
        rt = self.ids.get(rt_id)
        if rt is not None and rt.resource_type == ROUTE_TABLE:
            return rt, ""
        managed = self._managed_default(DEFAULT_ROUTE_TABLE, rt_id)
        if managed is not None:
            return managed, ""
        return None, f"route table {rt_id} of {subnet.name} is not declared in this stack"

    def internet_route(self, subnet: ResourceLike, client: Net) -> tuple[bool, str]:
        """Whether replies from ``subnet`` to ``client`` leave through an internet gateway (longest prefix match)."""
        rt, why = self.route_table(subnet)
        if rt is None:
            return False, f"no route to the internet: {why}"
        best: tuple[int, Any] | None = None
        for rule in items(value(rt, "routeRules")):
            if get(rule, "destinationType", "CIDR_BLOCK") != "CIDR_BLOCK":
                continue
            dest = network(get(rule, "destination") or get(rule, "cidrBlock"))
            if dest is None or dest.version != client.version or not client.subnet_of(dest):  # type: ignore[arg-type]
                continue
            if best is None or dest.prefixlen > best[0]:
                best = (dest.prefixlen, rule)
        if best is None:
            return False, f"route table {rt.name} has no route covering {client} (the internet needs a route to an IGW)"
        target_id = get(best[1], "networkEntityId")
        target = self.ids.get(target_id or "")
        if target is None or target.resource_type != INTERNET_GATEWAY:
            return False, f"route table {rt.name} sends {client} to {target_id}, which is not an internet gateway"
        if value(target, "enabled") is not None and not truthy(value(target, "enabled")):
            return False, f"internet gateway {target.name} is disabled"
        if value(target, "vcnId") != value(subnet, "vcnId"):
            return False, f"internet gateway {target.name} belongs to another VCN"
        return True, f"route table {rt.name}: {client} via internet gateway {target.name}"


def _oci_default_security_list(subnet_name: str) -> list[SecurityRule]:
    """OCI's rules for a default security list nobody manages: stateful SSH from anywhere, all egress."""
    owner = f"OCI default security list ({subnet_name})"
    return [
        SecurityRule("INGRESS", TCP, ANYWHERE, "CIDR_BLOCK", False, (22, 22), None, owner, "", 0),
        SecurityRule("EGRESS", "all", ANYWHERE, "CIDR_BLOCK", False, None, None, owner, "", 0),
    ]


def _host(addr: Any) -> Net | None:
    if not isinstance(addr, str) or not addr:
        return None
    try:
        return ipaddress.ip_network(addr)
    except ValueError:
        return None


def _app_endpoint(net: _Network) -> _Endpoint:
    instances = sorted(app_instances(net.resources), key=lambda r: r.name)  # a DB VM is not the app VM
    if not instances:
        return _Endpoint("app VM", None, None, missing="no compute instance is declared")
    inst = instances[0]
    vnic = value(inst, "createVnicDetails")
    subnet_id = get(vnic, "subnetId")
    sub = net.ids.get(subnet_id or "")
    if sub is None or sub.resource_type != SUBNET:
        return _Endpoint(f"app VM {inst.name}", None, None, missing=f"its subnet {subnet_id!r} is not declared")
    addr = _host(output(inst, "privateIp")) or network(value(sub, "cidrBlock"))
    assign = get(vnic, "assignPublicIp")
    wants = True if assign is None else truthy(assign)  # OCI's default: a public IP in a public subnet
    return _Endpoint(
        label=f"app VM {inst.name}",
        subnet=sub,
        address=addr,
        nsg_ids=tuple(x for x in items(get(vnic, "nsgIds")) if isinstance(x, str)),
        wants_public_ip=wants,
        public_ip_note="" if wants else f"{inst.name} has assignPublicIp false",
    )


def _db_endpoint(net: _Network) -> _Endpoint:
    declared = sorted(db_endpoints(net.resources), key=lambda ep: ep.name)
    if not declared:
        return _Endpoint("database", None, None, missing="no database is declared (no engine's endpoint)")
    db = declared[0]
    subnet_id = db.subnet_id
    sub = net.ids.get(subnet_id if isinstance(subnet_id, str) else "")
    if sub is None or sub.resource_type != SUBNET:
        return _Endpoint(f"database {db.name}", None, None, missing=f"its subnet {subnet_id!r} is not declared")
    ip = db.private_ip if isinstance(db.private_ip, str) else None
    return _Endpoint(
        label=f"database {db.name}",
        subnet=sub,
        address=_host(ip) or network(value(sub, "cidrBlock")),
        nsg_ids=db.nsg_ids,
        wants_public_ip=False,
        public_ip_note=db.note,
    )


def _app_subnet_endpoint(net: _Network, app: _Endpoint) -> _Endpoint:
    """The app VM when declared; else the first subnet that allows public IPs, as a whole."""
    if not app.missing:
        return app
    for sub in sorted(of_type(net.resources, SUBNET), key=lambda r: r.name):
        if not truthy(value(sub, "prohibitPublicIpOnVnic")) and network(value(sub, "cidrBlock")) is not None:
            return _Endpoint(f"app subnet {sub.name}", sub, network(value(sub, "cidrBlock")))
    return _Endpoint("app subnet", None, None, missing=f"{app.missing}, and no public subnet is declared")


Side = tuple[str | None, str]


def _text(addr: Net) -> str:
    """An address range as people write it: a single host without its /32."""
    return str(addr.network_address) if addr.prefixlen == addr.max_prefixlen else str(addr)


def _allow(rules: list[SecurityRule], direction: str, pkt: _Packet) -> list[SecurityRule]:
    return [r for r in rules if _matches(r, direction, pkt)]


def _side(net: _Network, ep: _Endpoint, peer: Net, peer_nsgs: tuple[str, ...], port: int, server: bool) -> Side:
    """Whether ``ep`` lets the connection through (its ingress as server, its egress as client) and the reply back.

    Returns ``(None, rule)`` when it does, naming the rule that lets the connection through; ``(reason, "")`` when not.
    """
    rules, notes = net.vnic_rules(ep)
    note = f" ({'; '.join(notes)})" if notes else ""
    way, back = ("INGRESS", "EGRESS") if server else ("EGRESS", "INGRESS")
    forward = _allow(rules, way, _Packet(peer, peer_nsgs, EPHEMERAL, (port, port)))
    if not forward:
        what = f"allows tcp {port} from {_text(peer)}" if server else f"allows tcp {port} to {_text(peer)}"
        return f"no {way.lower()} rule of {ep.label}'s security lists/NSGs {what}{note}", ""
    stateless = [r for r in forward if r.stateless]
    if stateless and not _allow(rules, back, _Packet(peer, peer_nsgs, (port, port), EPHEMERAL)):
        return (
            f"{stateless[0].describe()} is stateless and no {back.lower()} rule of {ep.label} lets the reply "
            f"(tcp from port {port}, to ports {EPHEMERAL[0]}-{EPHEMERAL[1]}) through: no return path"
        ), ""
    return None, forward[0].describe()


def _from_internet(net: _Network, client: Net, dst: _Endpoint, port: int) -> tuple[str, str]:
    if dst.missing:
        return DENIED, f"{dst.label}: {dst.missing}"
    assert dst.subnet is not None and dst.address is not None
    sub = dst.subnet
    if truthy(value(sub, "prohibitPublicIpOnVnic")):
        return DENIED, f"{dst.label} has no public IP: subnet {sub.name} prohibits public IPs"
    if truthy(value(sub, "prohibitInternetIngress")):
        return DENIED, f"subnet {sub.name} prohibits internet ingress"
    if not dst.wants_public_ip:
        return DENIED, f"{dst.label} has no public IP: {dst.public_ip_note}"
    routed, route_text = net.internet_route(sub, client)
    if not routed:
        return DENIED, route_text
    refused, rule = _side(net, dst, client, (), port, server=True)
    if refused:
        return DENIED, refused
    return ALLOWED, f"public IP in {sub.name}; {route_text}; {rule}"


def _inside_vcn(net: _Network, src: _Endpoint, dst: _Endpoint, port: int) -> tuple[str, str]:
    for ep in (src, dst):
        if ep.missing:
            return DENIED, f"{ep.label}: {ep.missing}"
    assert src.subnet is not None and dst.subnet is not None and src.address is not None and dst.address is not None
    if value(src.subnet, "vcnId") != value(dst.subnet, "vcnId"):
        return DENIED, f"{src.subnet.name} and {dst.subnet.name} are in different VCNs (no peering is modelled)"
    refused, out_rule = _side(net, src, dst.address, dst.nsg_ids, port, server=False)
    if refused:
        return DENIED, refused
    refused, in_rule = _side(net, dst, src.address, src.nsg_ids, port, server=True)
    if refused:
        return DENIED, refused
    return ALLOWED, f"VCN local routing {src.subnet.name} -> {dst.subnet.name}; {out_rule}; {in_rule}"


def _other_internet_host(admin: Net) -> Net:
    for host in OTHER_INTERNET_HOSTS:
        addr = ipaddress.ip_network(host)
        if addr.version != admin.version or not addr.subnet_of(admin):  # type: ignore[arg-type]
            return addr
    return ipaddress.ip_network(OTHER_INTERNET_HOSTS[0])


def _verdict(vid: str, source: str, dest: str, port: int, expected: str, outcome: tuple[str, str]) -> Verdict:
    actual, reason = outcome
    return Verdict(vid, source, dest, port, expected, actual, actual == expected, reason)


def _db_ports(resources: Sequence[ResourceLike]) -> tuple[int, ...]:
    declared = sorted(db_endpoints(resources), key=lambda ep: ep.name)
    return declared[0].ports if declared and declared[0].ports else DEFAULT_DB_PORTS


def verdicts(
    resources: Sequence[ResourceLike], admin_cidr: str, admin_min_prefix: int = ADMIN_SOURCE_MIN_PREFIX
) -> list[Verdict]:
    """The lab's reachability checks: SSH only from ``admin_cidr``, the DB never from the internet, always from the app.

    Raises ``ValueError`` when ``admin_cidr`` is not a CIDR block.
    """
    admin = network(admin_cidr)
    if admin is None or "/" not in admin_cidr:
        raise ValueError(f"admin_cidr {admin_cidr!r} is not a CIDR block like 203.0.113.7/32")
    net = _Network(resources)
    app = _app_endpoint(net)
    db = _db_endpoint(net)
    other = _other_internet_host(admin)
    app_dest = app.label + (f" ({_text(app.address)})" if app.address else "")
    db_dest = db.label + (f" ({_text(db.address)})" if db.address else "")

    first = _verdict(
        f"internet->app:{SSH_PORT}",
        f"internet, adminCidr {admin}",
        app_dest,
        SSH_PORT,
        ALLOWED,
        _from_internet(net, admin, app, SSH_PORT),
    )
    # The same judgement as the admin-port policy rules: a source that is not public unicast, or is too wide, is
    # not "the admin" even if the packet gets through.
    refused = judge_admin_source(str(admin), admin_min_prefix).error
    if refused and admin.prefixlen:
        first = replace(first, ok=False, reason=f"adminCidr {refused}; {first.reason}")
    out = [first]
    actual, reason = _from_internet(net, other, app, SSH_PORT)
    if admin.prefixlen == 0:
        reason = f"adminCidr {admin} lets every internet address in; {reason}"
    out.append(
        _verdict(
            f"internet-other->app:{SSH_PORT}",
            f"internet, {_text(other)} (not adminCidr)",
            app_dest,
            SSH_PORT,
            DENIED,
            (actual, reason),
        )
    )
    for port in _db_ports(resources):
        # The admin's own address is the most trusted internet source: if even it gets in, the DB is exposed.
        tries = [_from_internet(net, client, db, port) for client in (admin, other)]
        allowed = [t for t in tries if t[0] == ALLOWED]
        out.append(
            _verdict(
                f"internet->db:{port}",
                f"internet ({admin} or {_text(other)})",
                db_dest,
                port,
                DENIED,
                allowed[0] if allowed else tries[1],
            )
        )
    src = _app_subnet_endpoint(net, app)
    src_label = src.label + (f" ({_text(src.address)})" if src.address else "")
    for port in _db_ports(resources):
        outcome = _inside_vcn(net, src, db, port)
        out.append(_verdict(f"app-subnet->db:{port}", src_label, db_dest, port, ALLOWED, outcome))
    return out


def failing(results: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts whose actual outcome differs from the intended one."""
    return [v for v in results if not v.ok]
