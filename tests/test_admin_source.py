"""The admin-port source rule: one judgement in the policy rules, reachability, plan and the class flow."""

from __future__ import annotations

import pytest
from conftest import plan_of

from labctl.reach import failing, verdicts
from policy.rules import evaluate, judge_admin_source, rules_with_admin_limit

ADMIN_RULE = "security-list-no-admin-ports-from-internet"

# (source, refused?, words of the reason or warning)
TABLE = [
    ("0.0.0.0/0", True, "whole internet"),
    ("0.0.0.0/1", True, "'this network'"),
    ("128.0.0.0/1", True, "overlaps"),
    ("127.0.0.1/32", True, "loopback"),
    ("10.0.0.0/8", True, "private range (RFC 1918)"),
    ("172.16.5.0/24", True, "private range (RFC 1918)"),
    ("192.168.1.10/32", True, "private range (RFC 1918)"),
    ("100.64.0.1/32", True, "carrier-grade NAT"),
    ("169.254.169.254/32", True, "link-local"),
    ("224.0.0.0/4", True, "multicast"),
    ("239.1.2.3/32", True, "multicast"),
    ("240.0.0.0/4", True, "reserved"),
    ("255.255.255.255/32", True, "reserved"),
    ("198.18.0.1/32", True, "benchmarking"),
    ("192.0.0.8/32", True, "IETF protocol"),
    ("1.0.0.0/8", True, "wider than /16"),
    ("81.0.0.0/15", True, "wider than /16"),
    ("81.2.0.0/16", False, ""),
    ("81.2.3.4/32", False, ""),
    ("8.8.8.0/24", False, ""),
    ("203.0.113.7/32", False, "documentation range"),
    ("198.51.100.0/24", False, "documentation range"),
    ("192.0.2.1/32", False, "documentation range"),
    ("fe80::/64", True, "not a public"),
    ("2001:db8::/32", True, "not a public"),
    ("2a00:1450::/48", False, ""),
    ("2a00::/16", True, "wider than /48"),
    ("not-an-ip", True, "not a CIDR"),
]


@pytest.mark.parametrize("source,refused,words", TABLE, ids=[t[0] for t in TABLE])
def test_admin_source_rule_table(source, refused, words):
    got = judge_admin_source(source)
    assert (got.error is not None) is refused, got
    text = got.error or got.warning or ""
    assert words in text
    if not words:
        assert got.warning is None


def test_limit_can_be_changed():
    assert judge_admin_source("81.0.0.0/12", 16).error
    assert judge_admin_source("81.0.0.0/12", 12).error is None
    assert judge_admin_source("81.2.3.0/24", 28).error  # a stricter course


@pytest.fixture(scope="module")
def plans():
    return {cidr: plan_of(adminCidr=cidr) for cidr in ("0.0.0.0/1", "127.0.0.1/32", "10.0.0.0/8", "224.0.0.0/4")}


@pytest.mark.parametrize("cidr", ["0.0.0.0/1", "127.0.0.1/32", "10.0.0.0/8", "224.0.0.0/4"])
def test_plan_refuses_what_used_to_pass(plans, cidr):
    """These passed `labctl plan` before: now the policy rule and the reachability verdict both fail."""
    p = plans[cidr]
    findings = [f for f in evaluate(p.resources) if f.rule == ADMIN_RULE]
    assert findings and findings[0].level == "mandatory"
    assert cidr in findings[0].message
    bad = failing(verdicts(p.resources, cidr))
    assert bad and bad[0].id == "internet->app:22" and "adminCidr" in bad[0].reason


def test_custom_limit_in_rules(plans):
    p = plan_of(adminCidr="81.0.0.0/12")
    assert [f.rule for f in evaluate(p.resources)] == [ADMIN_RULE]
    assert evaluate(p.resources, rules_with_admin_limit(12)) == []
    assert failing(verdicts(p.resources, "81.0.0.0/12", admin_min_prefix=12)) == []
