"""Security lists, NSGs and the internet gateway as nftables rulesets (text; ``labctl local rules`` prints them).

Per host, one ``inet`` table on that host's VNIC (its only interface besides ``lo``), built from the normalised rules
of ``components/ocimodel.py`` (``SecurityRule``: the union of the subnet's security lists and the VNIC's NSGs, as
``labctl/reach.py`` evaluates them):

- ``ingress`` (hook input) and ``egress`` (hook output) chains, ``policy drop``: OCI security rules only allow, and
  a packet no rule allows is dropped (https://docs.oracle.com/en-us/iaas/Content/Network/Concepts/securityrules.htm);
- a **stateful** rule accepts the packet and marks its connection (``ct mark``); replies of a marked connection are
  accepted in both chains (``ct state established,related``), which is OCI's connection tracking;
- a **stateless** rule is a plain match that accepts every packet it covers and marks nothing, so the reply needs a
  rule of its own in the other direction. Stateless rules come first: when a stateless and a stateful rule both
  match, the packet is handled as stateless (the stricter reading, the same as ``labctl/reach.py``);
- TCP/UDP port ranges are ``dport``/``sport`` matches, ICMP type/code ``icmp type``/``icmp code``, ``all`` matches
  every protocol; an NSG peer is the set of this lab's host addresses in that NSG.

The router's table is the internet gateway: 1:1 NAT of a public IP to its private IP, nothing from the internet to a
private IP, and nothing out to the internet from a VNIC without a public IP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from components.ocimodel import ICMP, TCP, UDP, PortRange, SecurityRule
from labctl.local.topology import Host, Topology

MARK = "0x1"  # connections a stateful rule allowed
ICMPV6 = "58"


def _ports(rng: PortRange) -> str:
    return str(rng[0]) if rng[0] == rng[1] else f"{rng[0]}-{rng[1]}"


def _protocol(rule: SecurityRule, family: int) -> str:
    p = rule.protocol
    if p == "all":
        return ""
    if p in (TCP, UDP):
        name = "tcp" if p == TCP else "udp"
        parts = []
        if rule.dst_ports is not None:
            parts.append(f"{name} dport {_ports(rule.dst_ports)}")
        if rule.src_ports is not None:
            parts.append(f"{name} sport {_ports(rule.src_ports)}")
        return " ".join(parts) or f"meta l4proto {name}"
    if p == ICMP and family == 4:
        if rule.icmp_type is None:
            return "meta l4proto icmp"
        code = "" if rule.icmp_code is None else f" icmp code {rule.icmp_code}"
        return f"icmp type {rule.icmp_type}{code}"
    if p == ICMPV6:
        return "meta l4proto ipv6-icmp"
    return f"meta l4proto {p}"


def _peer(rule: SecurityRule, nsg_members: Mapping[str, tuple[str, ...]]) -> tuple[str, int] | str:
    """(``ip saddr X`` match, IP version), or a reason the rule matches nothing in this lab."""
    key = "saddr" if rule.direction == "INGRESS" else "daddr"
    if rule.peer_type == "NETWORK_SECURITY_GROUP":
        addrs = nsg_members.get(rule.peer, ())
        if not addrs:
            return f"NSG {rule.peer} has no VNIC in this lab"
        return f"ip {key} {{ {', '.join(sorted(addrs))} }}", 4
    if rule.peer_type == "SERVICE_CIDR_BLOCK":
        return "Oracle Services Network peers are not rehearsed"
    try:
        net = ipaddress.ip_network(rule.peer, strict=False)
    except ValueError:
        return f"peer {rule.peer!r} is not a CIDR block"
    return f"{'ip' if net.version == 4 else 'ip6'} {key} {net}", net.version


def rule_line(rule: SecurityRule, ifname: str, nsg_members: Mapping[str, tuple[str, ...]]) -> str:
    """One nftables rule (with its source as a comment line above it) for one security rule."""
    comment = f"# {rule.describe()}"
    peer = _peer(rule, nsg_members)
    if isinstance(peer, str):
        return f"{comment}\n# skipped: {peer}"
    match, family = peer
    proto = _protocol(rule, family)
    if rule.protocol == ICMP and family == 6:
        return f"{comment}\n# skipped: ICMP (protocol 1) does not apply to an IPv6 peer"
    iface = f'iifname "{ifname}"' if rule.direction == "INGRESS" else f'oifname "{ifname}"'
    verdict = "accept" if rule.stateless else f"ct mark set {MARK} accept"
    return f"{comment}\n{' '.join(x for x in (iface, match, proto, verdict) if x)}"


def _chain(name: str, hook: str, ifname: str, rules: list[SecurityRule], nsg: Mapping[str, tuple[str, ...]]) -> str:
    lo = 'iifname "lo" accept' if hook == "input" else 'oifname "lo" accept'
    body = [
        f"type filter hook {hook} priority filter; policy drop;",
        lo,
        "# replies of connections a stateful rule allowed (OCI connection tracking)",
        f"ct mark {MARK} ct state established,related accept",
    ]
    ordered = [r for r in rules if r.stateless] + [r for r in rules if not r.stateless]
    if not ordered:
        body.append(f"# no {name} rule: every packet is dropped")
    body += [rule_line(r, ifname, nsg) for r in ordered]
    lines = "\n".join("    " + line for block in body for line in block.split("\n"))
    return f"  chain {name} {{\n{lines}\n  }}"


def host_ruleset(host: Host, table: str, nsg_members: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """The ``inet`` table for ``host``'s VNIC: its security lists and NSGs, ingress and egress, default drop."""
    nsg = nsg_members or {}
    ingress = [r for r in host.rules if r.direction == "INGRESS"]
    egress = [r for r in host.rules if r.direction == "EGRESS"]
    return (
        f"# {host.label}: VNIC {host.ifname}, private IP {host.address}"
        + (f", subnet {host.subnet}" if host.subnet else "")
        + "\n"
        + f"table inet {table} {{\n"
        + _chain("ingress", "input", host.ifname, ingress, nsg)
        + "\n"
        + _chain("egress", "output", host.ifname, egress, nsg)
        + "\n}\n"
    )


def router_ruleset(topo: Topology) -> str:
    """The internet gateway on the router: 1:1 NAT for public IPs; private IPs are not reachable from the internet."""
    table = topo.names.table()
    inet_if = topo.internet.router_ifname
    pre = [f'iifname "{inet_if}" ip daddr {pub} dnat to {priv}' for pub, priv in topo.nat]
    post = [f'oifname "{inet_if}" ip saddr {priv} snat to {pub}' for pub, priv in topo.nat]
    publics = ", ".join(priv for _, priv in topo.nat)
    forward = [
        f'iifname "{inet_if}" ct state established,related accept',
        "# from the internet only a public IP leads in (the gateway translated it to its private IP)",
        f'iifname "{inet_if}" ct status dnat accept',
        "# the internet does not route to private IPs",
        f'iifname "{inet_if}" drop',
    ]
    if publics:
        forward += [
            "# only VNICs with a public IP leave through the internet gateway",
            f'oifname "{inet_if}" ip saddr {{ {publics} }} accept',
        ]
    forward += ["# a VNIC without a public IP cannot use the internet gateway", f'oifname "{inet_if}" drop']

    def chain(name: str, head: str, lines: list[str]) -> str:
        body = "\n".join("    " + x for x in [head, *lines])
        return f"  chain {name} {{\n{body}\n  }}"

    gw = topo.gateway or "(no internet gateway declared)"
    return (
        f"# VCN router and internet gateway {gw}: public IP <-> private IP\n"
        f"table ip {table} {{\n"
        + chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", pre)
        + "\n"
        + chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", post)
        + "\n"
        + chain("forward", "type filter hook forward priority filter; policy accept;", forward)
        + "\n}\n"
    )


def render(topo: Topology) -> str:
    """Every ruleset of the lab, as ``labctl local rules`` prints it."""
    parts = [host_ruleset(h, topo.names.table(), topo.nsg_members) for h in topo.hosts]
    parts.append(router_ruleset(topo))
    return "\n".join(parts)
