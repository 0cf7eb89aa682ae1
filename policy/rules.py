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

The resource model (type tokens, property helpers, security rules) is ``components/ocimodel.py``; the declared
databases come from the engine registry (``engines``: each engine's ``endpoints`` and ``backup_problem``), so no rule
names an engine's resource types.

This module constructs no ``PolicyPack`` and imports nothing from pulumi-policy: importing it has no side effects.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import engines
from components.ocimodel import (
    DEFAULT_ROUTE_TABLE,
    DEFAULT_SECURITY_LIST,
    INSTANCE,
    INTERNET_GATEWAY,
    MONITORING_ALARM,
    NAT_GATEWAY,
    NOTIFICATION_TOPIC,
    NSG_RULE,
    ROUTE_TABLE,
    SECURITY_LIST,
    SUBNET,
    UNKNOWN,
    VCN,
    ResourceLike,
    SecurityRule,
    contains,
    get,
    is_unknown,
    items,
    linked,
    network,
    of_type,
    peek,
    peek_id,
    peek_output,
    resource_id,
    security_rules,
    subnets_of,
    truthy,
    urn_stack_project,
    value,
)
from engines.base import EndpointModel

MANDATORY = "mandatory"
ADVISORY = "advisory"

ADMIN_PORTS = (22, 3389)  # SSH, RDP
# Every port a registered engine listens on (engines/<name>.py port and extra_ports), declared DBs or not.
DB_PORTS = tuple(sorted({p for e in engines.ENGINES.values() for p in (e.port, *e.extra_ports)}))
REQUIRED_TAGS = ("project", "stack")
# OCI resource types that have no freeform tags of their own.
UNTAGGABLE_TYPES = frozenset({NSG_RULE})


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


def app_instances(resources: Sequence[ResourceLike]) -> list[ResourceLike]:
    """The app tier's instances: every declared instance that is not a database's endpoint (a DB-VM engine's VM)."""
    db_urns = {ep.urn for ep in db_endpoints(resources)}
    return [r for r in of_type(resources, INSTANCE) if r.urn not in db_urns]


def app_subnet_cidrs(resources: Sequence[ResourceLike]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDRs of the app tier: the subnets the app instances sit in, else every subnet that allows public IPs."""
    cidrs = []
    for inst in app_instances(resources):
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


def db_endpoints(resources: Sequence[ResourceLike]) -> list[EndpointModel]:
    """The declared databases of every engine (each engine's ``endpoints`` hook finds its own)."""
    return [ep for engine in engines.ENGINES.values() for ep in engine.endpoints(resources)]


def db_ports(resources: Sequence[ResourceLike]) -> tuple[int, ...]:
    """The ports of every registered engine plus whatever ports the declared databases listen on."""
    ports = set(DB_PORTS)
    for ep in db_endpoints(resources):
        ports.update(ep.ports)
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
    for ep in db_endpoints(resources):
        db = ep.resource
        subs = linked(resources, db, ep.subnet_prop, SUBNET, known_id=ep.subnet_id)
        if not subs:
            subnet_id = ep.subnet_id
            shown = "(unknown until up)" if subnet_id is UNKNOWN or is_unknown(subnet_id) else repr(subnet_id)
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


def _route_gateways(resources: Sequence[ResourceLike], rt: ResourceLike) -> list[ResourceLike]:
    """The internet and NAT gateways a route table's rules send traffic to: by each rule's known target id, else (ids
    unknown in a preview) by the URNs the rules were computed from."""
    found: dict[str, ResourceLike] = {}
    for rule in items(peek(rt.props, "routeRules")):
        target = peek(rule, "networkEntityId")
        known = target if isinstance(target, str) and not is_unknown(target) else None
        for gw in linked(resources, rt, "routeRules", INTERNET_GATEWAY, NAT_GATEWAY, known_id=known):
            found[gw.urn] = gw
    return list(found.values())


def check_db_subnet_no_internet_route(resources: Sequence[ResourceLike]) -> list[Finding]:
    """The database's subnet has no route to the internet: no route rule to an internet gateway or a NAT gateway.

    A service gateway route (the DB-VM engines' way to the OS package mirror in Oracle Services Network) is allowed:
    its traffic "does not traverse the internet" (OCI docs, "Access to Oracle Services: Service Gateway"). Linked by
    URN (the route table's ``routeRules`` and the subnet's ``routeTableId`` dependencies), so it decides in preview.
    """
    rule_id = "db-subnet-no-internet-route"
    found = []
    for ep in db_endpoints(resources):
        for sub in linked(resources, ep.resource, ep.subnet_prop, SUBNET, known_id=ep.subnet_id):
            tables = linked(
                resources,
                sub,
                "routeTableId",
                ROUTE_TABLE,
                DEFAULT_ROUTE_TABLE,
                known_id=peek(sub.props, "routeTableId"),
            )
            for rt in tables:
                for gw in _route_gateways(resources, rt):
                    kind = "an internet gateway" if gw.resource_type == INTERNET_GATEWAY else "a NAT gateway"
                    found.append(
                        _finding(
                            rule_id,
                            rt,
                            f"route table {rt.name} of the database's subnet {sub.name} routes to {kind} ({gw.name}); "
                            "the DB subnet must have no way to the internet (a service gateway to Oracle Services "
                            "Network is enough for OS packages)",
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


def check_db_backups_enabled(resources: Sequence[ResourceLike]) -> list[Finding]:
    """Every declared database has automatic backups on, as its engine judges it (``Engine.backup_problem``: e.g.
    a managed DB system's backup policy, except on shapes OCI backs up by itself)."""
    found = []
    for ep in db_endpoints(resources):
        why = engines.get(ep.engine).backup_problem(ep.resource)
        if why:
            found.append(_finding("db-backups-enabled", ep.resource, why))
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
    """Every declared database (``db_endpoints``) is watched by at least one enabled alarm whose query was computed
    from it and whose destinations include a Notifications topic of the stack.

    Linked by URN (the alarm's ``propertyDependencies`` of ``query`` and ``destinations``), so the rule decides in a
    preview of a fresh stack too, where the query (it embeds the DB system's OCID) and the topic id are unknown.
    """
    declared = [ep.resource for ep in db_endpoints(resources)]
    db_urns = {db.urn for db in declared}
    db_types = tuple({db.resource_type for db in declared})
    watched: set[str] = set()
    for alarm in of_type(resources, MONITORING_ALARM):
        enabled = peek(alarm.props, "isEnabled")
        if enabled is not UNKNOWN and not truthy(enabled):
            continue
        topics = linked(resources, alarm, "destinations", NOTIFICATION_TOPIC)
        dbs = [d for d in linked(resources, alarm, "query", *db_types) if d.urn in db_urns]
        # Without dependency records (a topic or DB of another stack, given as a literal id), confirm by provider
        # ids once they are known: the topic's id among the destinations, the DB system's id in the query's filter.
        if not topics:
            dests = peek(alarm.props, "destinations")
            ids = {peek(dests, i) for i in range(len(items(dests)))}
            topics = [t for t in of_type(resources, NOTIFICATION_TOPIC) if peek_id(t) in ids]
        if not dbs:
            query = peek(alarm.props, "query")
            if isinstance(query, str):
                dbs = [d for d in declared if (i := peek_id(d)) and f'"{i}"' in query]
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
        for db in declared
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
        description=f"Database ports ({', '.join(map(str, DB_PORTS))}: every engine's) are open only to the app "
        "subnet's CIDR.",
        level=MANDATORY,
        source="oci-dblab network design (README: the DB ports from the public subnet's CIDR only); "
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
        id="db-subnet-no-internet-route",
        description="The database's subnet routes nothing to an internet or NAT gateway (a service gateway is fine).",
        level=MANDATORY,
        source="oci-dblab network design (the private subnet has no route to the internet; DB-VM engines reach the OS "
        "package mirror through a service gateway, docs.oracle.com/iaas/Content/Network/Tasks/servicegateway.htm); "
        "CIS OCI Foundations Benchmark v1.2.0 section 2 least access applied to routes",
        check=check_db_subnet_no_internet_route,
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
        description="Declared databases have automatic backups enabled, as their engine judges it (e.g. an Always "
        "Free DB system: always, by OCI).",
        level=ADVISORY,
        source="checkov CKV_OCI_2 'Ensure OCI Block Storage Block Volume has backup enabled' (same control, applied "
        "to the database; neither CIS OCI nor checkov has one for the lab's database services)",
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
        description="Every declared database has an enabled Monitoring alarm on it that notifies a Notifications "
        "topic.",
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
