"""labctl: the operator's tool for oci-dblab (offline plans, PR diffs, class deployments)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labctl.offline import REPO_ROOT

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_plan(args: argparse.Namespace) -> int:
    from labctl.offline import ProgramError
    from labctl.plan import build_report, plan_stack, render
    from labctl.stackfile import StackFileError

    try:
        plan, config = plan_stack(args.stack, args.config, Path(args.project_dir))
    except StackFileError as e:
        print(f"labctl plan: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ProgramError as e:
        print(f"labctl plan: the program failed for stack '{args.stack}':\n{e}", file=sys.stderr)
        return EXIT_FAILED
    report = build_report(plan, config)
    print(render(report, args.format))
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _cmd_diff(args: argparse.Namespace) -> int:
    from labctl.diff import DiffError, diff_revisions

    try:
        changes, markdown = diff_revisions(Path(args.repo), args.base, args.head, args.stack)
    except DiffError as e:
        print(f"labctl diff: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(markdown)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="labctl", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="plan a stack offline: resource tree, reachability, policy, cost, critical path")
    p.add_argument("--stack", default="dev", help="stack name; reads Pulumi.<stack>.yaml (default: dev)")
    p.add_argument("--config", type=Path, help="stack settings file to use instead of Pulumi.<stack>.yaml")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--project-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_plan)

    d = sub.add_parser("diff", help="plan two git revisions offline and print a Markdown PR summary")
    d.add_argument("--base", required=True, help="base revision, e.g. origin/main")
    d.add_argument("--head", default="HEAD", help="head revision (default: HEAD)")
    d.add_argument("--stack", default="dev")
    d.add_argument("--repo", default=".", help="git repository (default: the current directory)")
    d.set_defaults(func=_cmd_diff)

    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
