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
    # The logical resource name this row belongs to, as a suffix ("-db-vm"); "" = any resource of its type. A DB VM
    # is an instance like the app VM: its rows carry "-db-vm" so ``labctl diff`` names dbShape, not appShape.
    resource_name: str = ""
    in_plan: bool = True  # False: a row only ``labctl diff`` needs (a property that follows another key's row)

    @property
    def verdict(self) -> str:
        return "in place" if self.in_place else "REPLACES the resource"


# The new shape must be compatible with the VM's image ("Resizing can only happen within the shapes of same family.
# The shapes must be compatible with the image": terraform-provider-oci v3.56.0 release notes, the release that
# added in-place resizing); the image is kept (ignore_changes on sourceDetails.sourceId), so an x86 <-> Arm move
# cannot be done in place.
SAME_ARCHITECTURE = (
    "same processor architecture only: between an x86 shape (E2/E3/E4/E5/Standard3) and Arm (A1) the image differs, "
    "rebuild with `pulumi up --replace <the VM's URN>`"
)

APP_SIZING: tuple[SizingFact, ...] = (
    SizingFact(
        "appShape",
        INSTANCE,
        "shape",
        True,
        f"{PROVIDER} internal/service/core/core_instance_resource.go:795 `shape` Optional+Computed, no ForceNew; "
        "sent in UpdateInstance by updateOptionsViaWorkRequest (:4244, shape at :4263); resizing only to a shape "
        "compatible with the VM's image (terraform-provider-oci v3.56.0 release notes)",
        SAME_ARCHITECTURE,
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
    if not _f.resource_name:
        BY_PROPERTY.setdefault((_f.resource_type, _f.prop), _f)


def for_property(resource_type: str, path: str, name: str = "") -> SizingFact | None:
    """The sizing fact for a changed property of the resource named ``name`` (``labctl diff``), or None when it is
    not a sizing property. A row whose ``resource_name`` ends ``name`` wins over the rows for any resource."""
    if name:
        for f in SIZING:
            if (
                f.resource_name
                and name.endswith(f.resource_name)
                and (f.resource_type, f.prop)
                == (
                    resource_type,
                    path,
                )
            ):
                return f
        named = {f.resource_name for f in SIZING if f.resource_name and name.endswith(f.resource_name)}
        if named:  # a resource with rows of its own: a property none of them names is not a sizing property
            return None
    return BY_PROPERTY.get((resource_type, path))


def plan_lines(config: Mapping[str, str]) -> list[str]:
    """``labctl plan``'s "Elastic sizing" lines for a stack's full-key config (``oci-dblab:appShape`` ...)."""
    shape = str(config.get("oci-dblab:appShape") or "VM.Standard.E2.1.Micro")
    out = []
    engine = engines.find(config.get("oci-dblab:dbEngine"))  # "MySQL" is mysql, as the config reads it
    for f in APP_SIZING + (engine_facts(engine) if engine is not None else ()):
        if not f.in_plan or (f.key in ("appOcpus", "appMemoryGbs") and not shape.endswith(".Flex")):
            continue  # only Flex shapes have them (components/config.py refuses them otherwise)
        value = config.get(f"oci-dblab:{f.key}")
        shown = f" (now {value})" if value not in (None, "") else ""
        extra = f"; {f.note}" if f.note else ""
        out.append(f"{f.key}{shown}: changes {f.verdict}{extra}")
    return out
