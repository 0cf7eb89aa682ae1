"""``labctl plan --format tfplan``: the offline plan as Terraform plan JSON, for the scanners teams already run.

checkov, trivy and conftest/OPA read ``terraform show -json`` output, not Pulumi programs. The same resources, in
the shape the OCI Terraform provider gives them (pulumi-oci is bridged from it, so the attributes are the same):

- resource types ``oci_<module>_<resource>`` (``oci:Core/securityList:SecurityList`` → ``oci_core_security_list``);
- attribute names in snake_case (``ingressSecurityRules`` → ``ingress_security_rules``), except the keys inside map
  attributes (``freeformTags``, ``metadata``), which are data;
- nested blocks as lists of one or more objects (``tcp_options = [{min, max}]``, ``launch_options = [{...}]``), as
  Terraform's JSON plan writes ``TypeList``/``MaxItems: 1`` blocks;
- a plan of a fresh stack (``format_version`` 1.2, every change ``["create"]``): values only known after apply (ids
  and what derives from them, as in ``labctl.analyzerhost`` PREVIEW) are left out of ``after`` and flagged in
  ``after_unknown``; secret values are written as ``null`` and flagged in ``after_sensitive`` / ``sensitive_values``
  (a real plan would carry them; this file never does).

Resource names are the Pulumi names (Terraform allows dashes). Non-OCI resources keep a Terraform type where one
exists (``random_password``); the EnvFile dynamic provider has none and is written as ``pulumi_dynamic_resource``,
which scanners skip. ``from_tfplan`` reads the document back, so a test proves the export loses nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from labctl.analyzerhost import PREVIEW, UNKNOWN, properties
from labctl.offline import SECRET_SIG, SIG_KEY, Plan, PlannedResource

FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.8"  # the plan format is the one Terraform 1.x writes; no Terraform binary is involved
OCI_PROVIDER = "registry.terraform.io/oracle/oci"
RANDOM_PROVIDER = "registry.terraform.io/hashicorp/random"
DYNAMIC_TYPE = "pulumi_dynamic_resource"

# Pulumi type token → Terraform type, for every type the program declares (pulumi-oci's tokens are generated from
# the Terraform names: oci_core_security_list → oci:Core/securityList:SecurityList). Other oci: tokens follow the
# same rule (``terraform_type``), which is also how every engine's types are named (``oci:<Module>/<resource>:<Name>``
# → ``oci_<module>_<resource>``), so no engine needs an entry here.
TF_TYPES: dict[str, str] = {
    "oci:Core/vcn:Vcn": "oci_core_vcn",
    "oci:Core/subnet:Subnet": "oci_core_subnet",
    "oci:Core/securityList:SecurityList": "oci_core_security_list",
    "oci:Core/defaultSecurityList:DefaultSecurityList": "oci_core_default_security_list",
    "oci:Core/networkSecurityGroup:NetworkSecurityGroup": "oci_core_network_security_group",
    "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule": (
        "oci_core_network_security_group_security_rule"
    ),
    "oci:Core/routeTable:RouteTable": "oci_core_route_table",
    "oci:Core/defaultRouteTable:DefaultRouteTable": "oci_core_default_route_table",
    "oci:Core/internetGateway:InternetGateway": "oci_core_internet_gateway",
    "oci:Core/serviceGateway:ServiceGateway": "oci_core_service_gateway",
    "oci:Core/instance:Instance": "oci_core_instance",
    "random:index/randomPassword:RandomPassword": "random_password",
}
# Map-typed attributes: their keys are data (tag names, metadata keys), never renamed.
MAP_ATTRIBUTES = frozenset({"freeformTags", "definedTags", "metadata", "extendedMetadata", "systemTags"})
# Object-typed attributes that Terraform models as a single map-like object rather than a block list: none in the
# resources we declare. Every other nested object is a block and becomes a list.


def snake(name: str) -> str:
    """``isPvEncryptionInTransitEnabled`` → ``is_pv_encryption_in_transit_enabled``; ``portX`` → ``port_x``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def terraform_type(token: str) -> str:
    """The Terraform resource type for a Pulumi type token."""
    if token in TF_TYPES:
        return TF_TYPES[token]
    if token.startswith("oci:"):
        module, resource = token.split(":")[1].split("/")
        return f"oci_{snake(module)}_{snake(resource)}"
    return DYNAMIC_TYPE


def _provider_name(tf_type: str) -> str:
    if tf_type.startswith("oci_"):
        return OCI_PROVIDER
    if tf_type.startswith("random_"):
        return RANDOM_PROVIDER
    return "registry.terraform.io/pulumi/dynamic"


def _is_secret(v: Any) -> bool:
    return isinstance(v, dict) and v.get(SIG_KEY) == SECRET_SIG


def _convert(value: Any, is_map: bool = False) -> tuple[Any, Any, Any]:
    """(after, after_unknown, after_sensitive) of one value; objects become blocks (lists of one object)."""
    if _is_secret(value):
        return None, False, True
    if value == UNKNOWN:
        return None, True, False
    if isinstance(value, dict):
        after: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        sensitive: dict[str, Any] = {}
        for k, v in value.items():
            key = k if is_map else snake(k)
            a, u, s = _convert(v, is_map=not is_map and k in MAP_ATTRIBUTES)
            if u is True:
                unknown[key] = True
            else:
                after[key] = a
                if u:
                    unknown[key] = u
            if s:
                sensitive[key] = s
        if is_map:
            return after, unknown or False, sensitive or False
        return [after], [unknown] if unknown else False, [sensitive] if sensitive else False
    if isinstance(value, list):
        afters, unknowns, sensitives = [], [], []
        for v in value:
            a, u, s = _convert(v)
            if isinstance(v, dict) and not _is_secret(v):  # a list of blocks is a list of objects
                a, u, s = a[0], u[0] if u else False, s[0] if s else False
            afters.append(a)
            unknowns.append(u)
            sensitives.append(s)
        return afters, unknowns if any(unknowns) else False, sensitives if any(sensitives) else False
    return value, False, False


def _attributes(props: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    after: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    sensitive: dict[str, Any] = {}
    for k, v in props.items():
        key = snake(k)
        a, u, s = _convert(v, is_map=k in MAP_ATTRIBUTES)
        if u is True:
            unknown[key] = True
        else:
            after[key] = a
            if u:
                unknown[key] = u
        if s:
            sensitive[key] = s
    return after, unknown, sensitive


def _address(tf_type: str, name: str, taken: set[str]) -> tuple[str, str]:
    base = name
    n = 1
    while f"{tf_type}.{name}" in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(f"{tf_type}.{name}")
    return f"{tf_type}.{name}", name


def to_tfplan(plan: Plan) -> dict[str, Any]:
    """The plan of a fresh stack as Terraform plan JSON (``terraform show -json`` shape)."""
    by_urn = {r.urn: r for r in plan.resources}
    taken: set[str] = set()
    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for r in plan.resources:
        if not r.custom:
            continue  # components group resources; Terraform has no resource for them
        tf_type = terraform_type(r.resource_type)
        address, name = _address(tf_type, r.name, taken)
        after, unknown, sensitive = _attributes(properties(r, by_urn, PREVIEW))
        unknown.pop("id", None)
        unknown["id"] = True
        common = {
            "address": address,
            "mode": "managed",
            "type": tf_type,
            "name": name,
            "provider_name": _provider_name(tf_type),
        }
        planned.append({**common, "schema_version": 0, "values": after, "sensitive_values": sensitive})
        changes.append(
            {
                **common,
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": after,
                    "after_unknown": unknown,
                    "before_sensitive": False,
                    "after_sensitive": sensitive,
                },
                "pulumi_urn": r.urn,
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {"root_module": {}},
    }


def render(plan: Plan) -> str:
    return json.dumps(to_tfplan(plan), indent=2, sort_keys=True)


# --- reading it back (round trip) ---------------------------------------------------------------------------------

SECRET_MARK = "[sensitive]"


def _back(after: Any, unknown: Any, sensitive: Any, is_map: bool = False) -> Any:
    if sensitive is True:
        return SECRET_MARK
    if unknown is True:
        return UNKNOWN
    if isinstance(after, dict):
        u = unknown if isinstance(unknown, dict) else {}
        s = sensitive if isinstance(sensitive, dict) else {}
        return {
            (k if is_map else camel(k)): _back(
                after.get(k), u.get(k), s.get(k), is_map=not is_map and camel(k) in MAP_ATTRIBUTES
            )
            for k in dict.fromkeys([*after, *u, *s])
        }
    if isinstance(after, list):
        u = unknown if isinstance(unknown, list) else []
        s = sensitive if isinstance(sensitive, list) else []
        return [_back(v, u[i] if i < len(u) else None, s[i] if i < len(s) else None) for i, v in enumerate(after)]
    return after


def from_tfplan(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """URN → {"type", "name", "properties"}: camelCase names, ``UNKNOWN`` and ``SECRET_MARK`` markers, blocks kept
    as Terraform writes them (compare with ``block_form``)."""
    out: dict[str, dict[str, Any]] = {}
    planned = {r["address"]: r for r in doc["planned_values"]["root_module"]["resources"]}
    for rc in doc["resource_changes"]:
        ch = rc["change"]
        if planned[rc["address"]]["values"] != ch["after"]:
            raise ValueError(f"{rc['address']}: planned_values and resource_changes disagree")
        wrapped = {"after": ch["after"]}
        props = _back(wrapped, {"after": ch["after_unknown"]}, {"after": ch["after_sensitive"] or {}})["after"]
        out[rc["pulumi_urn"]] = {"type": rc["type"], "name": rc["name"], "properties": props}
    return out


def block_form(props: Mapping[str, Any]) -> dict[str, Any]:
    """``props`` as the export must give them back: secret values as ``SECRET_MARK``, nested objects as blocks
    (one-object lists), map attributes untouched."""

    def conv(v: Any, is_map: bool = False, in_list: bool = False) -> Any:
        if _is_secret(v):
            return SECRET_MARK
        if isinstance(v, dict):
            inner = {k: conv(x, is_map=not is_map and k in MAP_ATTRIBUTES) for k, x in v.items()}
            if is_map:
                inner = {k: conv(x) for k, x in v.items()}
                return inner
            return inner if in_list else [inner]
        if isinstance(v, list):
            return [conv(x, in_list=True) for x in v]
        return v

    return {k: conv(v, is_map=k in MAP_ATTRIBUTES) for k, v in props.items()}


def expected_properties(r: PlannedResource, resources: Sequence[PlannedResource]) -> dict[str, Any]:
    """What ``from_tfplan`` must give back for ``r``: its PREVIEW properties in block form, id unknown."""
    props = properties(r, {x.urn: x for x in resources}, PREVIEW)
    props["id"] = UNKNOWN
    return block_form(props)
