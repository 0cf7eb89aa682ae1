"""The class layer's cost-tracking tag on a student stack: config, the stack transformation, the policy rule."""

from __future__ import annotations

import pytest
from conftest import good_raw, mutated, named, plan_of

from components.classtag import budget_tag_target, check_namespace, defined_tag_key, with_student_tag
from components.config import ConfigError, parse_config
from policy.rules import ADVISORY, evaluate

NS = "dblab-2026s1"


@pytest.fixture(scope="module")
def tagged():
    return plan_of(studentTagNamespace=NS)


def _taggable(plan):
    return [r for r in plan.resources if r.custom and r.resource_type.startswith("oci:") and "freeformTags" in r.props]


def test_every_tagged_oci_resource_gets_the_defined_student_tag(tagged) -> None:
    resources = _taggable(tagged)
    types = {r.resource_type for r in resources}
    # the tiers' resources, not a token few: VCN, subnets, VM, DB system, alarms, topic
    assert {"oci:Core/vcn:Vcn", "oci:Core/instance:Instance", "oci:Monitoring/alarm:Alarm"} <= types
    assert any("Mysql" in t for t in types)
    for r in resources:
        assert r.props["definedTags"] == {f"{NS}.student": "a23-042"}, r.name
        assert r.props["freeformTags"]["student"] == "a23-042"  # freeform tags stay
    assert not [f for f in evaluate(tagged.resources) if f.rule == "student-tag"]


def test_without_the_class_layer_there_is_no_defined_tag(plan) -> None:
    assert _taggable(plan) and all("definedTags" not in r.props for r in _taggable(plan))


def test_resources_without_tags_are_left_alone(tagged) -> None:
    others = [r for r in tagged.resources if r.custom and not r.resource_type.startswith("oci:")]
    assert others and all("definedTags" not in r.props for r in others)


@pytest.mark.parametrize(
    "raw, why",
    [
        ({"studentTagNamespace": "dblab.2026"}, "no '.'"),
        ({"studentTagNamespace": "2026 class"}, "must start with a letter"),
        ({"studentTagNamespace": NS, "studentId": None}, "studentId is not"),
    ],
)
def test_bad_namespace_is_refused_with_the_key(raw, why) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(**raw), "dev")
    assert "oci-dblab:studentTagNamespace" in str(e.value) and why in str(e.value)
    assert "Example: dblab-2026s1" in str(e.value)


def test_policy_reports_a_resource_missing_the_defined_tag_or_disagreeing(tagged) -> None:
    def untag_vm(rs):
        del named(rs, "lab-vm").props["definedTags"]

    def other_value(rs):
        named(rs, "lab-ops-topic").props["definedTags"] = {f"{NS}.student": "a23-999"}

    missing = [f for f in evaluate(mutated(tagged, untag_vm)) if f.rule == "student-tag"]
    assert [(f.name, f.level) for f in missing] == [("lab-vm", ADVISORY)]
    assert f"{NS}.student" in missing[0].message
    odd = [f for f in evaluate(mutated(tagged, other_value)) if f.rule == "student-tag"]
    assert [f.name for f in odd] == ["lab-ops-topic"] and "disagrees" in odd[0].message


def test_pure_helpers() -> None:
    assert defined_tag_key(NS) == "dblab-2026s1.student"
    assert budget_tag_target(NS, "a23-042") == "dblab-2026s1.student.a23-042"
    assert check_namespace(NS) is None and check_namespace("x" * 65)
    assert with_student_tag({"name": "x"}, NS, "a") is None
    assert with_student_tag({"freeform_tags": {}, "defined_tags": {"Ops.cc": "1"}}, NS, "a")["defined_tags"] == {
        "Ops.cc": "1",
        f"{NS}.student": "a",
    }
