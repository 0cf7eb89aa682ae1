"""Plan one stack of one source tree and return (or print) the plan as JSON.

``python -m labctl.worker`` is what ``labctl diff`` runs for each git revision: only ``labctl.offline`` is
imported before the program runs, so ``components`` comes from ``--project-dir``, not from the tree labctl lives
in. The offline class runner calls ``plan_doc`` in a pool of long-lived worker processes instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from labctl.offline import ProgramError, run_program


def plan_doc(spec: dict[str, Any], stack: str, project_dir: Path | str, summary: bool = False) -> dict[str, Any]:
    """Plan of one stack as a JSON-able dict (secrets redacted), or ``{"error": ...}`` when the program fails.

    ``spec``: ``{"config": {...}, "secretKeys": [...], "failTypes": {...}}`` (failTypes: fault injection).
    """
    try:
        plan = run_program(
            spec["config"],
            spec.get("secretKeys", []),
            stack=stack,
            project_dir=project_dir,
            fail_types=spec.get("failTypes"),
        )
    except ProgramError as e:
        return {"error": str(e), "stack": stack}
    doc = plan.to_dict()
    if summary:
        from labctl import reach
        from labctl.estimate import monthly_cost
        from policy import rules

        cost = monthly_cost(plan.resources)
        # a shape missing from the price table is "cost unknown" (None), never 0
        doc["monthlyCost"] = None if cost.unpriced else round(cost.total, 2)
        check = plan.outputs.get("connectionCheck")
        doc["check"] = check if isinstance(check, dict) else None
        # The same judgement as `labctl plan`: policy rules and reachability; a mandatory finding or a failed
        # verdict blocks this student before anything is created.
        limit = int(spec.get("adminMinPrefix", rules.ADMIN_SOURCE_MIN_PREFIX))
        findings = rules.evaluate(plan.resources, rules.rules_with_admin_limit(limit))
        verdicts = reach.verdicts(plan.resources, str(spec["config"].get("oci-dblab:adminCidr", "")), limit)
        blocking = [f"{f.rule}: {f.name}: {f.message}" for f in findings if f.level == rules.MANDATORY]
        blocking += [
            f"reachability {v.id}: expected {v.expected}, got {v.actual}: {v.reason}" for v in verdicts if not v.ok
        ]
        doc["findings"] = [f"[{f.level}] {f.rule}: {f.name}: {f.message}" for f in findings]
        if blocking:
            return {
                "error": "blocked before anything is created (the judgement of `labctl plan`):\n  - "
                + "\n  - ".join(blocking),
                "stack": stack,
            }
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labctl.worker")
    ap.add_argument("--project-dir", required=True, type=Path)
    ap.add_argument("--stack", required=True)
    ap.add_argument(
        "--config-json", required=True, help="JSON file: {'config': {...}, 'secretKeys': [...], 'failTypes': {...}}"
    )
    ap.add_argument("--summary", action="store_true", help="also print the monthly cost estimate")
    args = ap.parse_args(argv)
    doc = plan_doc(json.loads(Path(args.config_json).read_text()), args.stack, args.project_dir, args.summary)
    json.dump(doc, sys.stdout, default=str)
    return 3 if "error" in doc else 0


if __name__ == "__main__":
    sys.exit(main())
