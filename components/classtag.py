"""The class layer's cost-tracking tag on student stacks: the defined tag ``<namespace>.student = <studentId>``.

The class layer (``tenancy/``, ``labctl class setup``) creates once per tenancy a tag namespace and in it the
cost-tracking tag key ``student`` (components/tenancy.py). A student stack whose config names that namespace
(``studentTagNamespace``) carries the defined tag on every OCI resource that takes tags, next to the freeform tags it
always has: budgets and the Usage API can group cost by a cost-tracking defined tag, not by a freeform one (OCI docs
"Using Cost-Tracking Tags", https://docs.oracle.com/iaas/Content/Tagging/Tasks/usingcosttrackingtags.htm: "Cost
tracking is a feature of defined tags"; pulumi_oci 5.5.0 budget/budget.py ``targets``: a TAG target is
"{tagNamespace}.{tagKey}.{tagValue}").

Pure apart from ``student_tag_transformation``, which returns a Pulumi stack transformation: one place adds the tag
to every resource instead of every component passing it on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

TAG_KEY = "student"
# OCI allows printable ASCII except space and '.' in tag namespace names (OCI docs "Tags and Tag Namespace
# Concepts", https://docs.oracle.com/iaas/Content/Tagging/Tasks/managingtagsandtagnamespaces.htm). The class layer
# takes a safer subset, because the same name also starts the class's topic, compartment, quota and budget names
# (letters, digits, '-' and '_' only; components/operations.py topic_name), and at most 64 characters (our choice).
NAMESPACE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
NAMESPACE_EXAMPLE = "dblab-2026s1"


def check_namespace(name: str) -> str | None:
    """Why ``name`` cannot be the class layer's tag namespace (and name prefix), or None."""
    if NAMESPACE_RE.match(name):
        return None
    return (
        f"'{name}' must start with a letter and hold 1-64 letters, digits, '-' or '_' (no spaces, no '.': OCI "
        "separates the namespace from the tag key with a '.')"
    )


def defined_tag_key(namespace: str) -> str:
    """The key of the student tag in ``defined_tags``: ``<namespace>.student`` (pulumi_oci's "Operations.CostCenter"
    form)."""
    return f"{namespace}.{TAG_KEY}"


def budget_tag_target(namespace: str, student_id: str) -> str:
    """A budget's TAG target for one student: ``<namespace>.student.<id>`` (budget/budget.py ``targets``)."""
    return f"{namespace}.{TAG_KEY}.{student_id}"


def with_student_tag(props: dict[str, Any], namespace: str, student_id: str) -> dict[str, Any] | None:
    """``props`` (a resource's Python-named inputs) with the student's defined tag added, or None when the resource
    takes no tags (it has no ``freeform_tags``: every OCI resource of the lab that takes tags is given them)."""
    if props.get("freeform_tags") is None:
        return None
    out = dict(props)
    key = defined_tag_key(namespace)
    given = props.get("defined_tags")
    if given is None or isinstance(given, dict):
        out["defined_tags"] = {**(given or {}), key: student_id}
    else:  # an Output: merge once it is known
        import pulumi

        out["defined_tags"] = pulumi.Output.from_input(given).apply(lambda d: {**(d or {}), key: student_id})
    return out


def student_tag_transformation(namespace: str, student_id: str) -> Callable[[Any], Any]:
    """A stack transformation (``pulumi.runtime.register_stack_transformation``) that gives every OCI resource with
    freeform tags the defined tag ``<namespace>.student = <student_id>``. The SDK hands it the resource's inputs as
    a dict with Python names (pulumi/resource.py ``_types.input_type_to_untranslated_dict``), before registration."""
    import pulumi

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not args.type_.startswith("oci:"):
            return None
        props = with_student_tag(dict(args.props), namespace, student_id)
        if props is None:
            return None
        return pulumi.ResourceTransformationResult(props, args.opts)

    return transform
