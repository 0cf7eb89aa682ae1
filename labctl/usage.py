"""``labctl class usage``: what each student's lab cost in a period, read back from OCI, against their budget.

Metering back (issue 13 item 3). Cost per student comes from the OCI Usage API, grouped by the class layer's
cost-tracking tag ``<namespace>.student`` (components/classtag.py): every resource of a student stack carries it, so
OCI attributes each line of usage to one student. Two sources behind one small interface (``UsageSource``):

- ``OciUsage``: the OCI Python SDK's ``oci.usage_api.UsageapiClient.request_summarized_usages`` (oci 2.189.0,
  oci/usage_api/usageapi_client.py:3049, ``POST /20200107/usage``), with a
  ``oci.usage_api.models.RequestSummarizedUsagesDetails`` (models/request_summarized_usages_details.py: required
  ``tenant_id``, ``time_usage_started``, ``time_usage_ended``, ``granularity`` HOURLY|DAILY|MONTHLY; ``query_type``
  COST|USAGE; ``group_by`` e.g. "tagNamespace", "tagKey", "tagValue", "service"; ``group_by_tag``: "GroupBy a
  specific tagKey. Provide the tagNamespace and tagKey in the tag object. Only supports one tag in the list"). The
  answer is a ``UsageAggregation`` whose ``items`` are ``UsageSummary`` (models/usage_summary.py: ``service``,
  ``computed_amount``, ``currency``, ``tags`` as ``Tag(namespace, key, value)``), paged by ``opc-next-page``. The SDK
  is an optional dependency (``pip install 'oci-dblab[usage]'``, pinned in pyproject.toml) imported only here, only
  when the cloud is asked: students' stacks never install it.
- ``OfflineUsage``: a deterministic fake, no account needed. From a fixture file (the Usage API's JSON answer, as the
  API, the SDK's ``oci.util.to_dict`` or the OCI CLI spells it: camelCase, snake_case or kebab-case keys), or, without
  one, from the class's planned stacks: each student's monthly price from ``labctl class preflight`` (same price
  table, Always Free allowances used up in roster order) pro-rated to the period.

Both sources answer ``CostItem`` rows; ``summarize`` turns them into one row per student, with the budget for the
period (the class layer's ``monthlyBudgetUsd``, or ``--budget``, x the months the period covers) and an OVER flag.
The tag namespace is the class layer's ``name`` (``classLayer`` of the class file). ``write_csv`` writes atomically.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from components.portable import atomic_write_text

TAG_KEY = "student"  # the class layer's cost-tracking tag key (components/classtag.py TAG_KEY)
UNTAGGED = "(untagged)"
PERIOD_EXAMPLE = "2026-11  (a month), or 2026-09-01..2026-12-01  (from a day up to, not including, another)"
CSV_COLUMNS = ("student", "stack", "cost", "currency", "budget", "share_of_budget", "over_budget", "top_services")


class UsageError(ValueError):
    """Bad input of ``labctl class usage`` (period, student, path, fixture, budget): one message, exit 2."""


# --- the period --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    start: date  # first day, 00:00 UTC
    end: date  # first day NOT included, 00:00 UTC
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def months(self) -> float:
        """How many calendar months the period covers: each day counts 1/(days of its month). 2026-11 -> 1.0."""
        total, day = 0.0, self.start
        while day < self.end:
            nxt = _first_of_next_month(day)
            stop = min(nxt, self.end)
            total += (stop - day).days / (nxt - day.replace(day=1)).days
            day = stop
        return round(total, 6)


def _first_of_next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--period: {what} '{text}' is not a date YYYY-MM-DD. Example: {PERIOD_EXAMPLE}") from None


def parse_period(text: str, today: date) -> Period:
    """``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD`` (end excluded) as a ``Period``; ``UsageError`` otherwise.

    Days, not hours: the Usage API's DAILY granularity counts whole UTC days, so a period starts and ends at 00:00
    UTC. A period that starts after today has no usage yet and is refused; one that reaches past today is cut at
    tomorrow (today's usage so far is included).
    """
    raw = text.strip()
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", raw)
    if m:
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise UsageError(f"--period: '{raw}' has no month {month:02d}. Example: {PERIOD_EXAMPLE}")
        start = date(year, month, 1)
        end = _first_of_next_month(start)
    elif ".." in raw:
        a, b = raw.split("..", 1)
        start, end = _day(a.strip(), "start"), _day(b.strip(), "end")
        if end <= start:
            raise UsageError(
                f"--period: '{raw}' ends before it starts (the end day is excluded, so one day is "
                f"{start.isoformat()}..{(start + timedelta(days=1)).isoformat()}). Example: {PERIOD_EXAMPLE}"
            )
    else:
        raise UsageError(f"--period: '{raw}' is not a month or a range of days. Example: {PERIOD_EXAMPLE}")
    if start > today:
        raise UsageError(f"--period: '{raw}' starts after today ({today.isoformat()}); there is no usage yet")
    tomorrow = today + timedelta(days=1)
    if end > tomorrow:
        end = tomorrow
    return Period(start, end, raw)


# --- what a source answers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostItem:
    student: str  # the tag's value, or UNTAGGED
    service: str
    amount: float
    currency: str


class UsageSource(Protocol):
    """Where cost per student comes from. ``kind`` goes into the table's title ("offline" must never pass for OCI)."""

    kind: str

    def costs(self, period: Period) -> list[CostItem]: ...


def _norm(key: str) -> str:
    return key.replace("-", "").replace("_", "").lower()


def _get(obj: Mapping[str, Any], name: str) -> Any:
    want = _norm(name)
    for k, v in obj.items():
        if _norm(str(k)) == want:
            return v
    return None


def items_from_answer(doc: Any, namespace: str | None, where: str = "the Usage API answer") -> list[CostItem]:
    """``CostItem`` rows of a Usage API answer (``UsageAggregation``: ``{"items": [UsageSummary, ...]}``, optionally
    wrapped in ``{"data": ...}`` as the OCI CLI prints it). Keys in any of the API's, the SDK's or the CLI's spellings.

    An item's student is the value of its tag ``<namespace>.student`` (any namespace when ``namespace`` is None);
    items without that tag are ``UNTAGGED``. Forecast items (``isForecast``) are not usage and are left out.
    """
    if isinstance(doc, Mapping) and _get(doc, "data") is not None and _get(doc, "items") is None:
        doc = _get(doc, "data")
    items = _get(doc, "items") if isinstance(doc, Mapping) else None
    if not isinstance(items, list):
        raise UsageError(f"{where}: no 'items' list (expected the Usage API's UsageAggregation JSON)")
    out: list[CostItem] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise UsageError(f"{where}: items[{i}] is not an object")
        if _get(item, "isForecast") is True:
            continue
        amount = _get(item, "computedAmount")
        if amount is None:  # OCI leaves it out for usage with no cost line (e.g. Always Free)
            amount = 0.0
        try:
            value = float(amount)
        except (TypeError, ValueError):
            raise UsageError(f"{where}: items[{i}].computedAmount '{amount}' is not a number") from None
        student = UNTAGGED
        for tag in _get(item, "tags") or []:
            if not isinstance(tag, Mapping):
                continue
            if _get(tag, "key") == TAG_KEY and (namespace is None or _get(tag, "namespace") == namespace):
                student = str(_get(tag, "value") or "") or UNTAGGED
        out.append(CostItem(student, str(_get(item, "service") or "unknown"), value, str(_get(item, "currency") or "")))
    return out


class FixtureUsage:
    """The offline fake from a file holding a Usage API answer (JSON)."""

    kind = "offline"

    def __init__(self, path: Path, namespace: str | None) -> None:
        self.path = path
        self.namespace = namespace

    def costs(self, period: Period) -> list[CostItem]:
        from labctl.inputs import InputFileError, read_input_file

        try:
            text = read_input_file(self.path, "usage fixture", "save one with `oci usage-api usage-summary …`")
        except InputFileError as e:
            raise UsageError(str(e)) from None
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise UsageError(f"{self.path}: not JSON ({e}); expected the Usage API's UsageAggregation") from None
        return items_from_answer(doc, self.namespace, str(self.path))


class PlannedUsage:
    """The offline fake without a file: each student's planned monthly price (``labctl class preflight``'s lines,
    named ``<stack>/app`` and ``<stack>/db``), pro-rated to the period by its months."""

    kind = "offline"

    def __init__(self, students: Sequence[Any], cls: Any) -> None:
        self.students = students
        self.cls = cls

    def costs(self, period: Period) -> list[CostItem]:
        from labctl.preflight import preflight

        report = preflight(self.students, self.cls)
        by_stack = {s.stack: s.student_id for s in self.students}
        totals: dict[tuple[str, str], float] = {}
        for tenancy in report.tenancies:
            for line in tenancy.lines:
                stack, _, part = line.name.partition("/")
                service = {"app": "Compute", "db": "Database"}.get(part, part)
                key = (by_stack.get(stack, stack), service)
                totals[key] = totals.get(key, 0.0) + line.monthly
        return [
            CostItem(student, service, round(monthly * period.months, 2), report.currency)
            for (student, service), monthly in sorted(totals.items())
        ]


# --- the cloud ---------------------------------------------------------------------------------------------------
def usage_request(tenant_id: str, period: Period, namespace: str) -> dict[str, Any]:
    """The keyword arguments of ``RequestSummarizedUsagesDetails`` for one period: cost (not quantities), by day,
    summed over the period (``is_aggregate_by_time``), grouped by the student tag and the service."""
    return {
        "tenant_id": tenant_id,
        "time_usage_started": datetime(period.start.year, period.start.month, period.start.day, tzinfo=timezone.utc),
        "time_usage_ended": datetime(period.end.year, period.end.month, period.end.day, tzinfo=timezone.utc),
        "granularity": "DAILY",
        "query_type": "COST",
        "is_aggregate_by_time": True,
        "group_by": ["tagNamespace", "tagKey", "tagValue", "service"],
        "group_by_tag": [{"namespace": namespace, "key": TAG_KEY}],
    }


def _oci_sdk() -> Any:
    try:
        import oci  # the optional dependency (pyproject.toml [usage]); heavy, so only here and only when asked
    except ImportError:
        raise UsageError(
            "the OCI Python SDK is not installed; `labctl class usage` needs it to read cost from OCI: "
            "pip install 'oci-dblab[usage]' (or --offline for the fake)"
        ) from None
    return oci


class OciUsage:
    """Cost per student from OCI's Usage API (the SDK's client; one request per tenancy, all pages)."""

    kind = "cloud"

    def __init__(
        self,
        namespace: str,
        profiles: Sequence[str | None] = (None,),
        config_file: str | None = None,
        service_endpoint: str | None = None,
        student_of_profile: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.profiles = list(profiles)
        self.config_file = config_file
        self.service_endpoint = service_endpoint  # tests: a loopback server standing in for OCI
        self.student_of_profile = dict(student_of_profile or {})

    def costs(self, period: Period) -> list[CostItem]:
        oci = _oci_sdk()
        from labctl.runners import oci_config_path

        path = self.config_file or str(oci_config_path())
        out: list[CostItem] = []
        for profile in self.profiles:
            name = profile or "DEFAULT"
            try:
                config = oci.config.from_file(path, name)
                oci.config.validate_config(config)  # a missing [DEFAULT] reads as {}: say which keys are missing
            except Exception as e:  # the SDK's own ConfigFileNotFound / ProfileNotFound / InvalidConfig
                raise UsageError(f"OCI config {path} [{name}]: {type(e).__name__}: {e}") from None
            kwargs = {"service_endpoint": self.service_endpoint} if self.service_endpoint else {}
            client = oci.usage_api.UsageapiClient(config, **kwargs)
            spec = usage_request(config["tenancy"], period, self.namespace)
            spec["group_by_tag"] = [oci.usage_api.models.Tag(**t) for t in spec["group_by_tag"]]
            details = oci.usage_api.models.RequestSummarizedUsagesDetails(**spec)
            page: str | None = None
            while True:
                kw = {"page": page} if page else {}
                try:
                    resp = client.request_summarized_usages(details, **kw)
                except oci.exceptions.ServiceError as e:
                    raise UsageError(
                        f"the Usage API refused the request for [{name}]: {e.status} {e.code}: {e.message}"
                    ) from None
                items = items_from_answer(oci.util.to_dict(resp.data), self.namespace, f"Usage API [{name}]")
                if profile in self.student_of_profile:  # a per-student tenancy: all of it is that student's
                    who = self.student_of_profile[profile]
                    items = [CostItem(who, i.service, i.amount, i.currency) for i in items]
                out += items
                page = resp.next_page
                if not page:
                    break
        return out


# --- the table ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudentRow:
    student: str
    stack: str
    cost: float
    currency: str
    budget: float | None
    services: tuple[tuple[str, float], ...] = ()

    @property
    def share(self) -> float | None:
        return self.cost / self.budget if self.budget else None

    @property
    def over(self) -> bool:
        return self.budget is not None and self.cost > self.budget + 1e-9


@dataclass
class UsageReport:
    period: Period
    source: str  # offline | cloud
    rows: list[StudentRow]
    monthly_budget: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def over(self) -> list[StudentRow]:
        return [r for r in self.rows if r.over]

    @property
    def total(self) -> float:
        return round(sum(r.cost for r in self.rows), 2)


def summarize(
    items: Iterable[CostItem],
    students: Sequence[Any],
    period: Period,
    monthly_budget: float | None,
    only: frozenset[str] | None = None,
) -> UsageReport:
    """One row per student of the roster (0 when OCI reported nothing for them), then rows for tag values that are
    not in the roster and for untagged cost, each with a warning."""
    budget = round(monthly_budget * period.months, 2) if monthly_budget is not None else None
    per: dict[str, dict[str, float]] = {}
    currencies: set[str] = set()
    for it in items:
        per.setdefault(it.student, {})
        per[it.student][it.service] = per[it.student].get(it.service, 0.0) + it.amount
        if it.currency:
            currencies.add(it.currency)
    warnings: list[str] = []
    if len(currencies) > 1:
        warnings.append(f"the answer mixes currencies ({', '.join(sorted(currencies))}); totals add them as numbers")
    currency = sorted(currencies)[0] if currencies else "USD"
    rows: list[StudentRow] = []

    def row(student: str, stack: str, with_budget: bool) -> StudentRow:
        services = per.get(student, {})
        top = tuple(sorted(((k, round(v, 2)) for k, v in services.items()), key=lambda kv: (-kv[1], kv[0])))
        cost = round(sum(services.values()), 2)
        return StudentRow(student, stack, cost, currency, budget if with_budget else None, top)

    known = set()
    for s in students:
        known.add(s.student_id)
        if only is None or s.student_id in only:
            rows.append(row(s.student_id, s.stack, True))
    if only is None:
        strangers = sorted(k for k in per if k not in known and k != UNTAGGED)
        for k in strangers:
            rows.append(row(k, "", False))
        if strangers:
            warnings.append(
                f"{len(strangers)} tag value(s) not in the roster: {', '.join(strangers[:10])} (a student removed from "
                "the roster whose resources still exist, or another class sharing the tag namespace)"
            )
        if UNTAGGED in per and abs(sum(per[UNTAGGED].values())) > 0.005:
            rows.append(row(UNTAGGED, "", False))
            warnings.append(
                f"{sum(per[UNTAGGED].values()):.2f} {currency} of cost carries no student tag (resources created "
                "outside the student stacks, or before the tag existed)"
            )
    return UsageReport(period, "", rows, monthly_budget, warnings)


def report_rows(report: UsageReport) -> list[dict[str, str]]:
    out = []
    for r in report.rows:
        out.append(
            {
                "student": r.student,
                "stack": r.stack,
                "cost": f"{r.cost:.2f}",
                "currency": r.currency,
                "budget": "" if r.budget is None else f"{r.budget:.2f}",
                "share_of_budget": "" if r.share is None else f"{r.share * 100:.0f}%",
                "over_budget": "yes" if r.over else ("no" if r.budget is not None else ""),
                "top_services": "; ".join(f"{k} {v:.2f}" for k, v in r.services[:3]),
            }
        )
    return out


def check_csv_path(path: Path) -> None:
    """Refuse, before anything is read from OCI, a CSV path that cannot be written."""
    if path.exists() and path.is_dir():
        raise UsageError(f"--csv: {path} is a directory; give a file name. Example: --csv class-run/usage-2026-11.csv")
    if not path.parent.is_dir():
        raise UsageError(
            f"--csv: the folder {path.parent} does not exist; create it or pick another. "
            "Example: --csv class-run/usage-2026-11.csv"
        )


def write_csv(report: UsageReport, path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report_rows(report))
    atomic_write_text(path, buf.getvalue())


def render(report: UsageReport, width: int = 120) -> str:
    from rich.console import Console
    from rich.table import Table

    what = "offline fake: nothing read from OCI" if report.source == "offline" else "OCI Usage API"
    budget = (
        f"budget {report.monthly_budget:.2f}/month x {report.period.months:g} month(s)"
        if report.monthly_budget is not None
        else "no budget (monthlyBudgetUsd)"
    )
    table = Table(title=f"Cost per student, {report.period.label} ({report.period.days} days; {what}); {budget}")
    for col, justify in (
        ("student", "left"),
        ("stack", "left"),
        ("cost", "right"),
        ("budget", "right"),
        ("share", "right"),
        ("", "left"),
        ("top services", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r, d in zip(report.rows, report_rows(report), strict=True):
        table.add_row(
            r.student,
            r.stack,
            f"{d['cost']} {r.currency}",
            d["budget"],
            d["share_of_budget"],
            "[red]OVER BUDGET[/]" if r.over else "",
            d["top_services"],
        )
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    console.print(table)
    over = report.over
    console.print(
        f"total {report.total:.2f} {report.rows[0].currency if report.rows else 'USD'}; "
        + (f"{len(over)} over budget: {', '.join(r.student for r in over)}" if over else "nobody over budget")
    )
    for w in report.warnings:
        console.print(f"warning: {w}")
    return buf.getvalue().rstrip("\n")


# --- the command -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerDefaults:
    """What the class layer (``classLayer`` of the class file, ``labctl class setup``) says about usage."""

    tag_namespace: str | None = None
    monthly_budget_usd: float | None = None
    source: str = "class.yaml"


def layer_defaults(class_config: str | Path, students: Sequence[Any], cls: Any) -> LayerDefaults:
    """The tag namespace (the layer's ``name``) and ``monthlyBudgetUsd`` of the class file's ``classLayer``
    section, checked as ``labctl class setup`` checks it; empty when the file has none (or the class uses
    per-student tenancies, which have no class layer)."""
    from components.tenancy import LayerError
    from labctl.inputs import InputFileError, read_input_file
    from labctl.tenancy import layer_from_text

    source = str(class_config)
    if getattr(cls, "tenancies", "shared") == "per-student":
        return LayerDefaults(source=source)
    try:
        text = read_input_file(Path(class_config), "class config", "")
    except InputFileError as e:
        raise UsageError(str(e)) from None
    if "classLayer" not in text:
        return LayerDefaults(source=source)
    try:
        spec = layer_from_text(text, [s.student_id for s in students], source, getattr(cls, "tenancies", "shared"))
    except LayerError as e:
        if any("has no classLayer section" in p for p in e.problems):
            return LayerDefaults(source=source)
        raise UsageError(str(e)) from None
    budget = float(spec.monthly_budget_usd) if spec.monthly_budget_usd is not None else None
    return LayerDefaults(spec.tag_namespace, budget, source)


def monthly_budget_of(layer: LayerDefaults, override: float | None) -> float | None:
    """``--budget``, else the class layer's ``monthlyBudgetUsd``, else None (no budget column). Positive only."""
    if override is None:
        return layer.monthly_budget_usd  # checked by the class layer's own parser (a whole number > 0)
    if not override > 0 or override == float("inf"):  # also NaN
        raise UsageError(f"--budget: {override} must be more than 0 US dollars a month. Example: --budget 10")
    return float(override)


def tag_namespace_of(cls: Any, layer: LayerDefaults, override: str | None) -> str | None:
    """``--tag-namespace``, else the class layer's name (its tag namespace), else ``config.studentTagNamespace``."""
    value = override or layer.tag_namespace or (getattr(cls, "config", None) or {}).get("studentTagNamespace")
    if value is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", value):
        raise UsageError(
            f"tag namespace '{value}' is not a tag namespace name (a letter, then letters, digits, '-' or '_'; "
            "at most 64). Example: --tag-namespace dblab-2026s1"
        )
    return value


def build_report(
    students: Sequence[Any],
    cls: Any,
    period: Period,
    source: UsageSource,
    monthly_budget: float | None,
    only: frozenset[str] | None = None,
) -> UsageReport:
    if only is not None:
        unknown = sorted(only - {s.student_id for s in students})
        if unknown:
            raise UsageError(
                f"--only names students not in the roster: {', '.join(unknown)} (example: --only "
                f"{students[0].student_id if students else 'a23-001'})"
            )
    report = summarize(source.costs(period), students, period, monthly_budget, only)
    report.source = source.kind
    return report


def choose_source(
    students: Sequence[Any],
    cls: Any,
    offline: bool,
    fixture: Path | None,
    namespace: str | None,
    config_file: str | None = None,
    service_endpoint: str | None = None,
    sdk_check: Callable[[], Any] = _oci_sdk,
) -> UsageSource:
    """The source the flags ask for: ``--fixture`` or ``--offline`` (the fakes) or OCI (needs the tag namespace)."""
    if fixture is not None:
        return FixtureUsage(fixture, namespace)
    if offline:
        return PlannedUsage(students, cls)
    if namespace is None:
        raise UsageError(
            "the student tag's namespace is not known: give the class file a classLayer section (its name is the "
            "tag namespace, `labctl class setup`) or pass --tag-namespace dblab-2026s1"
        )
    sdk_check()
    if getattr(cls, "tenancies", "shared") == "per-student":
        profiles = [s.oci_profile for s in students]
        return OciUsage(
            namespace,
            profiles,
            config_file,
            service_endpoint,
            student_of_profile={s.oci_profile: s.student_id for s in students if s.oci_profile},
        )
    return OciUsage(namespace, [None], config_file, service_endpoint)
