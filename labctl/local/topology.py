"""The declared network of one offline plan, as the hosts, links, routes and rules the local lab will build.

Pure: reads the planned resources with the same index and endpoint logic as ``labctl/reach.py`` (subnets, their
security lists and NSGs, route tables, the app VM and the DB system) and never touches the machine. The lab:

- ``app``: a namespace for the app VM's VNIC, with its private IP (``privateIp``) in the public subnet;
- ``db``: a namespace for the DB system's endpoint, with its private IP (``ipAddress``) in the private subnet;
- ``vcn``: a probe host at a VCN address outside every declared subnet, with open egress (as another subnet's
  VNIC under OCI's default rules would have): "a VCN address outside the app subnet";
- ``inet``: "the internet": the admin address (the host of ``adminCidr``), one other public address, and, in the
  ``admin-cidr`` drill, the student's real address that no longer matches ``adminCidr``;
- ``rtr``: the VCN's virtual router and its internet gateway. Every host is linked to it; the router side of each
  link carries the subnet's virtual router IP (``virtualRouterIp``: OCI answers at the subnet's first host). The
  gateway maps the VM's public IP to its private IP 1:1 (OCI NATs an ephemeral public IP to the primary private IP
  of the VNIC; the instance itself only ever sees its private IP:
  https://docs.oracle.com/en-us/iaas/Content/Network/Tasks/managingpublicIPs.htm).

Routes come from the subnet's declared route table (rules whose target is an enabled internet gateway of the same
VCN), plus the VCN's local routing (OCI routes inside a VCN implicitly:
https://docs.oracle.com/en-us/iaas/Content/Network/Tasks/managingroutetables.htm). A private subnet whose table
has no rule gets no way out. Rules toward other targets (NAT, service gateway, DRG) are listed as not rehearsed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.ocimodel import (
    INTERNET_GATEWAY,
    ResourceLike,
    SecurityRule,
    get,
    items,
    network,
    output,
    truthy,
    value,
)
from labctl import reach
from policy.rules import app_instances

ENVFILE_TYPE = "pulumi-python:dynamic/dblab:EnvFile"
# The link between the router and "the internet" namespace: link-local (RFC 3927), never routed anywhere.
INET_LINK_ROUTER = "169.254.77.1"
INET_LINK_HOST = "169.254.77.2"
# The address the student really has when the admin-cidr drill sets adminCidr to something else.
DRILL_ADMIN_CIDR = "192.0.2.99/32"
# A documentation address inside a wide adminCidr, so "the admin" is one concrete host.
ADMIN_HOST_CANDIDATES = ("203.0.113.7", "198.51.100.23", "192.0.2.23")


class TopologyError(ValueError):
    """The plan cannot be rehearsed locally (a host is missing, addresses collide, ...); the message says why."""


@dataclass(frozen=True)
class Names:
    """Every name a run creates carries its run id (6 hex digits); interface names stay within Linux's 15."""

    run_id: str

    def ns(self, role: str) -> str:
        return f"dblab-{self.run_id}-{role}"

    def host_if(self, role: str) -> str:
        return f"dl{self.run_id}-{role}"  # at most 2 + 6 + 1 + 4 = 13 characters

    def router_if(self, role: str) -> str:
        return f"dl{self.run_id}-{role}r"  # at most 14

    def table(self) -> str:
        return f"dblab_{self.run_id}"

    @property
    def prefix(self) -> str:
        return f"dblab-{self.run_id}-"


@dataclass(frozen=True)
class Route:
    destination: str  # CIDR
    source: str  # what declared it: "VCN local routing" or "route table X rule #i"


@dataclass(frozen=True)
class Host:
    """One VNIC of the VCN in its own namespace."""

    role: str  # app | db | vcn
    label: str  # "app VM lab-vm"
    ns: str
    ifname: str
    router_ifname: str
    address: str  # the private IP
    router_ip: str  # the subnet's virtual router IP, on the router side of the link
    subnet: str  # subnet name ("" for the probe)
    routes: tuple[Route, ...]
    rules: tuple[SecurityRule, ...]
    public_ip: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Internet:
    ns: str
    ifname: str
    router_ifname: str
    admin: str  # the host of adminCidr as declared
    other: str  # a public address that is not adminCidr
    student: str  # where the student's machine really is (== admin, except in the admin-cidr drill)

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.student, self.admin, self.other)))


@dataclass(frozen=True)
class Topology:
    names: Names
    stack: str
    admin_cidr: str
    vcn_cidrs: tuple[str, ...]
    hosts: tuple[Host, ...]
    internet: Internet
    router_ns: str
    nat: tuple[tuple[str, str], ...]  # (public IP, private IP) pairs of the internet gateway
    db_ports: tuple[int, ...]
    gateway: str  # the internet gateway's name ("" when none is declared)
    notes: tuple[str, ...] = ()
    nsg_members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # NSG id -> host addresses

    def host(self, role: str) -> Host:
        for h in self.hosts:
            if h.role == role:
                return h
        raise KeyError(role)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.router_ns, self.internet.ns, *(h.ns for h in self.hosts))


def _first_host(cidr: str) -> str:
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + 1) if net.num_addresses > 2 else str(net.network_address)


def admin_host(admin_cidr: str) -> str:
    """One concrete address of ``adminCidr``: the address itself for a /32, a documentation address or the first
    host for a range."""
    net = network(admin_cidr)
    if net is None or net.version != 4:
        raise TopologyError(f"adminCidr {admin_cidr!r} is not an IPv4 CIDR block like 203.0.113.7/32")
    if net.num_addresses == 1:
        return str(net.network_address)
    for cand in ADMIN_HOST_CANDIDATES:
        if ipaddress.ip_address(cand) in net:
            return cand
    return _first_host(str(net))


def _routes(net: reach._Network, subnet: ResourceLike, vcn_cidrs: Sequence[str]) -> tuple[list[Route], list[str]]:
    routes = [Route(c, "VCN local routing") for c in vcn_cidrs]
    notes: list[str] = []
    rt, why = net.route_table(subnet)
    if rt is None:
        notes.append(f"{subnet.name}: {why}; no route out of the VCN")
        return routes, notes
    for i, rule in enumerate(items(value(rt, "routeRules"))):
        dest = network(get(rule, "destination") or get(rule, "cidrBlock"))
        if get(rule, "destinationType", "CIDR_BLOCK") != "CIDR_BLOCK" or dest is None or dest.version != 4:
            notes.append(f"route table {rt.name} rule #{i}: not a CIDR_BLOCK IPv4 destination; not rehearsed")
            continue
        target = net.ids.get(get(rule, "networkEntityId") or "")
        if target is None or target.resource_type != INTERNET_GATEWAY:
            notes.append(
                f"route table {rt.name} rule #{i}: {dest} to {get(rule, 'networkEntityId')}, which is not a declared "
                "internet gateway; not rehearsed"
            )
            continue
        if value(target, "enabled") is not None and not truthy(value(target, "enabled")):
            notes.append(f"route table {rt.name} rule #{i}: internet gateway {target.name} is disabled")
            continue
        if value(target, "vcnId") != value(subnet, "vcnId"):
            notes.append(f"route table {rt.name} rule #{i}: internet gateway {target.name} is in another VCN")
            continue
        routes.append(Route(str(dest), f"route table {rt.name} rule #{i} (via internet gateway {target.name})"))
    return routes, notes


def _single(addr: Any, what: str) -> str:
    if addr is None or addr.num_addresses != 1:
        raise TopologyError(f"{what} has no single private IP in the plan; the local lab needs one")
    return str(addr.network_address)


def _free_vcn_pair(vcn_cidrs: Sequence[str], taken: Sequence[str]) -> tuple[str, str]:
    """Two consecutive addresses (router side, host) at the top of the VCN, outside every declared subnet."""
    nets = [ipaddress.ip_network(c, strict=False) for c in taken]
    for cidr in vcn_cidrs:
        vcn = ipaddress.ip_network(cidr, strict=False)
        addr = vcn.broadcast_address - 1
        while addr - 1 > vcn.network_address:
            if not any(addr in n or (addr - 1) in n for n in nets):
                return str(addr - 1), str(addr)
            addr -= 256
    raise TopologyError(f"no VCN address outside the declared subnets in {', '.join(vcn_cidrs)} for the probe host")


def _other_public(admin_net: Any, avoid: Sequence[str]) -> str:
    for cand in reach.OTHER_INTERNET_HOSTS:
        ip = ipaddress.ip_address(cand)
        if ip not in admin_net and cand not in avoid:
            return cand
    raise TopologyError(f"adminCidr {admin_net} covers every candidate 'other' internet address")


def _plain_inputs(r: ResourceLike) -> dict[str, Any]:
    return {k: v for k, v in dict(r.props).items() if k != "__provider"}


def envfile_inputs(resources: Sequence[ResourceLike]) -> dict[str, Any]:
    """The EnvFile resource's declared inputs (the engine would hand these to the provider)."""
    found = [r for r in resources if r.resource_type == ENVFILE_TYPE]
    if not found:
        raise TopologyError("the plan declares no EnvFile resource (connectionCheck false?): nothing to check locally")
    return _plain_inputs(found[0])


def authorized_keys(resources: Sequence[ResourceLike]) -> str:
    """The SSH public key(s) the app VM is launched with (instance metadata ``ssh_authorized_keys``)."""
    for r in resources:
        if r.resource_type == "oci:Core/instance:Instance":
            keys = get(value(r, "metadata"), "ssh_authorized_keys")
            if isinstance(keys, str) and keys.strip():
                return keys.strip()
    raise TopologyError("the app VM declares no metadata.ssh_authorized_keys; sshd would let nobody in")


def build(
    resources: Sequence[ResourceLike], admin_cidr: str, names: Names, stack: str, student_cidr: str | None = None
) -> Topology:
    """The lab to build for ``resources``. ``student_cidr`` is where the student's machine really is (default: the
    declared ``admin_cidr``); the admin-cidr drill makes them differ."""
    net = reach._Network(resources)
    app_ep = reach._app_endpoint(net)
    db_ep = reach._db_endpoint(net)
    for ep in (app_ep, db_ep):
        if ep.missing:
            raise TopologyError(f"{ep.label}: {ep.missing}")
    assert app_ep.subnet is not None and db_ep.subnet is not None
    vcn = net.vcn_of(app_ep.subnet)
    if vcn is None:
        raise TopologyError(f"the VCN of {app_ep.subnet.name} is not declared")
    vcn_cidrs = tuple(
        str(n) for c in (items(value(vcn, "cidrBlocks")) or [output(vcn, "cidrBlock")]) if (n := network(c))
    )
    if not vcn_cidrs:
        raise TopologyError(f"VCN {vcn.name} has no cidrBlocks")
    subnets = [
        str(n) for s in (app_ep.subnet, db_ep.subnet) if (n := network(value(s, "cidrBlock"))) is not None
    ]  # fmt: skip
    members: dict[str, list[str]] = {}
    hosts: list[Host] = []
    notes: list[str] = []
    app_ip = _single(app_ep.address, app_ep.label)
    db_ip = _single(db_ep.address, db_ep.label)

    public_ip = ""
    instance = sorted(app_instances(resources), key=lambda r: r.name)  # the app VM (a DB VM is the DB's endpoint)
    if app_ep.wants_public_ip and not truthy(value(app_ep.subnet, "prohibitPublicIpOnVnic")):
        public_ip = str(output(instance[0], "publicIp") or "")
    for role, ep, ip in (("app", app_ep, app_ip), ("db", db_ep, db_ip)):
        sub = ep.subnet
        assert sub is not None
        rules, rule_notes = net.vnic_rules(ep)
        routes, route_notes = _routes(net, sub, vcn_cidrs)
        router_ip = str(output(sub, "virtualRouterIp") or _first_host(str(value(sub, "cidrBlock"))))
        for nsg in ep.nsg_ids:
            members.setdefault(nsg, []).append(ip)
        hosts.append(
            Host(
                role=role,
                label=ep.label,
                ns=names.ns(role),
                ifname=names.host_if(role),
                router_ifname=names.router_if(role),
                address=ip,
                router_ip=router_ip,
                subnet=sub.name,
                routes=tuple(routes),
                rules=tuple(rules),
                public_ip=public_ip if role == "app" else "",
                notes=tuple(rule_notes + route_notes),
            )
        )
    probe_router, probe_ip = _free_vcn_pair(vcn_cidrs, subnets)
    open_egress = SecurityRule(
        "EGRESS", "all", reach.ANYWHERE, "CIDR_BLOCK", False, None, None, "probe host (open egress)", "", 0
    )
    hosts.append(
        Host(
            role="vcn",
            label=f"VCN host {probe_ip} (outside the declared subnets, open egress)",
            ns=names.ns("vcn"),
            ifname=names.host_if("vcn"),
            router_ifname=names.router_if("vcn"),
            address=probe_ip,
            router_ip=probe_router,
            subnet="",
            routes=tuple(Route(c, "VCN local routing") for c in vcn_cidrs),
            rules=(open_egress,),
        )
    )

    admin = admin_host(admin_cidr)
    student = admin_host(student_cidr) if student_cidr else admin
    admin_net = network(admin_cidr)
    other = _other_public(admin_net, (admin, student, public_ip))
    vcn_nets = [ipaddress.ip_network(c) for c in vcn_cidrs]
    for what, addr in (("adminCidr's host", admin), ("the student's address", student), ("other", other)):
        ip = ipaddress.ip_address(addr)
        if any(ip in n for n in vcn_nets) or ip.is_loopback or ip.is_link_local or addr == public_ip:
            raise TopologyError(
                f"{what} {addr} is inside the VCN, loopback, link-local or the VM's public IP; adminCidr must be an "
                "internet address outside the VCN, e.g. 203.0.113.7/32"
            )
    gateways = sorted(r.name for r in resources if r.resource_type == INTERNET_GATEWAY)
    nat = ((public_ip, app_ip),) if public_ip else ()
    if not public_ip:
        notes.append(f"{app_ep.label} has no public IP: the internet gateway maps nothing to it")
    return Topology(
        names=names,
        stack=stack,
        admin_cidr=admin_cidr,
        vcn_cidrs=vcn_cidrs,
        hosts=tuple(hosts),
        internet=Internet(names.ns("inet"), names.host_if("inet"), names.router_if("inet"), admin, other, student),
        router_ns=names.ns("rtr"),
        nat=nat,
        db_ports=reach._db_ports(resources),
        gateway=gateways[0] if gateways else "",
        notes=tuple(notes),
        nsg_members={k: tuple(v) for k, v in members.items()},
    )
