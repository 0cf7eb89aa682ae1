"""Operations tier: alarms on the database and the app VM, all to one Notifications topic (and an e-mail).

The lecture's "monitoring with proactive alerting", per student stack. Three parts:

- ``parse_query`` / ``render_query``: the subset of the Monitoring Query Language (MQL) the alarms use, as a pure
  parser, so every query the program sends is checked before any resource is declared. Grammar (OCI docs, "Monitoring
  Query Language (MQL) Reference", https://docs.oracle.com/iaas/Content/Monitoring/Reference/mql.htm, and "Creating
  an Absence Alarm", .../Monitoring/Tasks/create-alarm-absence.htm)::

      query     := metric "[" interval "]" [ "{" dim ("," dim)* "}" ] [ ".groupBy(" name ")" ] "." tail
      dim       := name "=" '"' value '"'                       (spaces around "=" allowed)
      interval  := 1m..60m | 1h..24h | 1d
      tail      := statistic "(" [number] ")" operator number   (threshold alarm)
                 | "absent()"                                   (absence alarm: the metric stopped arriving)
      statistic := mean | max | min | sum | count | rate | percentile (percentile takes 0 < p < 1)
      operator  := > | >= | < | <= | == | !=

  Anchors: ``CpuUtilization[1m].mean() > 80`` (oci-landing-zones/terraform-oci-modules-observability
  alarms/preconfigured_alarms.tf, high-cpu-alarm), ``CpuUtilization[10m].percentile(0.9) < 85``
  (oracle/terraform-provider-oci examples/monitoring/alarms/alarms.tf), and the absence example
  ``CpuUtilization[1m]{resourceId = "<id>"}.groupBy(resourceId).absent()`` of the OCI page above.
- ``db_alarm_specs`` / ``vm_alarm_specs``: which alarms, with which threshold and why (pure data, tested alone).
- ``Operations``: the component (topic, optional EMAIL subscription, the alarms).

Cost: Monitoring alarms and Notifications topics have no charge of their own; what is metered (datapoints,
deliveries) stays inside the Always Free allowances for one lab (labctl/data/prices.json ``operations``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_oci as oci

from components import ocimods
from components.labhours import LabHours
from engines.base import Engine

# only the modules used are imported (components/ocimods.py)
ocimods.use("ons", "notification_topic", "subscription")
ocimods.use("monitoring", "alarm")

VM_NAMESPACE = "oci_computeagent"
# Metric names of the Oracle Cloud Agent's compute metrics (OCI docs "Compute Instance Metrics",
# https://docs.oracle.com/iaas/Content/Compute/References/computemetrics.htm; used with this namespace by
# terraform-oci-modules-observability alarms/preconfigured_alarms.tf high-cpu-alarm and high-memory-alarm).
VM_METRICS = {"cpu": "CpuUtilization", "memory": "MemoryUtilization"}

STATISTICS = ("mean", "max", "min", "sum", "count", "rate", "percentile")
OPERATORS = (">=", "<=", "==", "!=", ">", "<")  # two-character operators first, so ">=" is not read as ">"
SEVERITIES = ("CRITICAL", "ERROR", "WARNING", "INFO")  # pulumi_oci 5.5.0 monitoring/alarm.py `severity`

# Pending duration: how long a condition must hold before the alarm fires. Five minutes is what the landing zone's
# preconfigured alarms use for every threshold alarm (preconfigured_alarms.tf pending_duration = "PT5M"): one busy
# minute (a student's big import) is not an incident.
PENDING = "PT5M"
# Percent thresholds, each a share of the shape's own capacity (the metrics are percentages of what the shape has).
CPU_PERCENT = 80  # landing zone high-cpu-alarm: CpuUtilization[1m].mean() > 80; same limit for the DB's CPU
VM_MEMORY_PERCENT = 80  # landing zone high-memory-alarm: MemoryUtilization[1m].mean() > 80
# A MySQL DB system keeps most of its memory as InnoDB buffer pool by design (HeatWave sizes innodb_buffer_pool_size
# per shape, e.g. 10 GiB of the 16 GiB of MySQL.2.16GB: "User-Configurable Shape-Dependent System Variables"), so a
# healthy DB runs well above 80 %; only the last tenth of the shape's memory is a warning sign.
DB_MEMORY_PERCENT = 90
# Storage: at 80 % of the DB system's volume a MySQL.Free system (fixed 50 GB, cannot grow) has 10 GB left, days of
# a lab's growth; a paid shape can grow dbStorageGbs in place before it fills (README, "Elastic sizing").
STORAGE_PERCENT = 80
# Connections: warn at 80 % of the shape's max_connections, the same headroom as CPU and storage.
CONNECTIONS_SHARE = 0.8


# The database's alarm roles (Engine.metrics keys); a role the engine has no metric for is named in a warning with
# the engine's reason (Engine.alarm_gaps), so a plan never silently lacks the storage or backup alarm.
ALARM_ROLES = ("cpu", "memory", "storage", "connections", "backup_failure")


class QueryError(ValueError):
    """An MQL query outside the grammar this module accepts."""


@dataclass(frozen=True)
class Query:
    """One parsed alarm query."""

    metric: str
    interval: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str  # one of STATISTICS, or "absent"
    statistic_arg: float | None = None  # percentile's p
    operator: str | None = None  # None for absent()
    threshold: float | None = None
    group_by: str | None = None

    @property
    def is_absence(self) -> bool:
        return self.statistic == "absent"


_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_QUERY_RE = re.compile(
    rf"^(?P<metric>{_NAME})\[(?P<interval>[0-9]+[mhd])\]"
    r"(?:\{(?P<dims>[^{}]*)\})?"
    rf"(?:\.groupBy\((?P<group>{_NAME})\))?"
    rf"\.(?P<stat>{_NAME})\((?P<arg>[^()]*)\)"
    r"(?P<rest>.*)\Z",
    re.DOTALL,
)
_DIM_RE = re.compile(rf'^\s*(?P<key>{_NAME})\s*=\s*"(?P<value>[^"]*)"\s*\Z')
_PREDICATE_RE = re.compile(rf"^\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<num>{_NUMBER})\s*\Z")
_INTERVAL_LIMITS = {"m": 60, "h": 24, "d": 1}


def parse_query(text: str) -> Query:
    """``text`` parsed by the grammar in this module's docstring, or ``QueryError`` saying what is wrong."""
    m = _QUERY_RE.match(text.strip())
    if not m:
        raise QueryError(f"{text!r} is not metric[interval]{{dims}}.statistic() op number, nor ....absent()")
    interval = m["interval"]
    n, unit = int(interval[:-1]), interval[-1]
    if not 1 <= n <= _INTERVAL_LIMITS[unit]:
        raise QueryError(f"interval {interval} is out of range (1m-60m, 1h-24h or 1d)")
    dims: list[tuple[str, str]] = []
    if m["dims"] is not None:
        for part in m["dims"].split(","):
            d = _DIM_RE.match(part)
            if not d:
                raise QueryError(f'dimension filter {part.strip()!r} is not name = "value"')
            if not d["value"]:
                raise QueryError(f"dimension {d['key']} has an empty value")
            dims.append((d["key"], d["value"]))
    stat, arg, rest = m["stat"], m["arg"].strip(), m["rest"]
    if stat == "absent":
        if arg or rest.strip():
            raise QueryError("absent() takes no argument here and no comparison after it")
        return Query(m["metric"], interval, tuple(dims), "absent", group_by=m["group"])
    if stat not in STATISTICS:
        raise QueryError(f"statistic {stat}() is not one of {', '.join(STATISTICS)} or absent")
    stat_arg = None
    if stat == "percentile":
        if not re.fullmatch(_NUMBER, arg) or not 0 < float(arg) < 1:
            raise QueryError(f"percentile({arg}) needs a fraction between 0 and 1, e.g. percentile(0.9)")
        stat_arg = float(arg)
    elif arg:
        raise QueryError(f"{stat}() takes no argument")
    p = _PREDICATE_RE.match(rest)
    if not p:
        raise QueryError(f"{rest.strip()!r} is not a comparison like '> 80' (a threshold alarm needs one)")
    return Query(m["metric"], interval, tuple(dims), stat, stat_arg, p["op"], float(p["num"]), m["group"])


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def render_query(q: Query) -> str:
    """The MQL text of ``q`` (``parse_query(render_query(q)) == q``)."""
    out = f"{q.metric}[{q.interval}]"
    if q.dimensions:
        out += "{" + ", ".join(f'{k} = "{v}"' for k, v in q.dimensions) + "}"
    if q.group_by:
        out += f".groupBy({q.group_by})"
    if q.is_absence:
        return out + ".absent()"
    arg = _number(q.statistic_arg) if q.statistic_arg is not None else ""
    return out + f".{q.statistic}({arg}) {q.operator} {_number(q.threshold or 0)}"


# --- which alarms ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlarmSpec:
    """One alarm, before it knows the resource it watches (``query_for`` adds the resourceId filter)."""

    key: str  # name suffix: lab-db-cpu, lab-vm-down, ...
    namespace: str
    metric: str
    statistic: str
    operator: str | None
    threshold: float | None
    severity: str
    pending_duration: str
    body: str  # what the recipient reads, and what to do
    interval: str = "1m"

    def query_for(self, resource_id: str) -> str:
        """The MQL query of this alarm filtered to one resource; validated by ``parse_query``."""
        absent = self.statistic == "absent"
        q = Query(
            self.metric,
            self.interval,
            (("resourceId", resource_id),),
            self.statistic,
            operator=self.operator,
            threshold=self.threshold,
            # Absence alarms group by the resource, as OCI recommends, so a new dimension OCI adds to the metric
            # (an empty new stream) cannot fire them ("Creating an Absence Alarm", note on groupBy).
            group_by="resourceId" if absent else None,
        )
        text = render_query(q)
        parse_query(text)
        return text


@dataclass
class AlarmPlan:
    specs: list[AlarmSpec]
    warnings: list[str] = field(default_factory=list)


def db_alarm_specs(engine: Engine, shape: str, storage_gbs: int, db_running: bool = True) -> AlarmPlan:
    """The database's alarms for ``engine`` on ``shape`` with ``storage_gbs`` of storage; ``db_running`` False
    (config dbState INACTIVE) leaves out the "DB stopped reporting" alarm of an engine that has one."""
    plan = AlarmPlan([])
    ns, metrics = engine.monitoring_namespace, engine.metrics
    if ns is None:
        plan.warnings.append(f"engine {engine.name} publishes no metrics the lab knows: no database alarms")
        return plan
    if "cpu" in metrics:
        plan.specs.append(
            AlarmSpec(
                "db-cpu",
                ns,
                metrics["cpu"],
                "mean",
                ">",
                CPU_PERCENT,
                "WARNING",
                PENDING,
                f"The database ({shape}) has used more than {CPU_PERCENT}% of its CPU for 5 minutes. Look for "
                f"long-running queries{f' ({engine.activity_query()})' if engine.activity_query() else ''} or "
                "choose a larger dbShape.",
            )
        )
    if "memory" in metrics:
        plan.specs.append(
            AlarmSpec(
                "db-memory",
                ns,
                metrics["memory"],
                "mean",
                ">",
                DB_MEMORY_PERCENT,
                "WARNING",
                PENDING,
                f"The database ({shape}) has used more than {DB_MEMORY_PERCENT}% of its memory for 5 minutes "
                "(the buffer pool alone is most of it by design). Close idle connections or choose a larger dbShape.",
            )
        )
    if "storage" in metrics:
        left = storage_gbs * (100 - STORAGE_PERCENT) / 100
        grow = (
            f"{shape} has a fixed {storage_gbs} GB: delete data or move to a paid dbShape"
            if shape in engine.fixed_storage_gbs
            else "raise dbStorageGbs (changed in place, no data lost)"
        )
        plan.specs.append(
            AlarmSpec(
                "db-storage",
                ns,
                metrics["storage"],
                "max",
                ">",
                STORAGE_PERCENT,
                "CRITICAL",
                PENDING,
                f"The database volume is over {STORAGE_PERCENT}% full (less than {left:g} GB of {storage_gbs} GB "
                f"left). {grow}.",
            )
        )
    if "connections" in metrics:
        limit = engine.max_connections.get(shape)
        if limit is None:
            plan.warnings.append(
                f"no connections alarm for {shape}: its max_connections is not recorded in its engine module "
                "(engines/; add it with its source to get one)"
            )
        else:
            near = int(limit * CONNECTIONS_SHARE)
            plan.specs.append(
                AlarmSpec(
                    "db-connections",
                    ns,
                    metrics["connections"],
                    "max",
                    ">",
                    near,
                    "WARNING",
                    PENDING,
                    f"More than {near} connections are open on the database ({shape} allows {limit}). Look for a "
                    "connection leak in the app (connections opened and never closed).",
                )
            )
    if "backup_failure" in metrics:
        plan.specs.append(
            AlarmSpec(
                "db-backup-failure",
                ns,
                metrics["backup_failure"],
                "max",
                ">",
                0,  # the metric is 0 (OK) or 1 (FAILED) per interval (HeatWave "Metrics"): any failure counts
                "CRITICAL",
                # A backup failure is an event, not a level: fire at the first failed evaluation (one minute is the
                # shortest pending duration OCI accepts, "PT1M").
                "PT1M",
                "An automatic backup of the database failed. Check the DB system's Backups page in the OCI console; "
                "until a backup succeeds, a lost database cannot be restored.",
                # Backups run about once a day; an hour-wide interval keeps the failed point visible to the alarm.
                interval="1h",
            )
        )
    if "down" in metrics:  # a DB VM: the agent's metric gone silent = the DB's machine is down (as vm-down)
        if db_running:
            plan.specs.append(
                AlarmSpec(
                    "db-down",
                    ns,
                    metrics["down"],
                    "absent",
                    None,
                    None,
                    "CRITICAL",
                    PENDING,
                    "The database VM has stopped sending metrics: it is stopped, hung or unreachable for its agent. "
                    "Check it in the OCI console (Compute > Instances) and start or reboot it.",
                )
            )
        else:
            plan.warnings.append(
                "dbState is INACTIVE: no db-down alarm (the DB VM is stopped on purpose; `labctl class start` "
                "brings the alarm back with the VM)"
            )
    gaps = [role for role in ALARM_ROLES if role not in metrics]
    if gaps:
        reasons = "; ".join(
            f"{role}: {engine.alarm_gaps.get(role, f'{ns} has no such metric the lab knows')}" for role in gaps
        )
        names = ", ".join(f"db-{role.replace('_', '-')}" for role in gaps)
        plan.warnings.append(f"no {names} alarm for {engine.name} ({reasons})")
    return plan


def vm_alarm_specs(shape: str) -> AlarmPlan:
    """The app VM's alarms: CPU, memory, and "the VM stopped reporting" (absent)."""
    return AlarmPlan(
        [
            AlarmSpec(
                "vm-cpu",
                VM_NAMESPACE,
                VM_METRICS["cpu"],
                "mean",
                ">",
                CPU_PERCENT,
                "WARNING",
                PENDING,
                f"The app VM ({shape}) has used more than {CPU_PERCENT}% of its CPU for 5 minutes.",
            ),
            AlarmSpec(
                "vm-memory",
                VM_NAMESPACE,
                VM_METRICS["memory"],
                "mean",
                ">",
                VM_MEMORY_PERCENT,
                "WARNING",
                PENDING,
                f"The app VM ({shape}) has used more than {VM_MEMORY_PERCENT}% of its memory for 5 minutes.",
            ),
            AlarmSpec(
                "vm-down",
                VM_NAMESPACE,
                VM_METRICS["cpu"],
                "absent",
                None,
                None,
                "CRITICAL",
                PENDING,
                "The app VM has stopped sending metrics: it is stopped, hung or unreachable for its agent. Check it "
                "in the OCI console (Compute > Instances) and start or reboot it.",
            ),
        ]
    )


def topic_name(name_prefix: str) -> str:
    """The Notifications topic's name: unique in the tenancy because the prefix is (dblab-<student|stack>).

    OCI topic names: 1-256 characters, letters, digits, hyphens and underscores (pulumi_oci ons/notification_topic.py
    `name`: "must be unique across the tenancy").
    """
    name = f"{name_prefix}-alerts"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", name):
        raise ValueError(f"topic name {name!r} has characters OCI refuses (letters, digits, - and _ only)")
    return name


# --- the component ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OperationsArgs:
    compartment_id: str
    engine: Engine
    db_shape: str
    db_storage_gbs: int
    db_id: pulumi.Input[str]  # the DB system's OCID
    app_shape: str
    app_instance_id: pulumi.Input[str]  # the app VM's OCID
    name_prefix: str
    tags: dict[str, str]
    alert_email: str | None = None
    lab_hours: LabHours | None = None  # None: the VM is always on
    db_running: bool = True  # config dbState ACTIVE; False: stopped on purpose (labctl class stop)


class Operations(pulumi.ComponentResource):
    """One Notifications topic, an optional e-mail subscription, and the alarms of the DB and the app VM."""

    topic_id: pulumi.Output[str]
    alarm_names: list[str]

    def __init__(self, name: str, args: OperationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-dblab:operations:Operations", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = oci.ons.NotificationTopic(
            f"{name}-topic",
            compartment_id=args.compartment_id,
            name=topic_name(args.name_prefix),
            description="oci-dblab: alarms of this lab's database and app VM",
            freeform_tags=args.tags,
            opts=child,
        )
        if args.alert_email:
            # An EMAIL subscription stays PENDING until the recipient follows the link OCI mails to them.
            oci.ons.Subscription(
                f"{name}-email",
                compartment_id=args.compartment_id,
                topic_id=topic.id,
                protocol="EMAIL",
                endpoint=args.alert_email,
                freeform_tags=args.tags,
                opts=child,
            )
        else:
            pulumi.log.warn(
                "alertEmail is not set: the alarms still fire to the Notifications topic "
                f"{topic_name(args.name_prefix)} (visible in the OCI console), but nobody is e-mailed; "
                "set one with `pulumi config set alertEmail you@example.edu`"
            )
        db = db_alarm_specs(args.engine, args.db_shape, args.db_storage_gbs, args.db_running)
        vm = vm_alarm_specs(args.app_shape)
        if args.lab_hours is not None:
            # The VM is stopped on purpose outside lab hours; an absence alarm cannot tell that from a crash.
            vm.specs = [s for s in vm.specs if s.statistic != "absent"]
            vm.warnings.append(
                "labHours is set: no vm-down alarm (the VM is stopped on purpose outside lab hours, and an absence "
                "alarm cannot tell that from a crash)"
            )
            self._lab_hours(name, args)
        for w in db.warnings + vm.warnings:
            pulumi.log.warn(w)
        self.alarm_names = []
        for specs, target in ((db.specs, args.db_id), (vm.specs, args.app_instance_id)):
            for spec in specs:
                alarm_name = f"{name}-{spec.key}"
                oci.monitoring.Alarm(
                    alarm_name,
                    compartment_id=args.compartment_id,
                    metric_compartment_id=args.compartment_id,
                    display_name=f"{args.name_prefix}-{spec.key}",
                    namespace=spec.namespace,
                    query=pulumi.Output.from_input(target).apply(spec.query_for),
                    severity=spec.severity,
                    pending_duration=spec.pending_duration,
                    body=spec.body,
                    destinations=[topic.id],
                    is_enabled=True,
                    message_format="ONS_OPTIMIZED",
                    freeform_tags=args.tags,
                    opts=child,
                )
                self.alarm_names.append(alarm_name)
        self.topic_id = topic.id
        self.register_outputs({"topicId": self.topic_id, "alarms": self.alarm_names})

    def _lab_hours(self, name: str, args: OperationsArgs) -> None:
        """Resource Scheduler schedules that start the VM when lab hours begin and stop it when they end, and the IAM
        policy that lets exactly these two schedules act on instances (a schedule has no permission of its own:
        OCI docs "Resource Scheduler Example Policies", https://docs.oracle.com/iaas/Content/resource-scheduler/
        references/example_policies.htm, "Allow any-user to manage <resource_type> in compartment id <ocid>
        where ..." with request.principal.type='resourceschedule' and the schedule's id; `instances` is the IAM
        resource type of compute instances)."""
        ocimods.use("resourcescheduler", "schedule")  # only with labHours (components/ocimods.py)
        ocimods.use("identity", "policy")
        hours = args.lab_hours
        assert hours is not None
        child = pulumi.ResourceOptions(parent=self)
        schedules = []
        for what, action, cron in (
            ("start", "START_RESOURCE", hours.start_cron),
            ("stop", "STOP_RESOURCE", hours.stop_cron),
        ):
            schedules.append(
                oci.resourcescheduler.Schedule(
                    f"{name}-vm-{what}",
                    compartment_id=args.compartment_id,
                    action=action,
                    recurrence_type="CRON",
                    recurrence_details=cron,
                    local_time_zone=hours.time_zone,
                    display_name=f"{args.name_prefix}-vm-{what}",
                    description=f"oci-dblab: {what} the app VM (labHours)",
                    resources=[oci.resourcescheduler.ScheduleResourceArgs(id=args.app_instance_id)],
                    freeform_tags=args.tags,
                    opts=child,
                )
            )
        # A policy in the tenancy's root compartment names the tenancy itself as "tenancy", not by OCID.
        scope = (
            "tenancy" if args.compartment_id.startswith("ocid1.tenancy.") else f"compartment id {args.compartment_id}"
        )
        oci.identity.Policy(
            f"{name}-schedules-policy",
            compartment_id=args.compartment_id,
            name=f"{args.name_prefix}-lab-hours",
            description="oci-dblab: lets this lab's two Resource Scheduler schedules start and stop its VM",
            statements=[
                pulumi.Output.concat(
                    f"Allow any-user to manage instances in {scope} where all "
                    "{request.principal.type='resourceschedule', request.principal.id='",
                    s.id,
                    "'}",
                )
                for s in schedules
            ],
            freeform_tags=args.tags,
            opts=child,
        )
