"""The lab's policy rules, as plain functions over the resources of one stack.

The same functions run in two places:

- for real, in the pulumi-policy pack (``pulumi preview --policy-pack policy``): ``policy/__main__.py`` wraps each
  rule in a ``StackValidationPolicy`` and passes it ``args.resources`` (pulumi-policy ``PolicyResource`` objects);
- offline, in ``labctl plan`` and the tests, over ``labctl.offline.PlannedResource`` objects.

Both kinds have ``resource_type``, ``name``, ``urn``, ``props`` and the engine's dependency records
(``dependencies``, ``property_dependencies``: URNs offline, resource objects in the pack). In the real pack
``props`` are the engine's view of the resource (including provider outputs such as ``id`` once known); offline, ids
and provider outputs live in ``id``/``outputs``. ``output()`` and ``resource_id()`` look in both places, so a rule
never needs to know which kind it was given. Nested values may be pulumi-policy proxies, so the code tests for
``Mapping``/``Sequence``, never for ``dict``/``list``.

Preview of a fresh stack: every id, and every input computed from one (``subnetId``, ``vcnId``,
``manageDefaultResourceId``, a generated password), is unknown; pulumi-policy raises ``UnknownValueError`` when a
rule reads one and reports "can't run policy ... during preview" as an advisory, so the rule would decide nothing.
Rules therefore link resources by URN, through the engine's ``propertyDependencies`` (and ``dependencies`` when a
resource has none recorded), which the engine sends in preview and after ``up`` alike (pulumi
pkg/resource/deploy/step_generator.go ``AnalyzeResources``); provider ids only confirm a link once both are known.
``peek()`` reads a value that may be unknown without raising. ``labctl/analyzerhost.py`` proves this against the pack
served as the engine serves it.

This module constructs no ``PolicyPack`` and imports nothing from pulumi-policy: importing it has no side effects.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MANDATORY = "mandatory"
ADVISORY = "advisory"

SECURITY_LIST = "oci:Core/securityList:SecurityList"
DEFAULT_SECURITY_LIST = "oci:Core/defaultSecurityList:DefaultSecurityList"
NSG = "oci:Core/networkSecurityGroup:NetworkSecurityGroup"
NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
VCN = "oci:Core/vcn:Vcn"
SUBNET = "oci:Core/subnet:Subnet"
ROUTE_TABLE = "oci:Core/routeTable:RouteTable"
DEFAULT_ROUTE_TABLE = "oci:Core/defaultRouteTable:DefaultRouteTable"
INTERNET_GATEWAY = "oci:Core/internetGateway:InternetGateway"
INSTANCE = "oci:Core/instance:Instance"
MYSQL_DB_SYSTEM = "oci:Mysql/mysqlDbSystem:MysqlDbSystem"
MONITORING_ALARM = "oci:Monitoring/alarm:Alarm"
NOTIFICATION_TOPIC = "oci:Ons/notificationTopic:NotificationTopic"

TCP = "6"  # OCI writes protocols as IANA numbers; "all" matches every protocol
UDP = "17"
ICMP = "1"
ADMIN_PORTS = (22, 3389)  # SSH, RDP
DB_PORTS = (3306, 33060)  # MySQL classic and X protocol
REQUIRED_TAGS = ("project", "stack")
# OCI resource types that have no freeform tags of their own.
UNTAGGABLE_TYPES = frozenset({NSG_RULE})


class ResourceLike(Protocol):
    """What a rule reads from a resource: pulumi-policy ``PolicyResource`` and ``PlannedResource`` both fit."""

    resource_type: str
    name: str
    urn: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Finding:
    """One violation of one rule by one resource (or by the stack, when ``urn`` is empty)."""

    rule: str
    level: str  # MANDATORY | ADVISORY
    urn: str
    name: str
    message: str
    source: str


@dataclass(frozen=True)
class Rule:
    """A stack-level rule: ``check`` sees every resource, because some rules relate resources to each other."""

    id: str
    description: str
    level: str
    source: str
    check: Callable[[Sequence[ResourceLike]], list[Finding]]
    # What of the rule only the offline run can check (the real pack sees less; see the check's docstring).
    offline_only_part: str = ""


# --- reading resources of either kind ---------------------------------------------------------------------------


def value(r: ResourceLike, key: str) -> Any:
    """A declared property of ``r`` (``None`` when absent)."""
    props = r.props
    if isinstance(props, Mapping) and key in props:
        return props[key]
    return None


def output(r: ResourceLike, key: str) -> Any:
    """A property the provider computes (ids, addresses): in ``props`` in the real pack, ``outputs`` offline."""
    found = value(r, key)
    if found is not None:
        return found
    outputs = getattr(r, "outputs", None)
    return outputs.get(key) if isinstance(outputs, Mapping) else None


def resource_id(r: ResourceLike) -> str | None:
    """The provider id of ``r``: ``PlannedResource.id`` offline, ``props['id']`` in the real pack."""
    rid = getattr(r, "id", None)
    if isinstance(rid, str) and rid:
        return rid
    found = output(r, "id")
    return found if isinstance(found, str) and found else None


def get(m: Any, key: str, default: Any = None) -> Any:
    """``m[key]`` for any mapping (dicts and pulumi-policy proxies), ``default`` for anything else."""
    if isinstance(m, Mapping) and key in m and m[key] is not None:
        return m[key]
    return default


def items(x: Any) -> list[Any]:
    """The elements of a list-like value (never the characters of a string); ``[]`` for anything else."""
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return list(x)
    return []


# The engine's sentinels for values not known until ``up`` (pulumi sdk/go/common/resource/plugin/rpc.go
# ``UnknownStringValue`` and siblings; pulumi_policy/proxy.py keeps the same seven).
UNKNOWN_SENTINELS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)


class _Unknown:
    """A value the engine does not know yet (preview of resources not created)."""

    def __repr__(self) -> str:
        return "<unknown until up>"


UNKNOWN = _Unknown()


def _is_unknown_error(e: Exception) -> bool:
    # pulumi_policy.proxy.UnknownValueError, matched by name: this module imports nothing from pulumi-policy.
    return type(e).__name__ == "UnknownValueError"


def is_unknown(x: Any) -> bool:
    return x is UNKNOWN or (isinstance(x, str) and x in UNKNOWN_SENTINELS) or type(x).__name__ == "Unknown"


def peek(m: Any, key: Any, default: Any = None) -> Any:
    """``m[key]`` that never raises: ``UNKNOWN`` for a value unknown in preview, ``default`` when absent or null."""
    if not isinstance(m, (Mapping, Sequence)) or isinstance(m, (str, bytes)):
        return default
    try:
        found = m[key]
    except (KeyError, IndexError, TypeError):
        return default
    except Exception as e:
        if _is_unknown_error(e):
            return UNKNOWN
        raise
    if is_unknown(found):
        return UNKNOWN
    return default if found is None else found


def _urn_of(x: Any) -> str:
    return x if isinstance(x, str) else str(getattr(x, "urn", "") or "")


def linked(
    resources: Sequence[ResourceLike], r: ResourceLike, prop: str, *types: str, known_id: Any = None
) -> list[ResourceLike]:
    """The resources of ``types`` that ``r``'s property ``prop`` was computed from.

    By URN, from the engine's ``propertyDependencies[prop]``; when ``r`` has no property dependencies recorded at
    all, from its ``dependencies``. ``known_id`` (the property's value, or the nested id inside it) narrows the
    candidates once ids are known (after ``up``). A literal id with no dependency (a resource of another stack)
    falls back to matching provider ids, which only works when those are known.
    """
    by_urn = {x.urn: x for x in resources}
    pdeps = getattr(r, "property_dependencies", None) or {}
    if isinstance(pdeps, Mapping) and pdeps:
        urns = [_urn_of(d) for d in items(pdeps.get(prop))]
    else:
        urns = [_urn_of(d) for d in items(getattr(r, "dependencies", None))]
    found = [by_urn[u] for u in dict.fromkeys(urns) if u in by_urn and by_urn[u].resource_type in types]
    if isinstance(known_id, str) and not is_unknown(known_id):
        confirmed = [x for x in found if peek_id(x) in (known_id, None)]
        if confirmed:
            return confirmed
        return [x for x in resources if x.resource_type in types and peek_id(x) == known_id]
    return found


def peek_output(r: ResourceLike, key: str) -> Any:
    """``output(r, key)`` that never raises: ``UNKNOWN`` while the engine does not know it, ``None`` if absent."""
    found = peek(r.props, key)
    if found is None:
        found = peek(getattr(r, "outputs", None), key)
    return found


def peek_id(r: ResourceLike) -> str | None:
    """The provider id of ``r`` when known, ``None`` while unknown (preview) or absent."""
    rid = getattr(r, "id", None)
    if isinstance(rid, str) and rid and not is_unknown(rid):
        return rid
    for place in (r.props, getattr(r, "outputs", None)):
        found = peek(place, "id")
        if isinstance(found, str) and found and found is not UNKNOWN:
            return found
    return None


def of_type(resources: Sequence[ResourceLike], *types: str) -> list[ResourceLike]:
    return [r for r in resources if r.resource_type in types]


def by_id(resources: Sequence[ResourceLike]) -> dict[str, ResourceLike]:
    return {rid: r for r in resources if (rid := resource_id(r))}


def truthy(x: Any) -> bool:
    """OCI/pulumi booleans arrive as bools or as the strings "true"/"false"."""
    if isinstance(x, str):
        return x.strip().lower() == "true"
    return bool(x)


def network(cidr: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(cidr, str):
        return None
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None


def contains(outer: ipaddress.IPv4Network | ipaddress.IPv6Network | None, inner: Any) -> bool:
    """True when every address of ``inner`` is inside ``outer`` (both of the same IP version)."""
    if outer is None or inner is None or outer.version != inner.version:
        return False
    return inner.subnet_of(outer)  # type: ignore[arg-type]


def urn_stack_project(urn: str) -> tuple[str, str]:
    """(stack, project) of a URN ``urn:pulumi:<stack>::<project>::<type>::<name>``; empty strings if malformed."""
    parts = urn.split("::")
    head = parts[0].split(":")
    if len(parts) < 2 or len(head) < 3:
        return "", ""
    return head[2], parts[1]


# --- security rules, normalised over security lists and NSGs ----------------------------------------------------

PortRange = tuple[int, int]


@dataclass(frozen=True)
class SecurityRule:
    """One OCI security rule, from a security list or an NSG, in one shape.

    ``peer`` is the source of an ingress rule or the destination of an egress rule. Port ranges are ``None`` when
    the rule has no TCP options (every port). ``dst_ports`` are the packet's destination ports, ``src_ports`` its
    source ports, in both directions.
    """

    direction: str  # "INGRESS" | "EGRESS"
    protocol: str
    peer: str
    peer_type: str  # CIDR_BLOCK | SERVICE_CIDR_BLOCK | NETWORK_SECURITY_GROUP
    stateless: bool
    dst_ports: PortRange | None
    src_ports: PortRange | None
    owner: str  # name of the security list or NSG rule resource
    owner_urn: str
    index: int  # position in the list's rules (0 for an NSG rule)
    # ICMP options (protocol "1"): type, and code when given; None when the rule has no icmpOptions (every type)
    icmp_type: int | None = None
    icmp_code: int | None = None

    @property
    def is_tcp(self) -> bool:
        return self.protocol in (TCP, "all")

    def covers_port(self, port: int, ports: PortRange | None = None) -> bool:
        rng = self.dst_ports if ports is None else ports
        return rng is None or rng[0] <= port <= rng[1]

    @property
    def peer_network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        return network(self.peer) if self.peer_type == "CIDR_BLOCK" else None

    def describe(self) -> str:
        ports = "all ports" if self.dst_ports is None else _ports_text(self.dst_ports)
        proto = {"all": "all protocols", TCP: "tcp", UDP: "udp", ICMP: "icmp"}.get(
            self.protocol, f"protocol {self.protocol}"
        )
        if self.protocol == ICMP:
            ports = "all types" if self.icmp_type is None else f"type {self.icmp_type}"
            ports += "" if self.icmp_code is None else f" code {self.icmp_code}"
        way = "from" if self.direction == "INGRESS" else "to"
        kind = "stateless" if self.stateless else "stateful"
        return f"{self.owner} {self.direction.lower()} #{self.index}: {proto} {ports} {way} {self.peer} ({kind})"


def _ports_text(rng: PortRange) -> str:
    return f"port {rng[0]}" if rng[0] == rng[1] else f"ports {rng[0]}-{rng[1]}"


def _range(m: Any) -> PortRange | None:
    lo, hi = get(m, "min"), get(m, "max")
    if lo is None and hi is None:
        return None
    return int(lo if lo is not None else 1), int(hi if hi is not None else 65535)


def _icmp(options: Any) -> tuple[int | None, int | None]:
    if not isinstance(options, Mapping) or get(options, "type") is None:
        return None, None
    code = get(options, "code")
    return int(get(options, "type")), None if code is None else int(code)


def _port_options(rule: Any, protocol: str) -> Any:
    """The port options that apply to ``protocol``: ``tcpOptions`` for TCP, ``udpOptions`` for UDP."""
    return get(rule, "udpOptions") if protocol == UDP else get(rule, "tcpOptions")


def _tcp_ranges(tcp: Any, nsg: bool) -> tuple[PortRange | None, PortRange | None]:
    if not isinstance(tcp, Mapping):
        return None, None
    dst = _range(get(tcp, "destinationPortRange")) if nsg else _range(tcp)
    return dst, _range(get(tcp, "sourcePortRange"))


def security_rules(r: ResourceLike) -> list[SecurityRule]:
    """The security rules a security list, default security list or NSG security rule resource declares."""
    out: list[SecurityRule] = []
    if r.resource_type in (SECURITY_LIST, DEFAULT_SECURITY_LIST):
        for direction, key, peer_key, type_key in (
            ("INGRESS", "ingressSecurityRules", "source", "sourceType"),
            ("EGRESS", "egressSecurityRules", "destination", "destinationType"),
        ):
            for i, rule in enumerate(items(value(r, key))):
                protocol = str(get(rule, "protocol", ""))
                dst, src = _tcp_ranges(_port_options(rule, protocol), nsg=False)
                icmp_type, icmp_code = _icmp(get(rule, "icmpOptions"))
                out.append(
                    SecurityRule(
                        direction=direction,
                        protocol=protocol,
                        peer=str(get(rule, peer_key, "")),
                        peer_type=str(get(rule, type_key, "CIDR_BLOCK")),
                        stateless=truthy(get(rule, "stateless", False)),
                        dst_ports=dst,
                        src_ports=src,
                        owner=r.name,
                        owner_urn=r.urn,
                        index=i,
                        icmp_type=icmp_type,
                        icmp_code=icmp_code,
                    )
                )
    elif r.resource_type == NSG_RULE:
        direction = str(value(r, "direction") or "").upper()
        ingress = direction == "INGRESS"
        protocol = str(value(r, "protocol") or "")
        dst, src = _tcp_ranges(_port_options(r.props, protocol), nsg=True)
        icmp_type, icmp_code = _icmp(value(r, "icmpOptions"))
        out.append(
            SecurityRule(
                direction=direction,
                protocol=protocol,
                peer=str(value(r, "source" if ingress else "destination") or ""),
                peer_type=str(value(r, "sourceType" if ingress else "destinationType") or "CIDR_BLOCK"),
                stateless=truthy(value(r, "stateless")),
                dst_ports=dst,
                src_ports=src,
                owner=r.name,
                owner_urn=r.urn,
                index=0,
                icmp_type=icmp_type,
                icmp_code=icmp_code,
            )
        )
    return out


def _is_anywhere(rule: SecurityRule) -> bool:
    net = rule.peer_network
    return net is not None and net.prefixlen == 0


# --- the rules ----------------------------------------------------------------------------------------------------


# Where an admin port (SSH/RDP) may be opened from: a public unicast network no wider than a /16. Every range of the
# IANA IPv4 Special-Purpose Address Registry (RFC 6890, www.iana.org/assignments/iana-ipv4-special-registry) that is not
# globally reachable unicast is refused, with what it is. The documentation ranges (RFC 5737) are allowed with a
# warning: they stand for "your public address" in examples and offline plans, and reach nobody on the real internet.
ADMIN_SOURCE_MIN_PREFIX = 16
NOT_PUBLIC_UNICAST: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (RFC 791), not a source on the internet"),
    ("10.0.0.0/8", "a private range (RFC 1918); SSH from the internet arrives from your public IP"),
    ("100.64.0.0/10", "carrier-grade NAT space (RFC 6598); your public IP is the NAT's outside address"),
    ("127.0.0.0/8", "loopback (RFC 1122); no packet from the internet has this source"),
    ("169.254.0.0/16", "link-local (RFC 3927); it never leaves a network segment"),
    ("172.16.0.0/12", "a private range (RFC 1918); SSH from the internet arrives from your public IP"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890), not a host's address"),
    ("192.168.0.0/16", "a private range (RFC 1918); SSH from the internet arrives from your public IP"),
    ("198.18.0.0/15", "the benchmarking range (RFC 2544), not routed on the internet"),
    ("224.0.0.0/4", "multicast (RFC 5771); a TCP connection never comes from a multicast address"),
    ("240.0.0.0/4", "reserved (RFC 1112) and broadcast, not a host's address"),
)
DOCUMENTATION_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")  # RFC 5737


@dataclass(frozen=True)
class AdminSource:
    """The judgement of one admin-port source: ``error`` refuses it, ``warning`` lets it pass with a note."""

    error: str | None = None
    warning: str | None = None


def judge_admin_source(cidr: Any, min_prefix: int = ADMIN_SOURCE_MIN_PREFIX) -> AdminSource:
    """Is ``cidr`` acceptable as the source of SSH/RDP: public unicast and no wider than ``/min_prefix``?"""
    net = network(cidr)
    if net is None:
        return AdminSource(error=f"{cidr!r} is not a CIDR block like 203.0.113.7/32")
    if net.prefixlen == 0:
        return AdminSource(error=f"{net} is the whole internet")
    if net.version == 6:
        v6_min = 48  # a site's allocation (RFC 6177); anything wider is many networks
        if not net.is_global:
            return AdminSource(error=f"{net} is not a public (global unicast) IPv6 network")
        if net.prefixlen < v6_min:
            return AdminSource(error=f"{net} is wider than /{v6_min}")
        return AdminSource()
    for special, what in NOT_PUBLIC_UNICAST:
        if net.overlaps(ipaddress.ip_network(special)):  # type: ignore[arg-type]
            inside = "is" if net.subnet_of(ipaddress.ip_network(special)) else f"overlaps {special}, which is"  # type: ignore[arg-type]
            return AdminSource(error=f"{net} {inside} {what}")
    if net.prefixlen < min_prefix:
        return AdminSource(
            error=f"{net} is wider than /{min_prefix} ({net.num_addresses:,} addresses); allow your own address "
            "as a /32, or the lab room's public network"
        )
    for doc in DOCUMENTATION_RANGES:
        if net.subnet_of(ipaddress.ip_network(doc)):  # type: ignore[arg-type]
            return AdminSource(
                warning=f"{net} is a documentation range (RFC 5737): fine for an example or an offline plan, but "
                "nobody on the internet has this address; put your own public IP (https://ifconfig.me) as a /32"
            )
    return AdminSource()


def _admin_ports_from_anywhere(
    resources: Sequence[ResourceLike],
    types: tuple[str, ...],
    rule_id: str,
    min_prefix: int = ADMIN_SOURCE_MIN_PREFIX,
) -> list[Finding]:
    found = []
    for r in of_type(resources, *types):
        for sr in security_rules(r):
            if sr.direction != "INGRESS" or not sr.is_tcp or sr.peer_type != "CIDR_BLOCK":
                continue
            why = judge_admin_source(sr.peer, min_prefix).error
            if why is None:
                continue
            for port in ADMIN_PORTS:
                if sr.covers_port(port):
                    reach = "lets the whole internet reach" if _is_anywhere(sr) else "opens"
                    found.append(
                        _finding(
                            rule_id,
                            r,
                            f"{sr.describe()} {reach} port {port}: {why}; allow only a public address no wider "
                            f"than /{min_prefix} (adminCidr, e.g. your own IP as 203.0.113.7/32)",
                        )
                    )
    return found


def check_security_list_admin_ports(
    resources: Sequence[ResourceLike], min_prefix: int = ADMIN_SOURCE_MIN_PREFIX
) -> list[Finding]:
    """No security list (default or not) opens TCP 22 or 3389 to a source that is not public unicast, or that is
    wider than ``/min_prefix`` (0.0.0.0/0 above all)."""
    return _admin_ports_from_anywhere(
        resources, (SECURITY_LIST, DEFAULT_SECURITY_LIST), "security-list-no-admin-ports-from-internet", min_prefix
    )


def check_nsg_admin_ports(
    resources: Sequence[ResourceLike], min_prefix: int = ADMIN_SOURCE_MIN_PREFIX
) -> list[Finding]:
    """The same judgement for NSG security rules."""
    return _admin_ports_from_anywhere(resources, (NSG_RULE,), "nsg-no-admin-ports-from-internet", min_prefix)


def check_default_security_list(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every VCN's default security list is taken over (DefaultSecurityList) and has no ingress rules.

    Left alone, OCI creates it with SSH from 0.0.0.0/0, and any subnet created without ``securityListIds`` gets it.
    """
    rule_id = "default-security-list-no-ingress"
    found = []
    managed = of_type(resources, DEFAULT_SECURITY_LIST)
    managed_vcns = set()
    for r in managed:
        target = peek(r.props, "manageDefaultResourceId")
        for vcn in linked(resources, r, "manageDefaultResourceId", VCN):
            default_id = peek_output(vcn, "defaultSecurityListId")
            # Linked by URN; once both ids are known they must also agree (it is the VCN's *security list* id).
            if not isinstance(target, str) or not isinstance(default_id, str) or target == default_id:
                managed_vcns.add(vcn.urn)
        if isinstance(target, str):  # a literal id: only an id match can link it
            managed_vcns |= {
                v.urn for v in of_type(resources, VCN) if peek_output(v, "defaultSecurityListId") == target
            }
    for vcn in of_type(resources, VCN):
        if vcn.urn in managed_vcns:
            continue
        found.append(
            _finding(
                rule_id,
                vcn,
                "the VCN's default security list is not managed by this program; OCI creates it with SSH (22) "
                "open to 0.0.0.0/0. Take it over with oci.core.DefaultSecurityList and leave it without rules",
            )
        )
    for r in managed:
        ingress = [sr for sr in security_rules(r) if sr.direction == "INGRESS"]
        for sr in ingress:
            found.append(
                _finding(
                    rule_id,
                    r,
                    f"{sr.describe()}: the default security list must have no ingress rules; put the rules a subnet "
                    "needs in that subnet's own security list",
                )
            )
    return found


def subnets_of(resources: Sequence[ResourceLike], r: ResourceLike) -> list[ResourceLike]:
    """The subnet(s) ``r`` is placed in: a DB system's ``subnetId``, an instance's ``createVnicDetails.subnetId``.

    Linked by URN (see ``linked``), so it works in a preview of a fresh stack, where the subnet id is unknown.
    """
    if r.resource_type == INSTANCE:
        return linked(
            resources, r, "createVnicDetails", SUBNET, known_id=peek(peek(r.props, "createVnicDetails"), "subnetId")
        )
    return linked(resources, r, "subnetId", SUBNET, known_id=peek(r.props, "subnetId"))


def app_subnet_cidrs(resources: Sequence[ResourceLike]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDRs of the app tier: the subnets the instances sit in, else every subnet that allows public IPs."""
    cidrs = []
    for inst in of_type(resources, INSTANCE):
        for sub in subnets_of(resources, inst):
            net = network(value(sub, "cidrBlock"))
            if net is not None and net not in cidrs:
                cidrs.append(net)
    if not cidrs:
        for sub in of_type(resources, SUBNET):
            net = network(value(sub, "cidrBlock"))
            if net is not None and not truthy(value(sub, "prohibitPublicIpOnVnic")) and net not in cidrs:
                cidrs.append(net)
    return cidrs


def db_ports(resources: Sequence[ResourceLike]) -> tuple[int, ...]:
    """The standard MySQL ports plus whatever ports the declared DB systems listen on."""
    ports = set(DB_PORTS)
    for db in of_type(resources, MYSQL_DB_SYSTEM):
        for key in ("port", "portX"):
            p = value(db, key)
            if isinstance(p, (int, float)) and not isinstance(p, bool):
                ports.add(int(p))
    return tuple(sorted(ports))


def check_db_port_only_from_app_subnet(resources: Sequence[ResourceLike]) -> list[Finding]:
    """An ingress rule that opens a database port may only have the app subnet (or a part of it) as its source."""
    rule_id = "db-port-only-from-app-subnet"
    found = []
    apps = app_subnet_cidrs(resources)
    ports = db_ports(resources)
    app_text = ", ".join(str(c) for c in apps) or "none found"
    for r in of_type(resources, SECURITY_LIST, DEFAULT_SECURITY_LIST, NSG_RULE):
        for sr in security_rules(r):
            if sr.direction != "INGRESS" or not sr.is_tcp:
                continue
            for port in ports:
                if not sr.covers_port(port):
                    continue
                if sr.peer_type == "NETWORK_SECURITY_GROUP":
                    continue  # a named group of VNICs, not an address range
                src = sr.peer_network
                if src is not None and any(contains(app, src) for app in apps):
                    continue
                found.append(
                    _finding(
                        rule_id,
                        r,
                        f"{sr.describe()} opens database port {port} to {sr.peer}; the database must be reachable "
                        f"only from the app subnet ({app_text}), never from the VCN or 0.0.0.0/0",
                    )
                )
    return found


def check_no_public_ip_in_private_subnet(resources: Sequence[ResourceLike]) -> list[Finding]:
    """The DB system's subnet prohibits public IPs, and no instance asks for a public IP in such a subnet."""
    rule_id = "no-public-ip-in-private-subnet"
    found = []
    for db in of_type(resources, MYSQL_DB_SYSTEM):
        subs = subnets_of(resources, db)
        if not subs:
            subnet_id = peek(db.props, "subnetId")
            shown = "(unknown until up)" if subnet_id is UNKNOWN else repr(subnet_id)
            found.append(
                _finding(
                    rule_id,
                    db,
                    f"the DB system's subnet {shown} is not declared in this stack; cannot verify that it is private",
                )
            )
        for sub in subs:
            if not truthy(value(sub, "prohibitPublicIpOnVnic")):
                found.append(
                    _finding(
                        rule_id,
                        db,
                        f"the DB system sits in subnet {sub.name}, which allows public IPs "
                        "(prohibitPublicIpOnVnic is not true); put it in the private subnet",
                    )
                )
    for inst in of_type(resources, INSTANCE):
        vnic = value(inst, "createVnicDetails")
        for sub in subnets_of(resources, inst):
            if truthy(value(sub, "prohibitPublicIpOnVnic")) and truthy(get(vnic, "assignPublicIp")):
                found.append(
                    _finding(
                        rule_id,
                        inst,
                        f"the instance asks for a public IP (assignPublicIp) in subnet {sub.name}, which prohibits "
                        "public IPs; OCI refuses this launch",
                    )
                )
    return found


def check_legacy_imds_disabled(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every instance disables the legacy (v1) metadata endpoints."""
    found = []
    for inst in of_type(resources, INSTANCE):
        if not truthy(get(value(inst, "instanceOptions"), "areLegacyImdsEndpointsDisabled")):
            found.append(
                _finding(
                    "legacy-imds-disabled",
                    inst,
                    "legacy IMDS v1 endpoints are enabled; set instance_options.are_legacy_imds_endpoints_disabled="
                    "True (v2 needs a header, which blunts SSRF against instance credentials)",
                )
            )
    return found


def check_boot_volume_in_transit_encryption(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every instance encrypts its boot volume's paravirtualized attachment in transit.

    Checked where checkov checks it, ``launchOptions.isPvEncryptionInTransitEnabled`` (Terraform
    ``launch_options[0].is_pv_encryption_in_transit_enabled``); the top-level ``isPvEncryptionInTransitEnabled``
    (set at launch only) counts too.
    """
    found = []
    for inst in of_type(resources, INSTANCE):
        opts = value(inst, "launchOptions")
        if truthy(get(opts, "isPvEncryptionInTransitEnabled", False)) or truthy(
            value(inst, "isPvEncryptionInTransitEnabled")
        ):
            continue
        found.append(
            _finding(
                "boot-volume-in-transit-encryption",
                inst,
                "the boot volume is not encrypted in transit; set launch_options=InstanceLaunchOptionsArgs("
                "is_pv_encryption_in_transit_enabled=True) (VM shapes with platform images support it)",
            )
        )
    return found


def check_instance_monitoring_enabled(resources: Sequence[ResourceLike]) -> list[Finding]:
    """No instance turns off the Oracle Cloud Agent's monitoring plugin (OCI's default is on)."""
    found = []
    for inst in of_type(resources, INSTANCE):
        if truthy(get(value(inst, "agentConfig"), "isMonitoringDisabled", False)):
            found.append(
                _finding(
                    "instance-monitoring-enabled",
                    inst,
                    "agent_config.is_monitoring_disabled=True turns off the instance's metrics (CPU, memory, "
                    "disk, network) that alarms and the class dashboard read; remove it",
                )
            )
    return found


# Passes without a backup policy: OCI refuses one for an Always Free DB system ("Cannot specify backup policy with
# 'CreateDbSystem' operation for an Always Free DB system") and backs it up automatically, keeping each backup 1 day
# (public apply log, mlinxfeld/terraform-oci-fk-heatwave training/lesson1_free_tier_mds/README.md: backup_policy
# is_enabled = true, retention_in_days = 1). See engines/mysql.py backup_and_deletion.
AUTOMATIC_BACKUP_SHAPES = {"MySQL.Free": "Always Free: OCI backs it up automatically (kept 1 day) and refuses a policy"}


def check_db_backups_enabled(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every MySQL DB system declares automatic backups on, except shapes OCI backs up by itself
    (``AUTOMATIC_BACKUP_SHAPES``, with the reason)."""
    found = []
    for db in of_type(resources, MYSQL_DB_SYSTEM):
        if value(db, "shapeName") in AUTOMATIC_BACKUP_SHAPES:
            continue
        policy = value(db, "backupPolicy")
        if not truthy(get(policy, "isEnabled", False)):
            found.append(
                _finding(
                    "db-backups-enabled",
                    db,
                    "automatic backups are not enabled; set backup_policy=MysqlDbSystemBackupPolicyArgs("
                    "is_enabled=True, retention_in_days=7)",
                )
            )
    return found


def _password_paths(x: Any, path: str = "") -> Iterator[str]:
    """Paths of non-empty password values; a value unknown in preview (a generated password) counts as one."""
    if isinstance(x, Mapping):
        for key in x:
            sub = f"{path}.{key}" if path else str(key)
            v = peek(x, key)
            if "password" in str(key).lower() and (v is UNKNOWN or (isinstance(v, str) and v)):
                yield sub
            elif v is not UNKNOWN:
                yield from _password_paths(v, sub)
    elif isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        for i in range(len(x)):
            v = peek(x, i)
            if v is not UNKNOWN:
                yield from _password_paths(v, f"{path}[{i}]")


def _covered(path: str, secret_paths: set[str]) -> bool:
    return any(path == s or path.startswith(s + ".") or path.startswith(s + "[") for s in secret_paths)


def check_password_inputs_secret(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every non-empty input whose name contains "password" reaches the engine as a secret.

    Offline (``PlannedResource``) the rule checks the input itself via ``secret_paths``. The real pack cannot: the
    pulumi-policy analyzer hands rules plain values with the secret marker removed. There the rule checks what it
    can see, that the password's top-level property is in ``opts.additional_secret_outputs`` (so it is encrypted in
    the state); the input side is covered by config validation, which refuses a plaintext ``dbPassword``.
    """
    rule_id = "password-inputs-secret"
    found = []
    for r in resources:
        if r.resource_type.startswith("pulumi:"):
            # The stack's outputs and the providers' config are not resource inputs; the pack cannot see their
            # secretness (pulumi-policy drops the secret marker) and they have no additional_secret_outputs.
            continue
        paths = list(_password_paths(r.props))
        if not paths:
            continue
        secret_paths = getattr(r, "secret_paths", None)
        if secret_paths is not None:
            for p in paths:
                if not _covered(p, set(secret_paths)):
                    found.append(
                        _finding(
                            rule_id,
                            r,
                            f"input {p} is a password sent in plain text; wrap it in "
                            "pulumi.Output.secret(...) or set it with `pulumi config set --secret`",
                        )
                    )
            continue
        opts = getattr(r, "opts", None)
        marked = set(items(getattr(opts, "additional_secret_outputs", None)))
        marked |= set(items(getattr(r, "additional_secret_outputs", None)))
        for p in paths:
            top = p.split(".")[0].split("[")[0]
            if top not in marked:
                found.append(
                    _finding(
                        rule_id,
                        r,
                        f"property {top} holds a password but is not in additional_secret_outputs; "
                        "it would be stored in plain text in the state",
                    )
                )
    return found


def check_required_tags(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every taggable OCI resource carries freeformTags ``project`` and ``stack``, matching its URN."""
    found = []
    for r in resources:
        if not r.resource_type.startswith("oci:") or r.resource_type in UNTAGGABLE_TYPES:
            continue
        tags = value(r, "freeformTags")
        stack, project = urn_stack_project(r.urn)
        expected = {"project": project, "stack": stack}
        problems = []
        for key in REQUIRED_TAGS:
            got = get(tags, key)
            if not got:
                problems.append(f"missing tag {key!r}")
            elif expected[key] and got != expected[key]:
                problems.append(f"tag {key}={got!r}, but the resource belongs to {key} {expected[key]!r}")
        if problems:
            found.append(
                _finding(
                    "required-tags",
                    r,
                    "; ".join(problems) + f" (freeformTags must include project and stack, e.g. {expected})",
                )
            )
    return found


def check_db_alarm_to_topic(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every MySQL DB system is watched by at least one enabled alarm whose query was computed from it and whose
    destinations include a Notifications topic of the stack.

    Linked by URN (the alarm's ``propertyDependencies`` of ``query`` and ``destinations``), so the rule decides in a
    preview of a fresh stack too, where the query (it embeds the DB system's OCID) and the topic id are unknown.
    """
    watched: set[str] = set()
    for alarm in of_type(resources, MONITORING_ALARM):
        enabled = peek(alarm.props, "isEnabled")
        if enabled is not UNKNOWN and not truthy(enabled):
            continue
        topics = linked(resources, alarm, "destinations", NOTIFICATION_TOPIC)
        dbs = linked(resources, alarm, "query", MYSQL_DB_SYSTEM)
        # Without dependency records (a topic or DB of another stack, given as a literal id), confirm by provider
        # ids once they are known: the topic's id among the destinations, the DB system's id in the query's filter.
        if not topics:
            dests = peek(alarm.props, "destinations")
            ids = {peek(dests, i) for i in range(len(items(dests)))}
            topics = [t for t in of_type(resources, NOTIFICATION_TOPIC) if peek_id(t) in ids]
        if not dbs:
            query = peek(alarm.props, "query")
            if isinstance(query, str):
                dbs = [d for d in of_type(resources, MYSQL_DB_SYSTEM) if (i := peek_id(d)) and f'"{i}"' in query]
        if topics:
            watched.update(db.urn for db in dbs)
    return [
        _finding(
            "db-alarm-to-topic",
            db,
            "no enabled alarm watches this DB system and notifies a topic; build the stack's Operations tier "
            "(components/operations.py): an oci.monitoring.Alarm whose query filters {resourceId = <the DB "
            "system's id>} with destinations=[an oci.ons.NotificationTopic's id]",
        )
        for db in of_type(resources, MYSQL_DB_SYSTEM)
        if db.urn not in watched
    ]


STUDENT_TAG = "student"


def _defined_student_tag(r: ResourceLike) -> tuple[str, object] | None:
    """``(<namespace>.student, value)`` of a resource's defined tags, when it has the class layer's student tag
    (components/classtag.py: the key is ``<namespace>.student``)."""
    tags = value(r, "definedTags")
    if not isinstance(tags, dict):
        return None
    for k, v in tags.items():
        if isinstance(k, str) and k.endswith(f".{STUDENT_TAG}") and k.count(".") == 1:
            return k, v
    return None


def check_student_tag(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every taggable OCI resource carries the freeform tag ``student``, one value for the whole stack; once the
    class layer exists (some resource has the defined tag ``<namespace>.student``), every one carries that defined
    tag too, with the same value.

    Per-student metering reads cost and usage by this tag (issue 13, "metering back"); a resource without it is
    billed to nobody. The value comes from config ``studentId`` (components/config.py ``LabConfig.tags``); the
    defined tag from ``studentTagNamespace`` (components/classtag.py), the one budgets can target.
    """
    taggable = [r for r in resources if r.resource_type.startswith("oci:") and r.resource_type not in UNTAGGABLE_TYPES]
    values: dict[str, int] = {}
    for r in taggable:
        v = get(value(r, "freeformTags"), STUDENT_TAG)
        if isinstance(v, str) and v:
            values[v] = values.get(v, 0) + 1
    usual = max(values, key=lambda v: (values[v], v)) if values else None
    defined_keys = {d[0] for r in taggable if (d := _defined_student_tag(r))}
    found = []
    for r in taggable:
        v = get(value(r, "freeformTags"), STUDENT_TAG)
        d = _defined_student_tag(r)
        if not (isinstance(v, str) and v):
            found.append(
                _finding(
                    "student-tag",
                    r,
                    "missing freeform tag 'student' (per-student cost reports read it); set the stack's studentId, "
                    "e.g. `pulumi config set studentId a23-042`, and pass LabConfig.tags to the resource",
                )
            )
        elif v != usual:
            found.append(
                _finding(
                    "student-tag",
                    r,
                    f"tag student={v!r}, but the rest of the stack is tagged student={usual!r}; one stack, one student",
                )
            )
        elif defined_keys and d is None:
            key = sorted(defined_keys)[0]
            found.append(
                _finding(
                    "student-tag",
                    r,
                    f"missing defined tag {key} (the class layer's cost-tracking tag; budgets read it) that the rest "
                    "of the stack carries; declare the resource with freeform_tags=LabConfig.tags so the stack's "
                    "tag transformation (components/classtag.py) adds it",
                )
            )
        elif d is not None and d[1] != v:
            found.append(
                _finding(
                    "student-tag",
                    r,
                    f"defined tag {d[0]}={d[1]!r} disagrees with the freeform tag student={v!r}; "
                    "one stack, one student",
                )
            )
    return found


RULES: tuple[Rule, ...] = (
    Rule(
        id="security-list-no-admin-ports-from-internet",
        description="No security list opens port 22 (SSH) or 3389 (RDP) to 0.0.0.0/0, to a source that is not "
        "public unicast (private, loopback, multicast, ...), or to one wider than a /16.",
        level=MANDATORY,
        source="CIS OCI Foundations Benchmark v1.2.0 2.1 and 2.2; checkov CKV_OCI_19 (port 22), CKV_OCI_20 "
        "(port 3389); stricter here: sources must be public unicast (IANA IPv4 special-purpose registry, RFC 6890) "
        "and at most a /16",
        check=check_security_list_admin_ports,
    ),
    Rule(
        id="nsg-no-admin-ports-from-internet",
        description="No network security group opens port 22 (SSH) or 3389 (RDP) to 0.0.0.0/0, to a source that "
        "is not public unicast, or to one wider than a /16.",
        level=MANDATORY,
        source="CIS OCI Foundations Benchmark v1.2.0 2.3 and 2.4; checkov CKV_OCI_22 (port 22); stricter here: sources "
        "must be public unicast (IANA IPv4 special-purpose registry, RFC 6890) and at most a /16",
        check=check_nsg_admin_ports,
    ),
    Rule(
        id="default-security-list-no-ingress",
        description="Each VCN's default security list is managed by the program and has no ingress rules.",
        level=MANDATORY,
        source="CIS OCI Foundations Benchmark v1.2.0 2.5 'Ensure the default security list of every VCN restricts "
        "all traffic except ICMP' (this lab is stricter: no ingress at all)",
        check=check_default_security_list,
    ),
    Rule(
        id="db-port-only-from-app-subnet",
        description="Database ports (3306, 33060) are open only to the app subnet's CIDR.",
        level=MANDATORY,
        source="oci-dblab network design (README: 'TCP 3306 and 33060 from the public subnet's CIDR only'); "
        "no CIS OCI or checkov control covers database ports, this applies CIS OCI v1.2.0 section 2's "
        "least-access principle to them",
        check=check_db_port_only_from_app_subnet,
    ),
    Rule(
        id="no-public-ip-in-private-subnet",
        description="The DB system's subnet prohibits public IPs; no instance asks for one in such a subnet.",
        level=MANDATORY,
        source="turbot steampipe-mod-terraform-oci-compliance control vcn_subnet_public_access_blocked 'Ensure "
        "subnets are not publicly accessible'; CIS OCI Foundations Benchmark v1.2.0 2.8 (same intent, for ADB)",
        check=check_no_public_ip_in_private_subnet,
    ),
    Rule(
        id="legacy-imds-disabled",
        description="Compute instances disable the legacy (v1) instance metadata endpoints.",
        level=MANDATORY,
        source="CIS OCI Foundations Benchmark v2.0.0 3.1 'Ensure Compute Instance Legacy Metadata service endpoint "
        "is disabled'; checkov CKV_OCI_5",
        check=check_legacy_imds_disabled,
    ),
    Rule(
        id="boot-volume-in-transit-encryption",
        description="Compute instances encrypt their boot volume's paravirtualized attachment in transit.",
        level=MANDATORY,
        source="CIS OCI Foundations Benchmark v3.0.0 3.3 'Ensure In-transit Encryption is enabled on Compute "
        "Instance' (Level 1); checkov CKV_OCI_4",
        check=check_boot_volume_in_transit_encryption,
    ),
    Rule(
        id="instance-monitoring-enabled",
        description="Compute instances keep the Oracle Cloud Agent monitoring plugin on.",
        level=ADVISORY,
        source="checkov CKV_OCI_6 'Ensure OCI Compute Instance has monitoring enabled'; no CIS OCI control "
        "(CIS OCI v3.0.0 section 3 Compute has only 3.1-3.3)",
        check=check_instance_monitoring_enabled,
    ),
    Rule(
        id="password-inputs-secret",
        description="Password inputs reach the engine as secrets, never in plain text.",
        level=MANDATORY,
        source="checkov CKV_OCI_1 'Ensure no hard coded OCI private key in provider' (same concern, applied to the "
        "DB admin password); Pulumi secrets (pulumi config set --secret)",
        check=check_password_inputs_secret,
        offline_only_part="secretness of the input value (the real pack sees only additional_secret_outputs)",
    ),
    Rule(
        id="db-backups-enabled",
        description="MySQL DB systems have automatic backups enabled (MySQL.Free: always, by OCI, kept 1 day).",
        level=ADVISORY,
        source="checkov CKV_OCI_2 'Ensure OCI Block Storage Block Volume has backup enabled' (same control, applied "
        "to the MySQL DB system; neither CIS OCI nor checkov has one for MySQL HeatWave)",
        check=check_db_backups_enabled,
    ),
    Rule(
        id="required-tags",
        description="OCI resources carry the freeform tags project and stack.",
        level=ADVISORY,
        source="CIS OCI Foundations Benchmark v2.0.0 4.1 'Ensure default tags are used on resources' (same intent, "
        "with freeform tags set by the program)",
        check=check_required_tags,
    ),
    Rule(
        id="db-alarm-to-topic",
        description="Every MySQL DB system has an enabled Monitoring alarm on it that notifies a Notifications topic.",
        level=ADVISORY,
        source="CIS OCI Foundations Benchmark v2.0.0 section 4 'Logging and Monitoring' (its 'Ensure a notification is "
        "configured for ...' controls route what matters to a Notifications topic); same intent applied to the "
        "database's health (issue 13, 'proactive alerting')",
        check=check_db_alarm_to_topic,
    ),
    Rule(
        id="student-tag",
        description="OCI resources carry the freeform tag student, and the class layer's defined tag "
        "<namespace>.student when it exists, one value per stack (per-student metering).",
        level=ADVISORY,
        source="CIS OCI Foundations Benchmark v2.0.0 4.1 'Ensure default tags are used on resources' (same intent); "
        "OCI cost-tracking tags (issue 13 'metering that sets usage parameters per tenant')",
        check=check_student_tag,
    ),
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
ADMIN_RULE_CHECKS: dict[str, Callable[..., list[Finding]]] = {
    "security-list-no-admin-ports-from-internet": check_security_list_admin_ports,
    "nsg-no-admin-ports-from-internet": check_nsg_admin_ports,
}


def rules_with_admin_limit(min_prefix: int) -> tuple[Rule, ...]:
    """``RULES`` with the admin-port rules judging sources against ``/min_prefix`` instead of the default /16
    (class.yaml ``adminCidrMinPrefix``)."""
    if min_prefix == ADMIN_SOURCE_MIN_PREFIX:
        return RULES
    out = []
    for rule in RULES:
        check = ADMIN_RULE_CHECKS.get(rule.id)
        if check is not None:
            rule = Rule(
                rule.id,
                rule.description.replace("/16", f"/{min_prefix}"),
                rule.level,
                rule.source,
                functools.partial(check, min_prefix=min_prefix),
                rule.offline_only_part,
            )
        out.append(rule)
    return tuple(out)


_LEVEL_ORDER = {MANDATORY: 0, ADVISORY: 1}


def _finding(rule_id: str, r: ResourceLike, message: str) -> Finding:
    rule = RULES_BY_ID.get(rule_id)
    level = rule.level if rule else MANDATORY
    source = rule.source if rule else ""
    return Finding(rule=rule_id, level=level, urn=r.urn, name=r.name, message=message, source=source)


@dataclass(frozen=True)
class _WithoutSecretPaths:
    """A resource as the real pack sees it: no record of which inputs were secret."""

    resource_type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    outputs: Mapping[str, Any]
    id: str | None
    additional_secret_outputs: tuple[str, ...]


def _without_secret_paths(r: ResourceLike) -> _WithoutSecretPaths:
    return _WithoutSecretPaths(
        resource_type=r.resource_type,
        name=r.name,
        urn=r.urn,
        props=r.props,
        outputs=getattr(r, "outputs", None) or {},
        id=resource_id(r),
        additional_secret_outputs=tuple(items(getattr(r, "additional_secret_outputs", None))),
    )


def evaluate(
    resources: Sequence[ResourceLike], rules: Sequence[Rule] = RULES, *, secret_aware: bool = True
) -> list[Finding]:
    """Every finding of every rule, mandatory first, then by rule id, resource URN and message.

    ``secret_aware=False`` drops the offline record of secret inputs (``secret_paths``), so the result is what the
    real pack would report for the same resources.
    """
    if not secret_aware:
        resources = [_without_secret_paths(r) for r in resources]
    found = [f for rule in rules for f in rule.check(resources)]
    return sorted(set(found), key=lambda f: (_LEVEL_ORDER.get(f.level, 9), f.rule, f.urn, f.message))
