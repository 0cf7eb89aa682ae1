"""``labctl class up|preview|destroy|status``: one stack per student, bounded parallelism, retries, resume, reports."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from components.portable import Interrupts, atomic_write_text, exclusive_lock
from labctl.runners import StackJob, StackResult, StackRunner, is_transient

# OCI's API rate limits are per tenancy; a handful of concurrent stacks keeps a class clear of 429s.
DEFAULT_PARALLEL = 4
STATE_FILE = "class-state.json"
STATE_VERSION = 2
LOCK_FILE = ".class-run.lock"


@dataclass
class ClassOptions:
    action: str
    out_dir: Path
    parallel: int = DEFAULT_PARALLEL
    only: frozenset[str] | None = None
    resume: bool = False
    retries: int = 3
    backoff_seconds: float = 5.0
    verb: str = ""  # what the operator asked, when it differs from ``action`` (class stop|start run an `up`)


NOT_STARTED = "not started"  # the run was interrupted before this stack's turn


@dataclass
class ClassResult:
    action: str
    results: list[StackResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    runner: str = ""  # offline | cloud
    interrupted: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM), if any

    @property
    def ok(self) -> bool:
        return self.interrupted is None and all(r.status in ("succeeded", "skipped") for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


class ClassStateError(ValueError):
    """The state file of an out-dir cannot be used; the message says how to recover."""


def program_fingerprint(project_dir: Path) -> str:
    """Hash of the program's source, so a resumed run redoes stacks whose program changed."""
    h = hashlib.sha256()
    files = [
        project_dir / "__main__.py",
        project_dir / "Pulumi.yaml",
        *sorted((project_dir / "components").glob("*.py")),
        *sorted((project_dir / "engines").glob("*.py")),
    ]
    for f in files:
        if f.exists():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def config_hash(job: StackJob) -> str:
    """Hash of one student's stack config (values and which are secret); never the values themselves."""
    doc = json.dumps({"config": job.config, "secret": sorted(job.secret_keys)}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def job_fingerprint(job: StackJob, program: str) -> str:
    doc = json.dumps({"config": job.config, "secret": sorted(job.secret_keys), "program": program}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def load_state(out_dir: Path) -> dict[str, dict]:
    """The per-stack state of ``out_dir`` (``{}`` when there is none); ``ClassStateError`` when it is unusable."""
    path = out_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ClassStateError(
            f"{path} cannot be read ({e}); move it away (mv {path} {path}.bad) and run again"
        ) from None
    fix = (
        f"move it away (mv {path} {path}.bad) and run again: without it no stack is skipped, and `up` on a stack "
        "that exists updates it in place"
    )
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ClassStateError(f"{path} is not valid JSON ({e}; cut short by a crash, or edited?); {fix}") from None
    if not isinstance(doc, dict):
        raise ClassStateError(f"{path} is not a class state (a JSON object was expected); {fix}")
    if "schemaVersion" not in doc:  # the first format: stacks at the top level, no runner recorded
        stacks = doc
    else:
        if doc.get("schemaVersion") != STATE_VERSION or not isinstance(doc.get("stacks"), dict):
            raise ClassStateError(
                f"{path} has state schema {doc.get('schemaVersion')!r}; this labctl reads {STATE_VERSION}; {fix}"
            )
        stacks = doc["stacks"]
    if not all(isinstance(k, str) and isinstance(v, dict) for k, v in stacks.items()):
        raise ClassStateError(f"{path} has entries that are not stack records; {fix}")
    return stacks


def save_state(out_dir: Path, stacks: dict[str, dict], interrupted: dict[str, Any] | None = None) -> None:
    """Write the state atomically (temp file + rename): a crash leaves the old state or the new one, never half."""
    doc: dict[str, Any] = {"schemaVersion": STATE_VERSION, "stacks": stacks}
    if interrupted:
        doc["lastInterrupt"] = interrupted
    atomic_write_text(out_dir / STATE_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def satisfies_resume(prev: dict[str, Any], runner_kind: str, fingerprint: str) -> bool:
    """Whether a recorded result lets ``--resume`` skip a stack: the same runner (an offline dry run never stands
    for a real deployment), a successful ``up``, and the same program and config."""
    return (
        prev.get("runner") == runner_kind
        and prev.get("action") == "up"
        and prev.get("status") == "succeeded"
        and prev.get("fingerprint") == fingerprint
    )


class _Stop:
    """Shared between the signal handler (main thread) and the workers: once set, no stack starts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # only workers and the handler take it; the main thread never holds it else
        self.signal: str | None = None
        self.at: float | None = None

    def request(self, name: str) -> None:
        with self.lock:
            if self.signal is None:
                self.signal = name
                self.at = time.time()

    def start(self) -> float | None:
        """The start time of a stack, or None when the run is stopping (then it must not start)."""
        with self.lock:
            return None if self.signal is not None else time.time()


def _run_one(job: StackJob, runner: StackRunner, opts: ClassOptions, log: Path, stop: _Stop) -> StackResult:
    started = stop.start()
    if started is None:
        return StackResult(job.student_id, job.stack, opts.action, NOT_STARTED)
    with log.open("a") as out:
        out.write(f"== start {opts.action} {job.stack} ({runner.kind}) at {started:.3f}\n")
    result = runner.run(job, opts.action, log, 1)
    attempt = 1
    while result.status == "failed" and is_transient(result.error) and attempt < opts.retries:
        delay = opts.backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 (jitter)
        with log.open("a") as out:
            out.write(f"transient error, retrying in {delay:.1f}s\n")
        time.sleep(delay)
        if stop.start() is None:  # interrupted while waiting: do not start another attempt
            break
        attempt += 1
        result = runner.run(job, opts.action, log, attempt)
    result.attempts = attempt
    result.started_at = started
    return result


def run_class(
    jobs: list[StackJob],
    runner: StackRunner,
    opts: ClassOptions,
    console: Console | None = None,
    on_result: Callable[[StackResult], None] | None = None,
    stop: _Stop | None = None,
) -> ClassResult:
    """Run ``opts.action`` for every job; a failing student never stops the others.

    ``stop`` (see ``run_and_report``) ends the run early: queued stacks are not started, running ones finish.
    """
    console = console or Console(stderr=True)
    stop = stop or _Stop()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    logs = opts.out_dir / "logs"
    logs.mkdir(exist_ok=True)
    state = load_state(opts.out_dir)
    program = program_fingerprint(jobs[0].project_dir) if jobs else ""
    result = ClassResult(opts.action, runner=runner.kind)
    todo: list[StackJob] = []
    for job in jobs:
        if opts.only is not None and job.student_id not in opts.only:
            continue
        prev = state.get(job.stack, {})
        if opts.resume and opts.action == "up" and satisfies_resume(prev, runner.kind, job_fingerprint(job, program)):
            skipped = StackResult(
                job.student_id,
                job.stack,
                opts.action,
                "skipped",
                outputs=prev.get("outputs", {}),
                monthly_cost=prev.get("monthly_cost"),
                check=prev.get("check"),
                env_file=job.env_file,
            )
            result.results.append(skipped)
            continue
        todo.append(job)

    lock = threading.Lock()
    start = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"class {opts.verb or opts.action} ({runner.kind})", total=len(todo))
        with ThreadPoolExecutor(max_workers=max(1, opts.parallel)) as pool:
            futures = {pool.submit(_run_one, j, runner, opts, logs / f"{j.stack}.log", stop): j for j in todo}
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    res = fut.result()
                except Exception as e:  # a runner bug must not stop the other students
                    res = StackResult(job.student_id, job.stack, opts.action, "failed", error=f"runner error: {e}")
                res.env_file = job.env_file
                with lock:
                    result.results.append(res)
                    if opts.action in ("up", "destroy") and res.status != NOT_STARTED:
                        state[job.stack] = {
                            "action": opts.action,
                            "status": res.status,
                            "runner": runner.kind,
                            "program": program,
                            "configHash": config_hash(job),
                            "fingerprint": job_fingerprint(job, program),
                            "outputs": res.outputs,
                            "monthly_cost": res.monthly_cost,
                            "check": res.check,
                            "envFile": job.env_file,
                            "startedAt": res.started_at,
                        }
                        save_state(opts.out_dir, state)
                if res.status == NOT_STARTED:
                    continue
                mark = {"succeeded": "[green]ok[/]", "failed": "[red]FAILED[/]"}.get(res.status, res.status)
                progress.console.print(
                    f"{job.stack}: {mark} in {res.seconds:.1f}s"
                    + (f" after {res.attempts} attempts" if res.attempts > 1 else "")
                    + (f" - {res.error.splitlines()[0][:160]}" if res.error else "")
                )
                progress.advance(task)
                if on_result:
                    on_result(res)
    result.wall_seconds = time.perf_counter() - start
    result.interrupted = stop.signal
    if stop.signal:
        save_state(opts.out_dir, state, {"signal": stop.signal, "at": stop.at, "action": opts.action})
    result.results.sort(key=lambda r: r.stack)
    return result


def run_and_report(
    jobs: list[StackJob],
    runner: StackRunner,
    opts: ClassOptions,
    title: str,
    console: Console | None = None,
) -> tuple[ClassResult, list[Path]]:
    """A whole class run as the CLI does it: the out-dir locked against a second run, Ctrl-C/SIGTERM survivable,
    state and reports written even when interrupted.

    First signal: no further stack starts, running ones finish (the cloud runner passes the signal on to Pulumi,
    which cancels cleanly), state and reports are written, ``result.interrupted`` names the signal. Second signal:
    the runner ends its children, then ``KeyboardInterrupt``. Raises ``LockHeld`` when another run holds the
    out-dir, ``ClassStateError`` when its state file is unusable; nothing has started then.
    """
    console = console or Console(stderr=True)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    stop = _Stop()

    def first(name: str) -> None:
        stop.request(name)
        runner.interrupt(name)
        console.print(
            f"[yellow]{name}: no further stack starts; waiting for the running ones to finish "
            f"(again to end them now)[/]"
        )

    def second(name: str) -> None:
        runner.abort()
        raise KeyboardInterrupt(f"{name} received twice")

    with exclusive_lock(opts.out_dir / LOCK_FILE, what=f"class run directory {opts.out_dir}"):
        load_state(opts.out_dir)  # a corrupt state file stops the run before anything starts
        with Interrupts(on_first=first, on_second=second):
            result = run_class(jobs, runner, opts, console=console, stop=stop)
            paths = write_reports(result, opts.out_dir, title=title)
    return result, paths


def judge_class(jobs: list[StackJob], processes: int = DEFAULT_PARALLEL) -> dict[str, str]:
    """Each student's offline plan judged as ``labctl plan`` judges it (policy rules, reachability): student id ->
    why it is blocked, for the students that are. Nothing is created; used by ``class validate`` and ``preflight``."""
    from labctl.runners import OfflineRunner

    runner = OfflineRunner(processes=processes)
    blocked: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="labctl-judge-") as tmp:
            with ThreadPoolExecutor(max_workers=max(1, processes)) as pool:
                futures = {pool.submit(runner.run, j, "preview", Path(tmp) / f"{j.stack}.log", 1): j for j in jobs}
                for fut in as_completed(futures):
                    res = fut.result()
                    if res.status != "succeeded":
                        blocked[futures[fut].student_id] = res.error
    finally:
        runner.close()
    return blocked


# --- reports ----------------------------------------------------------------------------------------------
COLUMNS = (
    "student",
    "stack",
    "status",
    "app_public_ip",
    "db_private_ip",
    "check",
    "seconds",
    "attempts",
    "monthly_cost_usd",
    "env_file",
    "error",
)
RUNNER_TITLES = {"offline": "offline runner: OCI mocked, nothing created", "cloud": "cloud runner: Pulumi + OCI"}


def report_rows(result: ClassResult) -> list[dict[str, str]]:
    rows = []
    for r in result.results:
        check = r.check or {}
        verdict = "ok" if check.get("ok") is True else ("failed" if check.get("ok") is False else "not run")
        rows.append(
            {
                "student": r.student_id,
                "stack": r.stack,
                "status": r.status,
                "app_public_ip": str(r.outputs.get("appPublicIp", "")),
                "db_private_ip": str(r.outputs.get("dbPrivateIp", "")),
                "check": verdict,
                "seconds": f"{r.seconds:.1f}",
                "attempts": str(r.attempts),
                "monthly_cost_usd": (
                    f"{r.monthly_cost:.2f}"
                    if r.monthly_cost is not None
                    else ("unknown" if r.status in ("succeeded", "skipped") and r.action == "up" else "")
                ),
                "env_file": r.env_file or "",
                "error": r.error.splitlines()[0][:200] if r.error else "",
            }
        )
    return rows


def totals(result: ClassResult) -> dict[str, str]:
    cost = sum(r.monthly_cost or 0.0 for r in result.results)
    return {
        "students": str(len(result.results)),
        "succeeded": str(result.count("succeeded")),
        "failed": str(result.count("failed")),
        "skipped": str(result.count("skipped")),
        "not_started": str(result.count(NOT_STARTED)),
        "monthly_cost_usd": f"{cost:.2f}",
        "wall_seconds": f"{result.wall_seconds:.1f}",
    }


def report_title(result: ClassResult, title: str) -> str:
    """The report's title names the runner that made it (an offline dry run must never pass for a deployment)."""
    runner = RUNNER_TITLES.get(result.runner, result.runner or "unknown runner")
    stopped = f", INTERRUPTED by {result.interrupted}" if result.interrupted else ""
    return f"{title} ({runner}){stopped}"


def write_reports(result: ClassResult, out_dir: Path, title: str = "Class report") -> list[Path]:
    rows, tot = report_rows(result), totals(result)
    title = report_title(result, title)
    md = [
        f"# {title}: `{result.action}`",
        "",
        " · ".join(f"{k.replace('_', ' ')}: **{v}**" for k, v in tot.items()),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    md += ["| " + " | ".join(row[c].replace("|", "\\|") for c in COLUMNS) + " |" for row in rows]
    atomic_write_text(out_dir / "class-report.md", "\n".join(md) + "\n")

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "class-report.csv", buf.getvalue())

    cells = "".join(
        "<tr class='{}'>{}</tr>".format(
            html.escape(row["status"]), "".join(f"<td>{html.escape(row[c])}</td>" for c in COLUMNS)
        )
        for row in rows
    )
    page = (
        "<!doctype html><html lang='en'><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}tr.failed{background:#fdd}tr.succeeded{background:#efe}"
        "tr.skipped{background:#eef}</style>"
        f"<h1>{html.escape(title)}: {html.escape(result.action)}</h1><p>"
        + " · ".join(f"{html.escape(k.replace('_', ' '))}: <b>{html.escape(v)}</b>" for k, v in tot.items())
        + "</p><table><tr>"
        + "".join(f"<th>{c}</th>" for c in COLUMNS)
        + f"</tr>{cells}</table></html>\n"
    )
    atomic_write_text(out_dir / "class-report.html", page)
    return [out_dir / f"class-report.{ext}" for ext in ("md", "csv", "html")]
