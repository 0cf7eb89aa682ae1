"""Pure CIDR planning for the lab network (no Pulumi, no OCI).

OCI facts used here: a VCN CIDR is between /16 and /30, a subnet at most /30 (OCI reserves the first two and the
last address of every subnet), and both should come from the private ranges of RFC 1918.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
VCN_MIN_PREFIX = 16  # largest VCN OCI allows
VCN_MAX_PREFIX = 29  # smallest VCN that still holds two /30 subnets
SUBNET_MAX_PREFIX = 30  # smallest subnet OCI allows
DEFAULT_SUBNET_PREFIX = 24


@dataclass(frozen=True)
class SubnetPlan:
    public: ipaddress.IPv4Network
    private: ipaddress.IPv4Network


def default_subnets(vcn: ipaddress.IPv4Network) -> SubnetPlan:
    """The two subnets we carve out of ``vcn`` when the user names none.

    /24s (the usual lab layout: 10.0.0.0/24 public, 10.0.1.0/24 private) when the VCN is /23 or larger,
    otherwise the two halves of the VCN.
    """
    if vcn.prefixlen > VCN_MAX_PREFIX:
        raise ValueError(f"{vcn} is too small to hold two subnets (largest prefix is /{VCN_MAX_PREFIX})")
    prefix = max(DEFAULT_SUBNET_PREFIX, vcn.prefixlen + 1)
    first, second = _first_two(vcn, prefix)
    return SubnetPlan(public=first, private=second)


def _first_two(vcn: ipaddress.IPv4Network, prefix: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    it = vcn.subnets(new_prefix=prefix)
    return next(it), next(it)


def is_private_range(net: ipaddress.IPv4Network) -> bool:
    return any(net.subnet_of(r) for r in RFC1918)


def usable_hosts(net: ipaddress.IPv4Network) -> int:
    """Addresses OCI lets instances use in a subnet (network, gateway and broadcast are reserved)."""
    return max(net.num_addresses - 3, 0)


# The service CIDR label of "All <region> Services in Oracle Services Network": OCI lists it with the others of the
# region (ListServices; `oci network service list` prints e.g. cidr-block "all-gru-services-in-oracle-services-network",
# name "All GRU Services In Oracle Services Network"). The region's Oracle Linux yum mirror is one of those services
# (docs.oracle.com/iaas/Content/General/Concepts/addressranges.htm: the Oracle YUM repo endpoints, and the Oracle
# Services Network addresses that "correspond to the service CIDR label called All <region> Services in Oracle
# Services Network"; OCI release note 2019-03-11 "Service gateway access to Oracle Services Network" on reaching Yum
# through it), so a private subnet with a route to it through a service gateway installs OS packages without any
# internet route (docs.oracle.com/iaas/Content/Network/Tasks/servicegateway.htm: "No internet gateway or NAT is
# required to reach those specific services. The resources in the VCN can be in a private subnet").
ALL_SERVICES_NAME = re.compile(r"^All .+ Services In Oracle Services Network\Z", re.IGNORECASE)


@dataclass(frozen=True)
class OracleServices:
    id: str
    cidr_block: str  # the service CIDR label, e.g. all-iad-services-in-oracle-services-network
    name: str


def all_oracle_services(services: list[Any]) -> OracleServices:
    """The "All <region> Services in Oracle Services Network" entry of ListServices (objects or dicts).

    Raises ``ValueError`` naming what the region offered when it has none (then no DB VM can get its packages).
    """

    def field(s: Any, key: str, camel: str) -> str:
        return str((s.get(key) or s.get(camel)) if isinstance(s, dict) else getattr(s, key, ""))

    names = []
    for s in services or []:
        name = field(s, "name", "name")
        names.append(name)
        if ALL_SERVICES_NAME.match(name):
            return OracleServices(id=field(s, "id", "id"), cidr_block=field(s, "cidr_block", "cidrBlock"), name=name)
    raise ValueError(
        "the region lists no 'All <region> Services in Oracle Services Network' service for a service gateway "
        f"(it lists: {', '.join(names) or 'nothing'}); a DB VM in the private subnet could not install its packages"
    )
