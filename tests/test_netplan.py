"""CIDR planning, without Pulumi."""

from __future__ import annotations

import ipaddress

import pytest

from components.netplan import default_subnets, is_private_range, usable_hosts


@pytest.mark.parametrize(
    ("vcn", "public", "private"),
    [
        ("10.0.0.0/16", "10.0.0.0/24", "10.0.1.0/24"),
        ("172.16.0.0/23", "172.16.0.0/24", "172.16.1.0/24"),
        ("192.168.4.0/24", "192.168.4.0/25", "192.168.4.128/25"),
        ("10.9.8.0/29", "10.9.8.0/30", "10.9.8.4/30"),
    ],
)
def test_default_subnets(vcn, public, private):
    plan = default_subnets(ipaddress.ip_network(vcn))
    assert (str(plan.public), str(plan.private)) == (public, private)
    assert not plan.public.overlaps(plan.private)


def test_too_small_vcn_is_refused():
    with pytest.raises(ValueError, match="too small"):
        default_subnets(ipaddress.ip_network("10.0.0.0/30"))


def test_private_range_and_usable_hosts():
    assert is_private_range(ipaddress.ip_network("172.31.0.0/16"))
    assert not is_private_range(ipaddress.ip_network("172.32.0.0/16"))
    assert usable_hosts(ipaddress.ip_network("10.0.0.0/24")) == 253
    assert usable_hosts(ipaddress.ip_network("10.0.0.0/30")) == 1
