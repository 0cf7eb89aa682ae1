"""The neutral OCI resource model: type tokens, property helpers and security rules, for any resource of a stack.

Engine-neutral: the type tokens here are OCI's network, compute and monitoring resources; a database engine's own
tokens live only in its module under ``engines/`` (the registry's ``ENGINE_RESOURCE_TYPES``). Used by the policy rules
(``policy/rules.py``), reachability (``labctl/reach.py``), estimate, diff, the offline mocks and ``labctl local``.

The resources may be pulumi-policy ``PolicyResource`` objects (the real pack) or ``labctl.offline.PlannedResource``
objects (offline): both have ``resource_type``, ``name``, ``urn``, ``props`` and the engine's dependency records.
In the real pack ``props`` are the engine's view (including provider outputs such as ``id`` once known); offline,
ids and provider outputs live in ``id``/``outputs``. ``output()`` and ``resource_id()`` look in both places. Nested
values may be pulumi-policy proxies, so the code tests for ``Mapping``/``Sequence``, never for ``dict``/``list``.
``peek()`` reads a value that may be unknown in preview without raising (see ``policy/rules.py`` for why rules link
resources by URN).

Pure: standard library only (it runs in the policy pack's virtualenv, where only pulumi-policy is installed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Type tokens as pulumi_oci 5.5.0 spells them (pulumi_oci/core/*.py, monitoring/alarm.py, ons/notification_topic.py).
SECURITY_LIST = "oci:Core/securityList:SecurityList"
DEFAULT_SECURITY_LIST = "oci:Core/defaultSecurityList:DefaultSecurityList"
NSG = "oci:Core/networkSecurityGroup:NetworkSecurityGroup"
NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
VCN = "oci:Core/vcn:Vcn"
SUBNET = "oci:Core/subnet:Subnet"
ROUTE_TABLE = "oci:Core/routeTable:RouteTable"
DEFAULT_ROUTE_TABLE = "oci:Core/defaultRouteTable:DefaultRouteTable"
INTERNET_GATEWAY = "oci:Core/internetGateway:InternetGateway"
NAT_GATEWAY = "oci:Core/natGateway:NatGateway"
SERVICE_GATEWAY = "oci:Core/serviceGateway:ServiceGateway"
INSTANCE = "oci:Core/instance:Instance"
MONITORING_ALARM = "oci:Monitoring/alarm:Alarm"
NOTIFICATION_TOPIC = "oci:Ons/notificationTopic:NotificationTopic"

TCP = "6"  # OCI writes protocols as IANA numbers; "all" matches every protocol
UDP = "17"
ICMP = "1"


class ResourceLike(Protocol):
    """What a rule reads from a resource: pulumi-policy ``PolicyResource`` and ``PlannedResource`` both fit."""

    resource_type: str
    name: str
    urn: str
    props: Mapping[str, Any]


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


def subnets_of(resources: Sequence[ResourceLike], r: ResourceLike) -> list[ResourceLike]:
    """The subnet(s) ``r`` is placed in: a DB system's ``subnetId``, an instance's ``createVnicDetails.subnetId``.

    Linked by URN (see ``linked``), so it works in a preview of a fresh stack, where the subnet id is unknown.
    """
    if r.resource_type == INSTANCE:
        return linked(
            resources, r, "createVnicDetails", SUBNET, known_id=peek(peek(r.props, "createVnicDetails"), "subnetId")
        )
    return linked(resources, r, "subnetId", SUBNET, known_id=peek(r.props, "subnetId"))
