"""Plan one stack of one source tree in this process and print the plan as JSON.

Run as ``python -m labctl.worker`` by ``labctl diff`` (two git revisions) and the offline class runner (one
process per student). Only ``labctl.offline`` is imported before the program runs, so the ``components`` package
comes from ``--project-dir``, not from the tree labctl lives in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labctl.offline import ProgramError, run_program


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labctl.worker")
    ap.add_argument("--project-dir", required=True, type=Path)
    ap.add_argument("--stack", required=True)
    ap.add_argument(
        "--config-json", required=True, help="JSON file: {'config': {...}, 'secretKeys': [...], 'failTypes': {...}}"
    )
    ap.add_argument("--summary", action="store_true", help="also print the monthly cost estimate")
    args = ap.parse_args(argv)
    spec = json.loads(Path(args.config_json).read_text())
    try:
        plan = run_program(
            spec["config"],
            spec.get("secretKeys", []),
            stack=args.stack,
            project_dir=args.project_dir,
            fail_types=spec.get("failTypes"),
        )
    except ProgramError as e:
        json.dump({"error": str(e), "stack": args.stack}, sys.stdout)
        return 3
    doc = plan.to_dict()
    if args.summary:
        from labctl.estimate import monthly_cost

        doc["monthlyCost"] = round(monthly_cost(plan.resources).total, 2)
        check = plan.outputs.get("connectionCheck")
        doc["check"] = check if isinstance(check, dict) else None
    json.dump(doc, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
