"""What ``labHours`` saves per month, and which Always Free VMs risk being reclaimed as idle (pure; for labctl plan).

Saving. Outside lab hours the app VM is stopped by its Resource Scheduler schedules (components/operations.py), and
the DB system can be stopped by ``labctl class stop`` on the same hours (labctl/dbpower.py, a cron/CI job in the
README). What stops being billed:

- a VM of a Standard shape: its OCPU and memory hours ("Standard shapes: Stopping an instance pauses billing", OCI
  docs "Resource Billing for Stopped Instances",
  https://docs.oracle.com/en-us/iaas/Content/Compute/Tasks/resource-billing-stopped-instances.htm); its boot volume is
  storage and stays billed;
- a MySQL DB system: its shape's ECPU hours ("Stopping a DB system stops billing for all shapes associated with it.
  However, billing continues for storage", https://docs.oracle.com/en-us/iaas/mysql-database/doc/billing2.html).

So the saving of a resource is the paid part of its hour-metered cost lines (units ``*-hour`` of
``labctl.estimate.monthly_cost``) for the hours outside lab hours. Always Free lines save nothing; an A1 Flex VM
saves only what it would have used beyond the Always Free pool. Hours per month are the price table's
(``hours_per_month``), lab hours per month are ``labHours``' hours per week x hours_per_month / 168.

Idle reclamation. "Idle Always Free compute instances may be reclaimed by Oracle. Oracle will deem virtual machine and
bare metal compute instances as idle if, during a 7-day period, the following are true: CPU utilization for the 95th
percentile is less than 20%; Network utilization is less than 20%; Memory utilization is less than 20% (applies to A1
shapes only)" (OCI docs "Always Free Resources", section "Reclamation of Idle Compute Instances",
https://docs.oracle.com/en-us/iaas/Content/FreeTier/freetier_topic-Always_Free_Resources.htm, quoted in
althacker.news item 47293621). A lab VM runs a small app and a client (or a lab database): far under 20 % most of
the week. The
same thread quotes Oracle's reclamation notice: "You can keep idle compute instances from being stopped by converting
your account to Pay As You Go (PAYG)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from components.labhours import LabHours, LabHoursError, parse_lab_hours
from labctl import estimate

INSTANCE = estimate.INSTANCE
SCHEDULE = "oci:ResourceScheduler/schedule:Schedule"
HOURS_PER_WEEK = 168
TARGET_STATES = ("ACTIVE", "INACTIVE")  # a resource the program gives a target state: `labctl class stop` stops it
IDLE_DOC = "https://docs.oracle.com/en-us/iaas/Content/FreeTier/freetier_topic-Always_Free_Resources.htm"
VM_BILLING_DOC = "https://docs.oracle.com/en-us/iaas/Content/Compute/Tasks/resource-billing-stopped-instances.htm"
DB_BILLING_DOC = "https://docs.oracle.com/en-us/iaas/mysql-database/doc/billing2.html"


@dataclass(frozen=True)
class SavingLine:
    name: str
    resource_type: str
    how: str  # what stops it: "Resource Scheduler (labHours)" or "labctl class stop|start (cron job)"
    off_hours: float  # per month
    monthly_saved: float | None  # None: the shape is not in the price table
    note: str


@dataclass
class Savings:
    lab_hours: str
    hours_per_month: int
    lab_hours_per_month: float
    lines: list[SavingLine] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def automatic(self) -> float:
        """Saved by the schedules alone (the VMs)."""
        return round(sum(ln.monthly_saved or 0.0 for ln in self.lines if "Scheduler" in ln.how), 2)

    @property
    def total(self) -> float:
        """Saved when the DB systems are also stopped by ``labctl class stop|start`` on the same hours."""
        return round(sum(ln.monthly_saved or 0.0 for ln in self.lines), 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labHours": self.lab_hours,
            "hoursPerMonth": self.hours_per_month,
            "labHoursPerMonth": self.lab_hours_per_month,
            "savedBySchedulesUsd": self.automatic,
            "savedWithDbStopStartUsd": self.total,
            "lines": [asdict(ln) for ln in self.lines],
            "sources": list(self.sources),
        }


def lab_hours_of(config: Mapping[str, str]) -> LabHours | None:
    """The stack's ``labHours`` (full config keys), or None when unset or invalid (the program reports that)."""
    text = (config.get("oci-dblab:labHours") or "").strip()
    if not text:
        return None
    try:
        return parse_lab_hours(text)
    except LabHoursError:
        return None


def scheduled_ids(resources: Sequence[Any]) -> set[str]:
    """Ids of the resources a STOP_RESOURCE schedule of the plan stops."""
    out: set[str] = set()
    for r in resources:
        props = r.props or {}
        if r.resource_type == SCHEDULE and props.get("action") == "STOP_RESOURCE":
            out |= {str(x.get("id")) for x in props.get("resources") or [] if isinstance(x, Mapping)}
    return out


def _saved(lines: Sequence[estimate.CostLine], off_share: float) -> tuple[float | None, bool]:
    """(monthly saving, any paid hours) of one resource's cost lines when it stops for ``off_share`` of the month.

    Per item (OCPU, memory, ECPU) the free and paid lines are one quantity: the free part is what the Always Free pool
    gave it, so running fewer hours first gives back paid hours, and only the paid ones are saved.
    """
    if not lines or any(ln.note == estimate.NOT_PRICED for ln in lines):  # no line at all is unknown, never free
        return None, False
    items: dict[str, list[estimate.CostLine]] = {}
    for ln in lines:
        if ln.unit.endswith("-hour"):
            items.setdefault(ln.item, []).append(ln)
    saved, paid_any = 0.0, False
    for parts in items.values():
        free_q = sum(p.quantity for p in parts if p.free)
        paid_q = sum(p.quantity for p in parts if not p.free)
        price = max(p.unit_price for p in parts)
        if paid_q <= 0:
            continue
        paid_any = True
        running = (free_q + paid_q) * (1 - off_share)
        saved += (paid_q - max(0.0, running - free_q)) * price
    return round(saved, 2), paid_any


def lab_hours_savings(resources: Sequence[Any], config: Mapping[str, str]) -> Savings | None:
    """The monthly saving of ``labHours`` for this plan, per resource it stops; None without ``labHours``."""
    hours = lab_hours_of(config)
    if hours is None:
        return None
    per_month = estimate.hours_per_month()
    lab = round(hours.hours_per_week * per_month / HOURS_PER_WEEK, 1)
    off = round(per_month - lab, 1)
    share = off / per_month
    cost = estimate.monthly_cost(resources)
    by_name: dict[str, list[estimate.CostLine]] = {}
    for ln in cost.lines:
        by_name.setdefault(ln.name, []).append(ln)
    stopped = scheduled_ids(resources)
    text = config.get("oci-dblab:labHours", "").strip()
    out = Savings(text, per_month, lab)
    used_vm = used_db = False
    for r in resources:
        if not r.custom:
            continue
        props = r.props or {}
        if r.resource_type == INSTANCE and r.id in stopped:
            how = "Resource Scheduler (labHours)"
            used_vm = True
        elif props.get("state") in TARGET_STATES:
            how = "labctl class stop|start (cron job)"
            used_db = True
        else:
            continue
        saved, paid = _saved(by_name.get(r.name, []), share)
        if saved is None:
            note = "not in the price table: the saving is unknown"
        elif not paid:
            note = "Always Free: it costs nothing running, so stopping it saves nothing"
        else:
            note = f"{off:g} h/month stopped; only the shape's hours stop being billed, storage stays billed"
        out.lines.append(SavingLine(r.name, r.resource_type, how, off, saved, note))
    if used_vm:
        out.sources.append(f"{VM_BILLING_DOC} — Standard shapes: stopping an instance pauses billing")
    if used_db:
        out.sources.append(f"{DB_BILLING_DOC} — stopping a DB system stops billing for its shape, not its storage")
    return out


def idle_warnings(resources: Sequence[Any], config: Mapping[str, str]) -> list[str]:
    """A warning per Always Free VM of the plan: Oracle may stop it after 7 idle days (cited in the module)."""
    cost = estimate.monthly_cost(resources)
    free_vms = {
        ln.name
        for ln in cost.lines
        if ln.resource_type == INSTANCE and ln.free and (ln.unit == "instance" or ln.unit.endswith("-hour"))
    }
    paid_vms = {ln.name for ln in cost.lines if ln.resource_type == INSTANCE and not ln.free and ln.monthly > 0}
    hours = lab_hours_of(config)
    stopped = scheduled_ids(resources)
    out = []
    for r in resources:
        if r.resource_type != INSTANCE or r.name not in free_vms or r.name in paid_vms:
            continue
        shape = str((r.props or {}).get("shape", ""))
        a1 = " or memory (A1 shapes)" if "A1" in shape else ""
        if hours is not None and r.id in stopped:
            when = (
                f"labHours ({hours.hours_per_week:g} h a week) saves nothing on it (Always Free), and in lab hours "
                "a lab VM rarely reaches 20 %; the start schedule does start it again at the next lab hours if "
                "Oracle stopped it"
            )
        else:
            when = "a lab VM (a small app, a client, a lab database) stays far below that most of the week"
        out.append(
            f"{r.name} ({shape}) is Always Free compute: Oracle may reclaim (stop) it after 7 days with CPU (95th "
            f"percentile), network{a1} under 20 % ({IDLE_DOC}, 'Reclamation of Idle Compute Instances'); {when}. "
            "Start it again from the console if it was stopped; Oracle's notice says a Pay As You Go account keeps "
            "idle instances from being stopped"
        )
    return out
