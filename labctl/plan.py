"""``labctl plan``: the offline plan of a stack: resource tree, reachability, policy, cost and critical path."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from labctl import estimate, reach, savings, sizing
from labctl.cliconfig import load_stack
from labctl.offline import REPO_ROOT, Plan, run_program
from policy import rules

SCHEMA_VERSION = 1


def plan_stack(
    stack: str = "dev", config_file: Path | None = None, project_dir: Path = REPO_ROOT
) -> tuple[Plan, dict[str, str]]:
    """Run the program offline with the config of ``Pulumi.<stack>.yaml`` (or ``config_file``), merged with
    Pulumi.yaml and checked as the Pulumi CLI does (``CliConfigError``, a ``StackFileError``, when it would refuse)."""
    from components.config import offline_secret_value  # this tree's schema: placeholders for encrypted values

    merged = load_stack(stack, project_dir, config_file, placeholder=offline_secret_value)
    plan = run_program(merged.values, list(merged.secret_keys), stack=stack, project_dir=project_dir)
    return plan, merged.values


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_report(plan: Plan, config: dict[str, str]) -> dict[str, Any]:
    """The whole plan as one JSON-able document (schema in README, "labctl plan --format json")."""
    admin_cidr = config.get("oci-dblab:adminCidr", "")
    verdicts = reach.verdicts(plan.resources, admin_cidr)
    findings = rules.evaluate(plan.resources, secret_aware=True)
    cost = estimate.monthly_cost(plan.resources)
    path = estimate.critical_path(plan.resources)
    saved = savings.lab_hours_savings(plan.resources, config)
    mandatory = [f for f in findings if f.level == "mandatory"]
    failed = reach.failing(verdicts)
    doc = plan.to_dict()
    return {
        "schemaVersion": SCHEMA_VERSION,
        "stack": plan.stack,
        "ok": not mandatory and not failed,
        "summary": {
            "resources": len(plan.resources),
            "verdictsFailed": len(failed),
            "mandatoryFindings": len(mandatory),
            "advisoryFindings": len(findings) - len(mandatory),
            "monthlyCostUsd": round(cost.total, 2),
            "criticalPathSeconds": round(path.seconds),
            "labHoursSavedUsd": saved.automatic if saved else 0.0,
        },
        "resources": doc["resources"],
        "outputs": doc["outputs"],
        "verdicts": _plain(verdicts),
        "findings": _plain(findings),
        "cost": _plain(cost),
        "criticalPath": _plain(path),
        "sizing": sizing.plan_lines(config),
        "labHours": saved.to_dict() if saved else None,
        "warnings": plan.warnings + savings.idle_warnings(plan.resources, config),
    }


def tree_lines(resources: list[dict[str, Any]], stack: str) -> list[tuple[str, str]]:
    """(type column, name) rows drawn like ``pulumi preview``."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    urns = {r["urn"] for r in resources}
    for r in resources:
        parent = r["parent"] if r["parent"] in urns else None
        children.setdefault(parent, []).append(r)
    rows = [("pulumi:pulumi:Stack", f"oci-dblab-{stack}")]

    def walk(parent: str | None, prefix: str) -> None:
        kids = sorted(children.get(parent, []), key=lambda r: (r["custom"], r["type"], r["name"]))
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            rows.append((f"{prefix}{'└─ ' if last else '├─ '}{r['type']}", r["name"]))
            walk(r["urn"], prefix + ("   " if last else "│  "))

    walk(None, "")
    return rows


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _lab_hours_lines(saved: dict[str, Any] | None) -> list[str]:
    """The saving of labHours (labctl/savings.py), or how to get one."""
    if not saved:
        return ["", "Lab hours: not set (labHours): the VM and the DB run all month"]
    out = [
        "",
        f"Lab hours {saved['labHours']}: {saved['labHoursPerMonth']:g} of {saved['hoursPerMonth']} h a month; saved "
        f"${saved['savedBySchedulesUsd']:.2f}/month by the VM schedules, ${saved['savedWithDbStopStartUsd']:.2f} with "
        "`labctl class stop|start` on the same hours",
    ]
    for line in saved["lines"]:
        amount = "unknown" if line["monthly_saved"] is None else f"${line['monthly_saved']:.2f}"
        out.append(f"  {line['name']:<28} {amount:>9}  {line['how']}: {line['note']}")
    return out


def render_text(report: dict[str, Any]) -> str:
    out: list[str] = []
    rows = tree_lines(report["resources"], report["stack"])
    width = max(len(t) for t, _ in rows) + 4
    out.append(f"Offline plan of stack '{report['stack']}' ({report['summary']['resources']} resources, OCI mocked)")
    out.append(f"     {'Type'.ljust(width)}Name")
    out += [f" +   {t.ljust(width)}{n}" for t, n in rows]
    out.append("")
    out.append("Reachability")
    for v in report["verdicts"]:
        mark = "ok  " if v["ok"] else "FAIL"
        out.append(f"  [{mark}] {v['id']:<24} expected {v['expected']:<8} got {v['actual']:<8} {v['reason']}")
    out.append("")
    # the rules judged, by id (the operations tier's db-alarm-to-topic and student-tag among them): "no findings"
    # then says what was checked
    out.append(f"Policy ({len(rules.RULES)} rules: {', '.join(rule.id for rule in rules.RULES)})")
    if not report["findings"]:
        out.append("  no findings")
    for f in report["findings"]:
        out.append(f"  [{f['level'].upper()}] {f['rule']}: {f['name']}: {f['message']}")
    out.append("")
    cost = report["cost"]
    if cost.get("unpriced"):
        out.append(
            f"Monthly cost estimate: UNKNOWN (not in the price table: {', '.join(cost['unpriced'])}; "
            f"the priced part is ${cost['total']:.2f} {cost.get('currency', 'USD')})"
        )
    else:
        out.append(f"Monthly cost estimate: ${cost['total']:.2f} {cost.get('currency', 'USD')}")
    for line in cost["lines"]:
        price = (
            "free"
            if line.get("free")
            else (
                "unknown"
                if line.get("note") == estimate.NOT_PRICED or str(line.get("note", "")).startswith("cost unknown")
                else f"${line['monthly']:.2f}"
            )
        )
        out.append(f"  {line['name']:<28} {line['item']:<34} {price}")
    out += _lab_hours_lines(report.get("labHours"))
    out.append("")
    out.append("Elastic sizing (a later `pulumi up` with a new value; OCI provider ForceNew facts, labctl/sizing.py)")
    out += [f"  {line}" for line in report.get("sizing", [])]
    path = report["criticalPath"]
    out.append("")
    out.append(
        f"Critical path of `pulumi up`: {'at least ' if path.get('unknown') else ''}{_minutes(path['seconds'])} "
        f"({' -> '.join(path['path'])}); "
        f"serial sum {_minutes(path['serial_seconds'])}; physical limit {_minutes(path['physical_limit_seconds'])}; "
        f"ratio {path['ratio']:.2f}"
    )
    for item in path.get("unknown") or []:
        out.append(f"  create duration unknown (counted as 0): {item}")
    for w in report["warnings"]:
        out.append(f"warning: {w}")
    out.append("")
    out.append("PLAN OK" if report["ok"] else "PLAN FAILED: a reachability verdict or a mandatory policy failed")
    return "\n".join(out)


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    status = "✅ plan ok" if report["ok"] else "❌ plan failed"
    out = [
        f"### `{report['stack']}`: {status}",
        "",
        f"{s['resources']} resources · {s['verdictsFailed']} failed verdicts · {s['mandatoryFindings']} mandatory / "
        f"{s['advisoryFindings']} advisory findings · {'≥ ' if report['cost'].get('unpriced') else ''}"
        f"${s['monthlyCostUsd']:.2f}/month · critical path "
        f"{'≥ ' if report['criticalPath'].get('unknown') else ''}{_minutes(s['criticalPathSeconds'])}",
        "",
        "| reachability | expected | actual | |",
        "|---|---|---|---|",
    ]
    out += [
        f"| `{v['id']}` | {v['expected']} | {v['actual']} | {'✅' if v['ok'] else '❌ ' + v['reason']} |"
        for v in report["verdicts"]
    ]
    if report["findings"]:
        out += ["", "| level | rule | resource | finding |", "|---|---|---|---|"]
        out += [f"| {f['level']} | {f['rule']} | `{f['name']}` | {f['message']} |" for f in report["findings"]]
    out += ["", "<details><summary>resources</summary>", "", "```"]
    out += [f"{t}  {n}" for t, n in tree_lines(report["resources"], report["stack"])]
    out += ["```", "", "</details>"]
    return "\n".join(out)


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True, default=str)
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report)
