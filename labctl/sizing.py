"""Elastic sizing: which size keys change a running lab in place and which would replace a resource.

Facts from the OCI Terraform provider that pulumi-oci 5.5.0 wraps (oracle/terraform-provider-oci v8.28.0): a
property without ``ForceNew`` in the resource schema is sent to the service's Update call; one with ``ForceNew``
makes the engine delete and recreate the resource (and, for a DB system, its data). Each row cites the schema line
and the update code. ``labctl plan`` prints these rows for the stack's sizing keys; ``labctl diff`` marks each changed
property it finds here. The database's rows come from its engine (``Engine.sizing``, engines/<name>.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import engines
from components.ocimodel import INSTANCE
from engines.base import Engine

PROVIDER = "terraform-provider-oci v8.28.0"


@dataclass(frozen=True)
class SizingFact:
    key: str  # config key
    resource_type: str
    prop: str  # the property path as labctl diff flattens it
    in_place: bool
    source: str
    note: str = ""

    @property
    def verdict(self) -> str:
        return "in place" if self.in_place else "REPLACES the resource"


APP_SIZING: tuple[SizingFact, ...] = (
    SizingFact(
        "appShape",
        INSTANCE,
        "shape",
        True,
        f"{PROVIDER} internal/service/core/core_instance_resource.go:795 `shape` Optional+Computed, no ForceNew; "
        "sent in UpdateInstance by updateOptionsViaWorkRequest (:4244, shape at :4263)",
    ),
    SizingFact(
        "appOcpus",
        INSTANCE,
        "shapeConfig.ocpus",
        True,
        f"{PROVIDER} internal/service/core/core_instance_resource.go:831 `shape_config.ocpus` no ForceNew; "
        "sent in UpdateInstance by updateOptionsViaWorkRequest (:4244, shape_config at :4282)",
        "Flex shapes only",
    ),
    SizingFact(
        "appMemoryGbs",
        INSTANCE,
        "shapeConfig.memoryInGbs",
        True,
        f"{PROVIDER} internal/service/core/core_instance_resource.go:821 `shape_config.memory_in_gbs` no ForceNew; "
        "sent in UpdateInstance by updateOptionsViaWorkRequest (:4244, shape_config at :4282)",
        "Flex shapes only",
    ),
)


def engine_facts(engine: Engine) -> tuple[SizingFact, ...]:
    """An engine's sizing facts (``Engine.sizing["facts"]``: dicts with key, resource_type, prop, in_place, source,
    note), as rows of this table."""
    return tuple(SizingFact(**dict(f)) for f in engine.sizing.get("facts", ()))


def facts_for(engine_name: str) -> tuple[SizingFact, ...]:
    """The rows that apply to a stack of engine ``engine_name``: the app VM's and that engine's."""
    return APP_SIZING + engine_facts(engines.get(engine_name))


# Every row of every engine (labctl diff marks a changed property found here, whatever the engine).
SIZING: tuple[SizingFact, ...] = APP_SIZING + tuple(f for e in engines.ENGINES.values() for f in engine_facts(e))
BY_KEY: dict[str, SizingFact] = {f.key: f for f in SIZING}
# The first row of a property wins: a DB VM's dbShape is an instance's `shape` too, and the app VM's row comes first.
BY_PROPERTY: dict[tuple[str, str], SizingFact] = {}
for _f in SIZING:
    BY_PROPERTY.setdefault((_f.resource_type, _f.prop), _f)


def for_property(resource_type: str, path: str) -> SizingFact | None:
    """The sizing fact for a changed property (``labctl diff``), or None when it is not a sizing property."""
    return BY_PROPERTY.get((resource_type, path))


def plan_lines(config: Mapping[str, str]) -> list[str]:
    """``labctl plan``'s "Elastic sizing" lines for a stack's full-key config (``oci-dblab:appShape`` ...)."""
    shape = str(config.get("oci-dblab:appShape") or "VM.Standard.E2.1.Micro")
    out = []
    engine = engines.find(config.get("oci-dblab:dbEngine"))  # "MySQL" is mysql, as the config reads it
    for f in APP_SIZING + (engine_facts(engine) if engine is not None else ()):
        if f.key in ("appOcpus", "appMemoryGbs") and not shape.endswith(".Flex"):
            continue  # only Flex shapes have them (components/config.py refuses them otherwise)
        value = config.get(f"oci-dblab:{f.key}")
        shown = f" (now {value})" if value not in (None, "") else ""
        extra = f"; {f.note}" if f.note else ""
        out.append(f"{f.key}{shown}: changes {f.verdict}{extra}")
    return out
