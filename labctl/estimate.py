"""What a plan costs per month, and how long its `pulumi up` takes: pure functions over a plan's resources.

Both tables are data shipped with their sources (``labctl/data/prices.json``, ``labctl/data/durations.json``):
every figure names the public page it comes from, what that page says and when it was read.

``monthly_cost`` prices each resource of an offline plan against the price table, counting the Always Free
allowances of one tenancy (two E2.1.Micro VMs, the A1 Flex OCPU/memory-hour pool, 200 GB of block volumes, and each
engine's pools, e.g. one managed free DB system) in declaration order. A database engine prices its own resources
(``Engine.price_lines``, ``Engine.price_shape``: engines/<name>.py). ``price_instance`` and ``price_db_system`` are
the same pricing for callers that have a shape rather than a plan (``labctl.preflight``).

``critical_path`` walks the dependency DAG of the plan (dependencies and property dependencies; a dependency on a
component resource waits for all of its children) and compares the longest chain with the physical limit of the
lab: VCN -> private subnet -> the database (its engine's endpoint resource) (-> connection check).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import engines
from components.ocimodel import INSTANCE, SUBNET, VCN

DATA_DIR = Path(__file__).resolve().parent / "data"
DYNAMIC = "pulumi-python:dynamic:Resource"
NOT_PRICED = "not in the price table"  # such a line's 0.0 means "unknown", never "free"
# The Always Free pools of one tenancy: the compute and storage ones, and each engine's (Engine.free_pools, e.g. one
# managed free DB system); their limits are in labctl/data/prices.json "always_free".
FREE_KEYS = tuple(
    dict.fromkeys(
        ("e2_micro_instances", "a1_ocpu_hours", "a1_memory_gb_hours", "block_volume_gbs")
        + tuple(k for e in engines.ENGINES.values() for k in e.free_pools)
    )
)


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """The price table (``labctl/data/prices.json``)."""
    return json.loads((DATA_DIR / "prices.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def duration_table() -> dict[str, Any]:
    """The create-duration table (``labctl/data/durations.json``)."""
    return json.loads((DATA_DIR / "durations.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=8)
def known_shapes(engine: str) -> frozenset[str]:
    """The shape names OCI offers an engine (``labctl/data/shapes.json``, keyed by engine name)."""
    return frozenset(json.loads((DATA_DIR / "shapes.json").read_text(encoding="utf-8")).get(engine, ()))


def hours_per_month() -> int:
    return int(price_table()["hours_per_month"])


def source_lines(table: Mapping[str, Any], ids: Iterable[str]) -> list[str]:
    out = []
    for sid in ids:
        src = table["sources"][sid]
        out.append(f"{src['url']} — {src['says']} (read {src['read_on']})")
    return out


# --- cost ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostLine:
    name: str
    resource_type: str
    item: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float
    free: bool
    note: str = ""
    blocked: bool = False  # over an Always-Free-only limit: OCI refuses to create it, no paid variant exists


@dataclass
class CostReport:
    lines: list[CostLine]
    total: float
    currency: str = "USD"
    sources: list[str] = field(default_factory=list)
    hours_per_month: int = 744
    unpriced: list[str] = field(default_factory=list)  # resources whose shape the table does not price

    @property
    def blocked(self) -> list[CostLine]:
        return [ln for ln in self.lines if ln.blocked]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "currency": self.currency,
            "hoursPerMonth": self.hours_per_month,
            "lines": [asdict(ln) for ln in self.lines],
            "unpriced": list(self.unpriced),
            "sources": list(self.sources),
        }


class FreeTier:
    """The Always Free allowances of one tenancy, consumed as resources are priced."""

    def __init__(self, used: Mapping[str, float] | None = None) -> None:
        table = price_table()["always_free"]
        unknown = set(used or {}) - set(FREE_KEYS)
        if unknown:
            raise ValueError(f"unknown free-tier key(s) {sorted(unknown)}; known: {', '.join(FREE_KEYS)}")
        self.limits = {k: float(table[k]) for k in FREE_KEYS}
        self.used = {k: float((used or {}).get(k, 0.0)) for k in FREE_KEYS}

    def remaining(self, key: str) -> float:
        return max(0.0, self.limits[key] - self.used[key])

    def take(self, key: str, amount: float) -> float:
        """Consume up to ``amount`` of the allowance ``key``; return how much of it was free."""
        free = min(amount, self.remaining(key))
        self.used[key] += amount
        return free


def _line(
    name: str, rtype: str, item: str, qty: float, unit: str, price: float, free_qty: float, note: str = ""
) -> list[CostLine]:
    """One priced quantity, split into a free and a paid line when an allowance covers part of it."""
    lines = []
    if free_qty > 0:
        lines.append(CostLine(name, rtype, item, round(free_qty, 4), unit, price, 0.0, True, note or "Always Free"))
    paid = qty - free_qty
    if paid > 1e-9:
        lines.append(CostLine(name, rtype, item, round(paid, 4), unit, price, round(paid * price, 2), False, note))
    return lines


def price_instance(
    name: str,
    shape: str,
    ocpus: float | None,
    memory_gbs: float | None,
    boot_volume_gbs: float | None,
    free: FreeTier,
) -> tuple[list[CostLine], list[str]]:
    """Monthly lines of one VM (compute + boot volume); second value: source ids used."""
    table = price_table()
    hours = hours_per_month()
    spec = table["compute"].get(shape)
    lines: list[CostLine] = []
    sources: list[str] = []
    if spec is None:
        lines.append(CostLine(name, INSTANCE, f"{shape} compute", 1, "instance", 0.0, 0.0, False, NOT_PRICED))
    elif spec.get("always_free_only"):
        sources += spec["sources"]
        if free.take("e2_micro_instances", 1) >= 1:
            lines.append(CostLine(name, INSTANCE, f"{shape} compute", 1, "instance", 0.0, 0.0, True, "Always Free"))
        else:
            lines.append(
                CostLine(
                    name,
                    INSTANCE,
                    f"{shape} compute",
                    1,
                    "instance",
                    0.0,
                    0.0,
                    False,
                    f"over the Always Free limit of {int(free.limits['e2_micro_instances'])} per tenancy; OCI refuses "
                    "to create it and sells no paid E2.1.Micro: use a Flex shape",
                    blocked=True,
                )
            )
    else:
        sources += spec["sources"]
        o, m = float(ocpus or 1), float(memory_gbs or 6)
        pool = spec.get("free_pool") == "a1"
        free_o = free.take("a1_ocpu_hours", o * hours) if pool else 0.0
        free_m = free.take("a1_memory_gb_hours", m * hours) if pool else 0.0
        lines += _line(name, INSTANCE, f"{shape} OCPU", o * hours, "OCPU-hour", spec["ocpu_hour"], free_o)
        lines += _line(name, INSTANCE, f"{shape} memory", m * hours, "GB-hour", spec["memory_gb_hour"], free_m)
    bv = table["block_volume"]
    sources += bv["sources"]
    gbs = float(boot_volume_gbs or bv["default_boot_volume_gbs"])
    free_gb = free.take("block_volume_gbs", gbs)
    vpus = bv["default_vpus_per_gb"]
    lines += _line(name, INSTANCE, "boot volume storage", gbs, "GB-month", bv["storage_gb_month"], free_gb)
    lines += _line(
        name,
        INSTANCE,
        f"boot volume performance ({vpus} VPU/GB)",
        gbs,
        "GB-month",
        round(vpus * bv["vpu_gb_month"], 6),
        free_gb,
    )
    return lines, sources


def price_db_system(
    name: str, shape: str, storage_gbs: float, free: FreeTier, engine: str = ""
) -> tuple[list[CostLine], list[str]]:
    """Monthly lines of one DB of ``engine`` ("" = the default engine) on ``shape`` with ``storage_gbs`` (callers
    that have a shape rather than a plan: ``labctl.preflight``); second value: source ids used. The pricing is the
    engine's (``Engine.price_shape``); an engine without one gives a "cost unknown" line."""
    eng = engines.get(engine or engines.DEFAULT)
    if eng.price_shape is None:
        return [CostLine(name, eng.endpoint_type, f"{shape} DB", 1, "DB", 0.0, 0.0, False, NOT_PRICED)], []
    return eng.price_shape(name, shape, storage_gbs, free)


def _engine_lines(engine: Any, r: Any, free: FreeTier) -> tuple[list[CostLine], list[str]]:
    """An engine resource's lines (``Engine.price_lines``: CostLines, or (CostLines, source ids))."""
    got = engine.price_lines(r, free)
    if isinstance(got, tuple):
        return list(got[0]), list(got[1])
    return list(got), []


def _unpriced(line: CostLine) -> bool:
    return line.note == NOT_PRICED or line.note.startswith("cost unknown")


def _num(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def monthly_cost(resources: Sequence[Any], free_tier_used: Mapping[str, float] | None = None) -> CostReport:
    """The monthly cost of a plan's resources (``labctl.offline.PlannedResource``) against the price table.

    ``free_tier_used`` is what other stacks of the same tenancy already use of the Always Free allowances
    (keys ``FREE_KEYS``: ``e2_micro_instances``, ``a1_ocpu_hours``, ``a1_memory_gb_hours``, ``block_volume_gbs`` and
    the engines' pools); by default the tenancy is empty.
    """
    table = price_table()
    free = FreeTier(free_tier_used)
    free_types = set(table["free_resource_types"])
    lines: list[CostLine] = []
    source_ids: list[str] = list(table["always_free"]["sources"])
    unpriced: list[str] = []
    for r in resources:
        if not getattr(r, "custom", True):
            continue
        props = r.props or {}
        if r.resource_type == INSTANCE:
            cfg = props.get("shapeConfig") or {}
            boot = (props.get("sourceDetails") or {}).get("bootVolumeSizeInGbs")
            new, ids = price_instance(
                r.name,
                str(props.get("shape", "")),
                _num(cfg.get("ocpus")),
                _num(cfg.get("memoryInGbs")),
                _num(boot),
                free,
            )
        elif (engine := engines.engine_of_type(r.resource_type)) is not None:
            new, ids = _engine_lines(engine, r, free)  # the engine prices its own resources (engines/<name>.py)
            if not new and r.resource_type == engine.endpoint_type:
                new = [CostLine(r.name, r.resource_type, "DB", 1, "DB", 0.0, 0.0, False, NOT_PRICED)]
        elif r.resource_type in table["operations"]["resource_types"]:
            ops = table["operations"]
            item = ops["resource_types"][r.resource_type]
            note = "no charge of its own; its datapoints and deliveries fall within the Always Free allowances"
            new, ids = [CostLine(r.name, r.resource_type, item, 1, "resource", 0.0, 0.0, True, note)], ops["sources"]
        elif r.resource_type in free_types:
            new, ids = [CostLine(r.name, r.resource_type, "network", 1, "resource", 0.0, 0.0, True, "no charge")], []
        else:
            continue
        lines += new
        source_ids += ids
        if any(_unpriced(ln) for ln in new):
            unpriced.append(f"{r.name} ({r.resource_type})")
    total = round(sum(ln.monthly for ln in lines), 2)
    return CostReport(
        lines=lines,
        total=total,
        currency=table["currency"],
        sources=source_lines(table, dict.fromkeys(source_ids)),
        hours_per_month=hours_per_month(),
        unpriced=unpriced,
    )


# --- critical path -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PathReport:
    path: list[str]
    seconds: float
    serial_seconds: float
    physical_limit_seconds: float
    ratio: float
    sources: list[str] = field(default_factory=list)
    # resources whose create duration has no source ("<name>: <why>"); they count 0 s, so the times are lower bounds
    unknown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _engine_duration(resource_type: str) -> Mapping[str, Any] | None:
    """The engine's create-duration entry of its resource type (``Engine.durations``), if it has one."""
    engine = engines.engine_of_type(resource_type)
    return engine.durations.get(resource_type) if engine is not None else None


def duration_unknown(resource_type: str) -> str | None:
    """Why the create duration of ``resource_type`` is unknown (its engine says so, with no figure), or None."""
    spec = _engine_duration(resource_type)
    if spec is not None and spec.get("seconds") is None:
        return str(spec.get("note") or "unknown")
    return None


def create_seconds(resource_type: str) -> float:
    """Typical create duration of one custom resource of ``resource_type`` (0 when its engine marks it unknown:
    ``duration_unknown`` says so, and ``critical_path`` reports it)."""
    engine_spec = _engine_duration(resource_type)
    if engine_spec is not None:
        return float(engine_spec["seconds"]) if engine_spec.get("seconds") is not None else 0.0
    table = duration_table()
    spec = table["types"].get(resource_type)
    if spec is None and resource_type.startswith("pulumi-python:dynamic"):
        spec = table["types"].get(DYNAMIC)  # dynamic resources: pulumi-python:dynamic/<module>:<Name>
    return float(spec["seconds"]) if spec else float(table["default_custom_seconds"])


def critical_path(resources: Sequence[Any]) -> PathReport:
    """The longest create chain of a plan over its dependency DAG, its total, the serial total and the ratio to
    the physical limit (VCN -> private subnet -> DB system -> connection check)."""
    by_urn = {r.urn: r for r in resources}
    children: dict[str, list[str]] = {}
    for r in resources:
        if r.parent in by_urn:
            children.setdefault(r.parent, []).append(r.urn)

    def deps(r: Any) -> list[str]:
        found = list(r.dependencies or [])
        for urns in (r.property_dependencies or {}).values():
            found += urns
        return [u for u in dict.fromkeys(found) if u in by_urn and u != r.urn]

    def later(t: float, who: str, than_t: float, than_who: str | None) -> bool:
        """Does (t, who) finish later than (than_t, than_who)? Ties go to the smaller URN, so the path does not
        depend on registration order (which varies run to run): two plans of one program print one path."""
        if than_who is None:
            return True
        return round(t, 9) > round(than_t, 9) or (round(t, 9) == round(than_t, 9) and who < than_who)

    # finish[urn] = (time the resource is done, the custom resource whose completion set that time, or None)
    finish: dict[str, tuple[float, str | None]] = {}
    via: dict[str, str | None] = {}  # custom resource -> the custom resource it waited for last
    visiting: set[str] = set()

    def done(urn: str) -> tuple[float, str | None]:
        if urn in finish:
            return finish[urn]
        if urn in visiting:  # a cycle cannot happen in a real plan; do not recurse forever on a bad one
            return 0.0, None
        visiting.add(urn)
        r = by_urn[urn]
        start, last = 0.0, None
        for d in deps(r):
            t, who = done(d)
            if who is not None and later(t, who, start, last):
                start, last = t, who
        if r.custom:
            via[urn] = last
            result = (start + create_seconds(r.resource_type), urn)
        else:  # a component is done when its own dependencies and all of its children are
            result = (start, last)
            for c in children.get(urn, []):
                t, who = done(c)
                if who is not None and later(t, who, result[0], result[1]):
                    result = (t, who)
        visiting.discard(urn)
        finish[urn] = result
        return result

    for urn in by_urn:
        done(urn)
    customs = [r for r in resources if r.custom]
    end, tail = 0.0, None
    for r in customs:
        t, _ = finish[r.urn]
        if later(t, r.urn, end, tail):
            end, tail = t, r.urn
    path: list[str] = []
    while tail is not None:
        path.append(by_urn[tail].name)
        tail = via.get(tail)
    path.reverse()
    serial = sum(create_seconds(r.resource_type) for r in customs)

    types = {r.resource_type for r in customs}
    limit = 0.0
    if VCN in types:
        limit += create_seconds(VCN)
    if SUBNET in types:
        limit += create_seconds(SUBNET)
    db_types = [t for t in types if (e := engines.engine_of_type(t)) is not None and e.endpoint_type == t]
    if db_types:
        limit += max(create_seconds(t) for t in db_types)
    elif INSTANCE in types:
        limit += create_seconds(INSTANCE)
    if any(t.startswith("pulumi-python:dynamic") for t in types):
        limit += create_seconds(DYNAMIC)
    table = duration_table()
    used_sources = {sid for t in types for sid in (_engine_duration(t) or table["types"].get(t, {})).get("sources", [])}
    return PathReport(
        path=path,
        seconds=end,
        serial_seconds=serial,
        physical_limit_seconds=limit,
        ratio=round(end / limit, 3) if limit else 0.0,
        sources=source_lines(table, sorted(used_sources)),
        unknown=[f"{r.name}: {why}" for r in customs if (why := duration_unknown(r.resource_type))]
        + setup_unknown(resources),
    )


def setup_unknown(resources: Sequence[Any]) -> list[str]:
    """Declared databases whose engine sets the server up after the resource is created (a DB VM's cloud-init) and
    has no figure for how long that takes (``Engine.durations["endpoint_setup"]`` without seconds)."""
    from policy.rules import db_endpoints

    out = []
    for ep in db_endpoints(resources):
        spec = engines.get(ep.engine).durations.get("endpoint_setup") if ep.engine in engines.ENGINES else None
        if spec is not None and spec.get("seconds") is None:
            out.append(f"{ep.name}: {spec.get('note') or 'unknown'}")
    return out
