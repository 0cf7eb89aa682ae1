"""Before a class deploys: what the whole class creates, per tenancy, against the Always Free limits.

Pure: students and the class config in, a ``PreflightReport`` out (``render_text`` / ``to_dict``). Prices and free
allowances come from ``labctl.estimate`` (one table, ``labctl/data/prices.json``).

Tenancies cannot be read from a compartment OCID, so the grouping is the class's choice (``tenancies`` in
class.yaml): ``shared`` (default) counts every student in one tenancy; ``per-compartment`` treats each distinct
compartment as its own tenancy; ``per-student`` gives every student their own (Free Tier account each).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

import engines
from components.config import ConfigError, LabConfig, parse_config
from engines import vmdb
from labctl import estimate
from labctl.roster import ClassConfig, RosterError, RosterProblem, Student, short_keys, student_config

FITS = "FITS"
FITS_PAID = "FITS (PAID)"
DOES_NOT_FIT = "DOES NOT FIT"
COST_UNKNOWN = "COST UNKNOWN"  # a shape is missing from the price table: never costed at 0
PAID_APP_SHAPE = "VM.Standard.A1.Flex"  # 1 OCPU / 6 GB: uses what is left of the A1 pool, then the A1 price


@dataclass(frozen=True)
class Check:
    what: str
    needed: float
    limit: float
    ok: bool
    note: str = ""
    hard: bool = False  # a limit OCI enforces (creation is refused), not a pool beyond which it is paid


@dataclass
class TenancyReport:
    key: str
    students: list[str]
    instances: int
    ocpus: float
    memory_gbs: float
    db_systems: int
    storage_gbs: float  # boot volumes + DB storage
    checks: list[Check]
    monthly: float
    lines: list[estimate.CostLine] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass
class Option:
    title: str
    monthly: float | None  # None: not priced (not built yet)
    detail: str


@dataclass
class PreflightReport:
    verdict: str
    summary: str
    grouping: str
    grouping_note: str
    tenancies: list[TenancyReport]
    monthly_total: float
    options: list[Option]
    currency: str = "USD"
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "grouping": self.grouping,
            "groupingNote": self.grouping_note,
            "monthlyTotal": self.monthly_total,
            "currency": self.currency,
            "tenancies": [
                {
                    "key": t.key,
                    "students": t.students,
                    "instances": t.instances,
                    "ocpus": t.ocpus,
                    "memoryGbs": t.memory_gbs,
                    "dbSystems": t.db_systems,
                    "storageGbs": t.storage_gbs,
                    "fits": t.fits,
                    "monthly": t.monthly,
                    "checks": [asdict(c) for c in t.checks],
                }
                for t in self.tenancies
            ],
            "options": [asdict(o) for o in self.options],
            "sources": list(self.sources),
        }


def _configs(students: Sequence[Student], cls: ClassConfig) -> list[tuple[Student, LabConfig]]:
    out, problems = [], []
    for s in students:
        full, secrets = student_config(cls, s)
        try:
            out.append((s, parse_config(short_keys(full), s.stack, {k.split(":", 1)[1] for k in secrets})))
        except ConfigError as e:
            problems += [RosterProblem(s.line, p.key, f"stack {s.stack}: {p}") for p in e.problems]
    if problems:
        raise RosterError(problems, "roster")
    return out


def _group_key(mode: str, s: Student, cfg: LabConfig) -> str:
    if mode == "per-student":
        return s.stack
    if mode == "per-compartment":
        return cfg.compartment_id
    return "class tenancy"


def _tenancy(key: str, members: list[tuple[Student, LabConfig]]) -> TenancyReport:
    free = estimate.FreeTier()
    lines: list[estimate.CostLine] = []
    ocpus = mem = storage = boot_total = 0.0
    micro = a1_ocpu = a1_mem = 0.0
    db_vms = 0
    pools: dict[str, float] = {}  # the engines' Always Free pools (Engine.free_pools) the members' DBs take
    pool_shapes: dict[str, str] = {}
    boot = estimate.price_table()["block_volume"]["default_boot_volume_gbs"]
    for s, cfg in members:
        o = cfg.app_ocpus or 1.0
        m = cfg.app_memory_gbs or (1.0 if not cfg.is_flex else 6.0)
        ocpus, mem, storage, boot_total = ocpus + o, mem + m, storage + boot + cfg.db_storage_gbs, boot_total + boot
        if cfg.app_shape == "VM.Standard.E2.1.Micro":
            micro += 1
        if cfg.app_shape == "VM.Standard.A1.Flex":
            a1_ocpu, a1_mem = a1_ocpu + o, a1_mem + m
        engine = cfg.engine
        for pool, n in engine.free_pools.items():  # a managed DB's pools, checked used or not (DB VMs: below)
            if vmdb.is_db_vm_engine(engine):
                break
            on_free_shape = bool(engine.always_free_shape) and cfg.db_shape == engine.always_free_shape
            pools[pool] = pools.get(pool, 0.0) + (n if on_free_shape else 0)
            pool_shapes.setdefault(pool, str(engine.always_free_shape))
        new, _ = estimate.price_instance(f"{s.stack}/app", cfg.app_shape, cfg.app_ocpus, cfg.app_memory_gbs, None, free)
        lines += new
        if vmdb.is_db_vm_engine(cfg.engine):
            # The DB VM is a second instance: the tenancy's E2.1.Micro pool (two in all) or the A1 pool; its boot
            # volume (dbStorageGbs) is Always Free block storage too.
            db_vms += 1
            db_o, db_m = vmdb.db_vm_size(cfg.db_shape)
            ocpus, mem, boot_total = ocpus + (db_o or 1.0), mem + (db_m or 1.0), boot_total + cfg.db_storage_gbs
            if cfg.db_shape == "VM.Standard.E2.1.Micro":
                micro += 1
            if cfg.db_shape == "VM.Standard.A1.Flex":
                a1_ocpu, a1_mem = a1_ocpu + (db_o or 0.0), a1_mem + (db_m or 0.0)
            new, _ = estimate.price_instance(f"{s.stack}/db", cfg.db_shape, db_o, db_m, cfg.db_storage_gbs, free)
        else:
            new, _ = estimate.price_db_system(f"{s.stack}/db", cfg.db_shape, cfg.db_storage_gbs, free, cfg.db_engine)
        lines += new
    lim = free.limits
    hours = estimate.hours_per_month()
    micro += pools.pop("e2_micro_instances", 0.0)  # an engine whose managed free DB takes a micro VM
    e2_limit = lim["e2_micro_instances"]
    checks = [
        Check("VM.Standard.E2.1.Micro instances", micro, e2_limit, micro <= e2_limit, "", True),
        *(
            Check(f"{pool_shapes[pool]} DB systems", used, lim[pool], used <= lim[pool], "", True)
            for pool, used in pools.items()
        ),
        Check(
            "A1 Flex OCPUs (Always Free pool)",
            a1_ocpu,
            round(lim["a1_ocpu_hours"] / hours, 2),
            a1_ocpu * hours <= lim["a1_ocpu_hours"],
            "beyond the pool: paid",
        ),
        Check(
            "A1 Flex memory GB (Always Free pool)",
            a1_mem,
            round(lim["a1_memory_gb_hours"] / hours, 2),
            a1_mem * hours <= lim["a1_memory_gb_hours"],
            "beyond the pool: paid",
        ),
        Check(
            "boot volume GB (Always Free block storage)",
            boot_total,
            lim["block_volume_gbs"],
            boot_total <= lim["block_volume_gbs"],
            "beyond 200 GB: paid",
        ),
    ]
    monthly = round(sum(ln.monthly for ln in lines), 2)
    return TenancyReport(
        key=key,
        students=[s.stack for s, _ in members],
        instances=len(members) + db_vms,
        ocpus=ocpus,
        memory_gbs=mem,
        db_systems=len(members) - db_vms,
        storage_gbs=storage,
        checks=checks,
        monthly=monthly,
        lines=lines,
    )


def _paid_option(groups: dict[str, list[tuple[Student, LabConfig]]]) -> tuple[float, str]:
    """Monthly cost when what is over a free limit moves to the cheapest paid shapes, tenancy by tenancy."""
    total, extra_dbs, extra_vms, extra_db_vms = 0.0, 0, 0, 0
    moved: dict[tuple[str, str], int] = {}  # (free shape, paid shape) -> DBs moved
    for members in groups.values():
        free = estimate.FreeTier()
        for s, cfg in members:
            app = cfg.app_shape
            if app == "VM.Standard.E2.1.Micro" and free.remaining("e2_micro_instances") < 1:
                app, extra_vms = PAID_APP_SHAPE, extra_vms + 1
                lines, _ = estimate.price_instance(s.stack, app, 1, 6, None, free)
            else:
                lines, _ = estimate.price_instance(s.stack, app, cfg.app_ocpus, cfg.app_memory_gbs, None, free)
            total += sum(ln.monthly for ln in lines)
            shape, storage, engine = cfg.db_shape, float(cfg.db_storage_gbs), cfg.engine
            if vmdb.is_db_vm_engine(engine):  # the DB VM: as the app VM, onto A1 once the micro pool is used
                if shape == "VM.Standard.E2.1.Micro" and free.remaining("e2_micro_instances") < 1:
                    shape, extra_db_vms = PAID_APP_SHAPE, extra_db_vms + 1
                db_o, db_m = vmdb.db_vm_size(shape)
                lines, _ = estimate.price_instance(f"{s.stack}/db", shape, db_o, db_m, storage, free)
                total += sum(ln.monthly for ln in lines)
                continue
            managed_pools = [p for p in engine.free_pools if p != "e2_micro_instances"]
            if (
                shape == engine.always_free_shape
                and engine.paid_shape
                and any(free.remaining(p) < 1 for p in managed_pools)
            ):
                moved.setdefault((shape, engine.paid_shape), 0)
                moved[(shape, engine.paid_shape)] += 1
                shape, extra_dbs = engine.paid_shape, extra_dbs + 1
            lines, _ = estimate.price_db_system(s.stack, shape, storage, free, cfg.db_engine)
            total += sum(ln.monthly for ln in lines)
    shapes = ", ".join(f"on {paid} instead of {was}" for was, paid in moved) or "on paid shapes"
    detail = (
        f"{extra_dbs} DB system(s) {shapes}, {extra_vms} app VM(s) on "
        f"{PAID_APP_SHAPE} (1 OCPU, 6 GB) instead of E2.1.Micro"
        + (f", {extra_db_vms} DB VM(s) on {PAID_APP_SHAPE} (1 OCPU, 6 GB) too" if extra_db_vms else "")
        + "; the Always Free allowances still cover the rest"
    )
    return round(total, 2), detail


def preflight(students: Sequence[Student], cls: ClassConfig) -> PreflightReport:
    """What the class creates per tenancy against the Always Free limits, its monthly cost and a verdict."""
    configs = _configs(students, cls)
    mode = cls.tenancies
    groups: dict[str, list[tuple[Student, LabConfig]]] = {}
    for s, cfg in configs:
        groups.setdefault(_group_key(mode, s, cfg), []).append((s, cfg))
    reports = [_tenancy(k, v) for k, v in groups.items()]
    total = round(sum(t.monthly for t in reports), 2)
    notes = {
        "shared": "all students counted in one tenancy (tenancies: shared): a compartment OCID does not tell which "
        "tenancy it belongs to, so compartments are assumed to share one",
        "per-compartment": "each distinct compartment_id counted as its own tenancy (tenancies: per-compartment); "
        "compartments of one tenancy share its limits, so this holds only if they are in different tenancies",
        "per-student": "every student counted in their own tenancy (tenancies: per-student: each student's own "
        "Free Tier account)",
    }
    blocked = [t for t in reports if any(not c.ok and c.hard for c in t.checks)]
    unknown = {ln.item.rsplit(" ", 1)[0] for t in reports for ln in t.lines if ln.note == estimate.NOT_PRICED}
    options: list[Option] = []
    free_shapes = sorted({cfg.engine.always_free_shape for _, cfg in configs if cfg.engine.always_free_shape})
    free_text = ", ".join(f"one {shape}" for shape in free_shapes) or "the free DB"
    if blocked:
        verdict = DOES_NOT_FIT
        worst = blocked[0]
        over = [c for c in worst.checks if not c.ok and c.hard]
        summary = (
            f"DOES NOT FIT in {'one tenancy' if len(reports) == 1 else f'{len(blocked)} of {len(reports)} tenancies'}: "
            + "; ".join(f"{c.needed:g} {c.what} needed, {c.limit:g} allowed per tenancy" for c in over)
        )
        per_student = {s.stack: [(s, cfg)] for s, cfg in configs}
        ps_cost = round(sum(_tenancy(k, v).monthly for k, v in per_student.items()), 2)
        options.append(
            Option(
                "per-student tenancies",
                ps_cost,
                "each student deploys into their own Free Tier account (set tenancies: per-student and give each "
                f"row its own compartment_id): {free_text} and two E2.1.Micro per student fit",
            )
        )
        paid, detail = _paid_option(groups)
        paid_shapes = sorted({cfg.engine.paid_shape for _, cfg in configs if cfg.engine.paid_shape})
        options.append(Option(f"paid shapes in the shared tenancy ({', '.join(paid_shapes)})", paid, detail))
        vm_engines = [e.name for e in engines.ENGINES.values() if vmdb.is_db_vm_engine(e)]
        on_vm = (
            f" The DB-VM engines (dbEngine {', '.join(vm_engines)}) need a second E2.1.Micro or A1 capacity per student"
            if vm_engines
            else ""
        )
        options.append(
            Option(
                "later: one shared DB",
                None,
                "one DB system with a schema and user per student (not built yet)." + on_vm,
            )
        )
    elif unknown:
        verdict = COST_UNKNOWN
        summary = (
            f"fits the tenancy limits, but the cost is unknown: {', '.join(sorted(unknown))} not in the price table "
            f"(labctl/data/prices.json); known part {total:.2f} USD/month. Add the shape's price with its source, or "
            "check OCI's price list before deploying"
        )
    elif total > 0:
        verdict = FITS_PAID
        summary = f"fits the tenancy limits, but costs {total:.2f} USD/month (paid shapes or over the free pools)"
    else:
        verdict = FITS
        summary = f"fits Always Free: {len(configs)} student(s), 0.00 USD/month"
    return PreflightReport(
        verdict=verdict,
        summary=summary,
        grouping=mode,
        grouping_note=notes[mode],
        tenancies=reports,
        monthly_total=total,
        options=options,
        currency=estimate.price_table()["currency"],
        sources=estimate.source_lines(estimate.price_table(), estimate.price_table()["always_free"]["sources"]),
    )


def render_text(report: PreflightReport, width: int = 110) -> str:
    """The report as plain text (rich tables, no colour)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False, emoji=False)
    console.print(f"Preflight: {report.summary}")
    console.print(f"Grouping: {report.grouping_note}")
    for t in report.tenancies[:20]:
        table = Table(title=f"{t.key}: {len(t.students)} student(s), {t.monthly:.2f} {report.currency}/month")
        for col in ("check", "needed", "Always Free limit", "ok"):
            table.add_column(col)
        for c in t.checks:
            table.add_row(c.what, f"{c.needed:g}", f"{c.limit:g}", "yes" if c.ok else f"NO {c.note}".strip())
        console.print(table)
    if len(report.tenancies) > 20:
        console.print(f"... and {len(report.tenancies) - 20} more tenancies (see --json)")
    not_created = " (without what OCI would refuse to create)" if report.verdict == DOES_NOT_FIT else ""
    console.print(
        f"Verdict: {report.verdict} — monthly total {report.monthly_total:.2f} {report.currency}{not_created}"
    )
    if report.options:
        table = Table(title="Options")
        table.add_column("option")
        table.add_column(f"{report.currency}/month", justify="right")
        table.add_column("what it means")
        for o in report.options:
            table.add_row(o.title, "n/a" if o.monthly is None else f"{o.monthly:.2f}", o.detail)
        console.print(table)
    return buf.getvalue()
