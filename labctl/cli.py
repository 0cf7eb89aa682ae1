"""labctl: the operator's tool for oci-dblab (offline plans, PR diffs, class deployments)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labctl.offline import REPO_ROOT

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C


def _is_config_error(e: BaseException) -> bool:
    """Whether the program stopped on its config's problems (components/config.py ConfigError, raised inside the
    Pulumi runtime, which wraps it): bad input, not a failed plan."""
    seen: BaseException | None = e.__cause__ or e.__context__
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ == "ConfigError":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
        if _is_config_error(e):  # bad input: the config's problems, each with its line
            from labctl.stackfile import stack_file, with_key_lines

            path = args.config or stack_file(Path(args.project_dir), args.stack)
            print(f"labctl plan: {with_key_lines(str(e), path)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"labctl plan: the program failed for stack '{args.stack}':\n{e}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "tfplan":  # an export for scanners (checkov, trivy, conftest): they give the verdicts
        from labctl.tfplan import render as render_tfplan

        print(render_tfplan(plan))
        return EXIT_OK
    report = build_report(plan, config)
    print(render(report, args.format))
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _cmd_diff(args: argparse.Namespace) -> int:
    from labctl.diff import WORKTREE, DiffError, diff_revisions, is_dirty

    try:
        head = args.head
        if head is None:
            head = WORKTREE if is_dirty(Path(args.repo)) else "HEAD"
            if head == WORKTREE:
                print(
                    "labctl diff: the working tree has uncommitted edits; comparing them (--head WORKTREE). "
                    "Use --head HEAD for the last commit",
                    file=sys.stderr,
                )
        changes, markdown = diff_revisions(Path(args.repo), args.base, head, args.stack)
    except DiffError as e:
        print(f"labctl diff: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(markdown)
    return EXIT_OK


def _load_class(args: argparse.Namespace) -> tuple[list, object] | int:
    """Roster + class config, every problem reported; EXIT_USAGE when anything is wrong."""
    from labctl.roster import ClassConfigError, RosterError, check_students, load_class_config, load_roster

    try:
        roster = load_roster(args.roster)
        cls = load_class_config(args.class_config)
        warnings = check_students(roster.students, cls, roster.source)
    except (RosterError, ClassConfigError) as e:
        print(f"labctl class: {e}", file=sys.stderr)
        return EXIT_USAGE
    from labctl.tenancy import LayerStateError, load_state

    try:  # the class layer's state, read by every student's config (_class_jobs): unusable = stop here
        load_state(Path(getattr(args, "out_dir", "class-run")))
    except LayerStateError as e:
        print(f"labctl class: {e}", file=sys.stderr)
        return EXIT_USAGE
    for w in warnings[:20]:
        print(f"warning: {w}", file=sys.stderr)
    if len(warnings) > 20:
        print(f"warning: … and {len(warnings) - 20} more like these", file=sys.stderr)
    return roster.students, cls


def _class_jobs(students: list, cls: object, args: argparse.Namespace, out_dir: Path) -> list:
    from labctl.roster import env_file_for, student_config
    from labctl.runners import StackJob
    from labctl.tenancy import apply_overrides, student_overrides

    env_dir = out_dir / "env"
    # the class layer (labctl class setup) in the out-dir: its tag namespace and student compartments; a dry run's
    # mock compartments only for offline runs (validate/preflight judge with whichever exists)
    offline = getattr(args, "offline", None)
    layer = student_overrides(
        Path(getattr(args, "out_dir", out_dir)), None if offline is None else ("offline" if offline else "cloud")
    )
    jobs = []
    for s in students:
        config, secret = student_config(cls, s, env_dir)  # type: ignore[arg-type]
        for note in apply_overrides(config, s.student_id, layer):
            print(f"note: {note}", file=sys.stderr)
        jobs.append(
            StackJob(
                s.student_id,
                s.stack,
                config,
                tuple(secret),
                Path(args.project_dir),
                env_file=str(env_file_for(env_dir, s)) if cls.connection_check else None,  # type: ignore[attr-defined]
                oci_profile=s.oci_profile,
                spec_extra={"adminMinPrefix": cls.admin_cidr_min_prefix},  # type: ignore[attr-defined]
            )
        )
    return jobs


def _judge(students: list, cls: object, args: argparse.Namespace) -> int | None:
    """The judgement of `labctl plan` for every student (offline plans, policy, reachability); EXIT_USAGE if any
    student is blocked, None when all pass or ``--no-plan``."""
    if getattr(args, "no_plan", False):
        return None
    from labctl.classrun import judge_class

    blocked = judge_class(_class_jobs(students, cls, args, Path("class-run")), processes=4)
    if not blocked:
        return None
    lines = {s.student_id: s.line for s in students}
    print(
        f"labctl class: {len(blocked)} student(s) blocked by the judgement of `labctl plan`; nothing was created:",
        file=sys.stderr,
    )
    for sid in sorted(blocked, key=lambda k: lines[k]):
        detail = "\n      ".join(blocked[sid].splitlines()[:6])
        print(f"  - {args.roster}:line {lines[sid]} (student {sid}): {detail}", file=sys.stderr)
    return EXIT_USAGE


def _layer_problems(args: argparse.Namespace, students: list, cls: object) -> int | None:
    """The class file's ``classLayer`` section judged as ``class setup`` judges it (labctl/tenancy.py judge_section:
    validate, preflight and up judge the whole file before anything runs); EXIT_USAGE with its problems, None when
    it is fine or absent."""
    from components.tenancy import LayerError
    from labctl.inputs import InputFileError
    from labctl.tenancy import judge_section

    try:
        judge_section(args.class_config, students, cls)
    except (LayerError, InputFileError) as e:
        print(f"labctl class: {e}", file=sys.stderr)
        return EXIT_USAGE
    return None


def _cmd_class_validate(args: argparse.Namespace) -> int:
    loaded = _load_class(args)
    if isinstance(loaded, int):
        return loaded
    students, cls = loaded
    bad_layer = _layer_problems(args, students, cls)
    if bad_layer is not None:
        return bad_layer
    judged = _judge(students, cls, args)
    if judged is not None:
        return judged
    print(f"{args.roster}: {len(students)} students, all valid (stacks {students[0].stack} … {students[-1].stack})")
    if cls.connection_check:
        print(
            f"connection check: each VM trusts its student's key and the instructor's; SSH from the student's CIDR "
            f"and {cls.instructor_cidr}; each .env goes to <out-dir>/env/<student_id>/.env"
        )
    else:
        print("connection check: off (config: {connectionCheck: false}); no .env is written for the students")
    return EXIT_OK


def _cmd_class_preflight(args: argparse.Namespace) -> int:
    import json

    from labctl.preflight import preflight, render_text

    loaded = _load_class(args)
    if isinstance(loaded, int):
        return loaded
    students, cls = loaded
    bad_layer = _layer_problems(args, students, cls)
    if bad_layer is not None:
        return bad_layer
    judged = _judge(students, cls, args)
    if judged is not None:
        return judged
    report = preflight(students, cls)
    print(json.dumps(report.to_dict(), indent=2) if args.format == "json" else render_text(report))
    return EXIT_OK if report.verdict not in ("DOES NOT FIT", "COST UNKNOWN") else EXIT_FAILED


def _cmd_class_run(args: argparse.Namespace) -> int:
    from components.portable import LockHeld, UnsafePathError, ensure_private_dir
    from labctl.classrun import NOT_STARTED, STATE_FILE, ClassOptions, ClassStateError, run_and_report
    from labctl.runners import AutomationRunner, JudgedRunner, OfflineRunner

    loaded = _load_class(args)
    if isinstance(loaded, int):
        return loaded
    students, cls = loaded
    if args.action in ("up", "preview"):  # what setup would refuse stops a deployment too, before anything runs
        bad_layer = _layer_problems(args, students, cls)
        if bad_layer is not None:
            return bad_layer
    only = None
    if args.only:
        only = frozenset(x.strip() for x in args.only.split(",") if x.strip())
        unknown = sorted(only - {s.student_id for s in students})
        if unknown:
            print(
                f"labctl class: --only names students not in {args.roster}: {', '.join(unknown)} "
                f"(example: --only {students[0].student_id})",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if not args.offline:
        from labctl.runners import check_cloud_tools

        chosen = [s for s in students if only is None or s.student_id in only]
        problems, version = check_cloud_tools(sorted({s.oci_profile for s in chosen if s.oci_profile}))
        if problems:
            print(
                "labctl class: the cloud runner cannot start; nothing was created:\n"
                + "\n".join(f"  - {p}" for p in problems),
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"cloud runner: Pulumi CLI {version}", file=sys.stderr)
    if args.action == "up":  # not for stop/start: they change no shape and create nothing
        from labctl.preflight import preflight

        chosen = [s for s in students if only is None or s.student_id in only]
        report = preflight(chosen, cls)
        if report.verdict in ("DOES NOT FIT", "COST UNKNOWN"):
            message = (
                f"preflight: {report.summary}. Run `labctl class preflight {args.roster}` for the options "
                "(per-student tenancies, paid shapes)"
            )
            if not (args.offline or args.ignore_preflight):
                print(
                    f"labctl class: {message}; nothing was created. Use --ignore-preflight to try anyway.",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            print(f"warning: {message}", file=sys.stderr)
    out_dir = Path(args.out_dir)
    jobs = _class_jobs(students, cls, args, out_dir)
    action, title = args.action, "oci-dblab class"
    if args.action in ("stop", "start"):  # the DB systems' target state, then `pulumi up` (labctl/dbpower.py)
        from labctl import dbpower

        jobs, action, title = dbpower.power_jobs(jobs, args.action), "up", dbpower.title(args.action)
        print(dbpower.runner_note(args.action, args.offline), file=sys.stderr)
    runner = (
        OfflineRunner(plan_dir=out_dir / "plans", processes=args.parallel)
        if args.offline
        else JudgedRunner(AutomationRunner(), OfflineRunner(processes=args.parallel))
    )
    # offline plans are pure CPU: at most one worker per CPU (labctl/runners.py offline_parallel)
    parallel = runner.processes if isinstance(runner, OfflineRunner) else args.parallel
    opts = ClassOptions(action, out_dir, parallel=parallel, only=only, resume=args.resume, verb=args.action)
    try:
        if cls.connection_check and args.action == "up":
            for job in jobs:  # <out-dir>/env/<student_id>/ is 0700: the .env in it holds the student's DB password
                if job.env_file and (only is None or job.student_id in only):
                    ensure_private_dir(Path(job.env_file).parent)
        result, paths = run_and_report(jobs, runner, opts, title=title)
    except LockHeld as e:
        print(f"labctl class: {e}; nothing was started", file=sys.stderr)
        return EXIT_USAGE
    except ClassStateError as e:
        print(f"labctl class: {e}", file=sys.stderr)
        return EXIT_USAGE
    except UnsafePathError as e:
        print(f"labctl class: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            f"labctl class: interrupted twice; running stacks were ended. State in {out_dir / STATE_FILE} holds "
            "every stack that finished; run again with --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        runner.close()
    print(
        f"{result.count('succeeded')} succeeded, {result.count('failed')} failed, {result.count('skipped')} "
        f"skipped, {result.count(NOT_STARTED)} not started in {result.wall_seconds:.1f}s ({runner.kind} runner); "
        f"reports: {', '.join(str(p) for p in paths)}"
    )
    if isinstance(runner, OfflineRunner):
        print(runner.memory_summary())
    if result.interrupted:
        print(
            f"labctl class: stopped by {result.interrupted}; run the same command with --resume to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def _cmd_class_layer(args: argparse.Namespace) -> int:
    from labctl.tenancy import run_cli

    return run_cli(args)


def _cmd_class_usage(args: argparse.Namespace) -> int:
    import datetime

    from labctl import usage

    loaded = _load_class(args)
    if isinstance(loaded, int):
        return loaded
    students, cls = loaded
    try:
        period = usage.parse_period(args.period, datetime.datetime.now(datetime.timezone.utc).date())
        layer = usage.layer_defaults(args.class_config, students, cls)
        budget = usage.monthly_budget_of(layer, args.budget)
        namespace = usage.tag_namespace_of(cls, layer, args.tag_namespace)
        only = frozenset(x.strip() for x in args.only.split(",") if x.strip()) if args.only else None
        csv_path = Path(args.csv) if args.csv else None
        if csv_path is not None:
            usage.check_csv_path(csv_path)
        source = usage.choose_source(students, cls, args.offline, args.fixture, namespace)
        report = usage.build_report(students, cls, period, source, budget, only)
        if csv_path is not None:
            usage.write_csv(report, csv_path)
    except usage.UsageError as e:
        print(f"labctl class usage: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(usage.render(report))
    if csv_path is not None:
        print(f"csv: {csv_path}")
    return EXIT_OK


def _cmd_local(args: argparse.Namespace) -> int:
    from labctl.local.command import run_cli

    return run_cli(args)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; example: --parallel 4") from None
    if not 1 <= n <= 32:
        raise argparse.ArgumentTypeError(f"{n} is out of range 1..32; example: --parallel 4")
    return n


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="labctl", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="plan a stack offline: resource tree, reachability, policy, cost, critical path")
    p.add_argument("--stack", default="dev", help="stack name; reads Pulumi.<stack>.yaml (default: dev)")
    p.add_argument("--config", type=Path, help="stack settings file to use instead of Pulumi.<stack>.yaml")
    p.add_argument("--format", choices=("text", "json", "markdown", "tfplan"), default="text")
    p.add_argument("--project-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_plan)

    d = sub.add_parser("diff", help="plan two git revisions offline and print a Markdown PR summary")
    d.add_argument("--base", required=True, help="base revision, e.g. origin/main")
    d.add_argument(
        "--head",
        default=None,
        help="head revision, or WORKTREE for uncommitted edits (default: WORKTREE when the tree is dirty, else HEAD)",
    )
    d.add_argument("--stack", default="dev")
    d.add_argument("--repo", default=".", help="git repository (default: the current directory)")
    d.set_defaults(func=_cmd_diff)

    c = sub.add_parser("class", help="one stack per student from a roster CSV")
    csub = c.add_subparsers(dest="verb", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("roster", help="CSV: student_id,name,email,ssh_public_key[,compartment_id][,admin_cidr]")
        p.add_argument("--class-config", default="class.yaml", help="shared values (default: class.yaml)")
        p.add_argument("--project-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)

    v = csub.add_parser("validate", help="check every roster row and every student's config; deploy nothing")
    common(v)
    v.add_argument("--no-plan", action="store_true", help="skip the offline plan of each student (policy, reach)")
    v.set_defaults(func=_cmd_class_validate)
    pf = csub.add_parser("preflight", help="class totals vs Always Free and tenancy limits, cost, verdict")
    common(pf)
    pf.add_argument("--no-plan", action="store_true", help="skip the offline plan of each student (policy, reach)")
    pf.add_argument("--format", choices=("text", "json"), default="text")
    pf.set_defaults(func=_cmd_class_preflight)
    helps = {
        "stop": "stop every student's DB system (dbState INACTIVE, then pulumi up): outside lab hours",
        "start": "start every student's DB system again (dbState ACTIVE, then pulumi up)",
    }
    for action in ("up", "preview", "destroy", "status", "stop", "start"):
        r = csub.add_parser(action, help=helps.get(action, f"pulumi {action} for every student's stack"))
        common(r)
        r.add_argument("--parallel", type=_positive, default=4, help="stacks at once (default 4, OCI rate limits)")
        r.add_argument("--only", help="comma-separated student ids")
        r.add_argument("--resume", action="store_true", help="skip stacks already up to date (same config+program)")
        r.add_argument("--offline", action="store_true", help="dry run: plan each stack offline, OCI mocked")
        r.add_argument("--out-dir", default="class-run", help="logs, state and reports (default: class-run/)")
        if action == "up":
            r.add_argument(
                "--ignore-preflight",
                action="store_true",
                help="deploy even when preflight says the class does not fit the tenancy limits",
            )
        r.set_defaults(func=_cmd_class_run, action=action)

    for verb, text in (
        ("setup", "create the class layer once per tenancy: cost-tracking tag, topic, compartments, quotas, budgets"),
        ("teardown", "retire the class layer's tag (cost tracking off) and destroy the rest of it"),
    ):
        t = csub.add_parser(verb, help=text)
        common(t)
        t.add_argument("--offline", action="store_true", help="plan it under the OCI mocks; nothing is created")
        t.add_argument("--out-dir", default="class-run", help="state and report (default: class-run/)")
        if verb == "teardown":
            t.add_argument("--force", action="store_true", help="tear down although student stacks are still up")
        t.set_defaults(func=_cmd_class_layer)

    u = csub.add_parser("usage", help="cost per student (the student tag) for a period, against the budget")
    common(u)
    u.add_argument("--period", required=True, help="2026-11 (a month) or 2026-09-01..2026-12-01 (end excluded)")
    u.add_argument("--csv", help="also write the table as CSV to this file (written atomically)")
    u.add_argument("--only", help="comma-separated student ids")
    u.add_argument(
        "--budget", type=float, help="monthly budget per student in USD (default: classLayer.monthlyBudgetUsd)"
    )
    u.add_argument("--tag-namespace", help="the student tag's namespace (default: classLayer.name)")
    u.add_argument("--offline", action="store_true", help="the offline fake: the planned price of each stack")
    u.add_argument("--fixture", type=Path, help="offline: a saved Usage API answer (JSON) instead of OCI")
    u.set_defaults(func=_cmd_class_usage)

    loc = sub.add_parser(
        "local", help="rehearse the whole lab on this machine: namespaces, nftables, sshd, the engine's DB server"
    )
    lsub = loc.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("up", "build the planned lab, run the EnvFile check, prove every verdict by packets; leave it running"),
        ("check", "re-run the check and the packet verdicts on the running lab"),
        ("down", "remove every namespace, process and file of the lab"),
        ("rules", "print the nftables translation of the declared security lists/NSGs (builds nothing)"),
    ):
        lp = lsub.add_parser(verb, help=text)
        lp.add_argument("--stack", default="dev", help="stack name; reads Pulumi.<stack>.yaml (default: dev)")
        lp.add_argument("--project-dir", default=str(REPO_ROOT), help=argparse.SUPPRESS)
        if verb in ("up", "rules"):
            from labctl.local.drills import DRILLS

            lp.add_argument("--config", type=Path, help="stack settings file instead of Pulumi.<stack>.yaml")
            lp.add_argument("--break", dest="break_", choices=sorted(DRILLS), help="a drill: break one thing first")
        if verb == "up":
            lp.add_argument("--check-timeout", type=_positive_seconds, help=argparse.SUPPRESS)
        lp.set_defaults(func=_cmd_local)

    return ap


def _positive_seconds(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of seconds; example: 30") from None
    if not 1 <= n <= 3600:
        raise argparse.ArgumentTypeError(f"{n} is out of range 1..3600; example: 30")
    return n


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
