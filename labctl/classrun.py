"""``labctl class up|preview|destroy|status``: one stack per student, bounded parallelism, retries, resume, reports."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from components.portable import atomic_write_text
from labctl.runners import StackJob, StackResult, StackRunner, is_transient

# OCI's API rate limits are per tenancy; a handful of concurrent stacks keeps a class clear of 429s.
DEFAULT_PARALLEL = 4
STATE_FILE = "class-state.json"


@dataclass
class ClassOptions:
    action: str
    out_dir: Path
    parallel: int = DEFAULT_PARALLEL
    only: frozenset[str] | None = None
    resume: bool = False
    retries: int = 3
    backoff_seconds: float = 5.0


@dataclass
class ClassResult:
    action: str
    results: list[StackResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status in ("succeeded", "skipped") for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def program_fingerprint(project_dir: Path) -> str:
    """Hash of the program's source, so a resumed run redoes stacks whose program changed."""
    h = hashlib.sha256()
    files = [
        project_dir / "__main__.py",
        project_dir / "Pulumi.yaml",
        *sorted((project_dir / "components").glob("*.py")),
    ]
    for f in files:
        if f.exists():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def job_fingerprint(job: StackJob, program: str) -> str:
    doc = json.dumps({"config": job.config, "secret": sorted(job.secret_keys), "program": program}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def load_state(out_dir: Path) -> dict[str, dict]:
    path = out_dir / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _run_one(job: StackJob, runner: StackRunner, opts: ClassOptions, log: Path) -> StackResult:
    result = runner.run(job, opts.action, log, 1)
    attempt = 1
    while result.status == "failed" and is_transient(result.error) and attempt < opts.retries:
        delay = opts.backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 (jitter)
        with log.open("a") as out:
            out.write(f"transient error, retrying in {delay:.1f}s\n")
        time.sleep(delay)
        attempt += 1
        result = runner.run(job, opts.action, log, attempt)
    result.attempts = attempt
    return result


def run_class(
    jobs: list[StackJob],
    runner: StackRunner,
    opts: ClassOptions,
    console: Console | None = None,
    on_result: Callable[[StackResult], None] | None = None,
) -> ClassResult:
    """Run ``opts.action`` for every job; a failing student never stops the others."""
    console = console or Console(stderr=True)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    logs = opts.out_dir / "logs"
    logs.mkdir(exist_ok=True)
    state = load_state(opts.out_dir)
    program = program_fingerprint(jobs[0].project_dir) if jobs else ""
    result = ClassResult(opts.action)
    todo: list[StackJob] = []
    for job in jobs:
        if opts.only is not None and job.student_id not in opts.only:
            continue
        prev = state.get(job.stack, {})
        if (
            opts.resume
            and opts.action == "up"
            and prev.get("action") == "up"
            and prev.get("status") == "succeeded"
            and prev.get("fingerprint") == job_fingerprint(job, program)
        ):
            skipped = StackResult(
                job.student_id,
                job.stack,
                opts.action,
                "skipped",
                outputs=prev.get("outputs", {}),
                monthly_cost=prev.get("monthly_cost"),
                check=prev.get("check"),
            )
            result.results.append(skipped)
            continue
        todo.append(job)

    lock = threading.Lock()
    start = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"class {opts.action}", total=len(todo))
        with ThreadPoolExecutor(max_workers=max(1, opts.parallel)) as pool:
            futures = {pool.submit(_run_one, j, runner, opts, logs / f"{j.stack}.log"): j for j in todo}
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    res = fut.result()
                except Exception as e:  # a runner bug must not stop the other students
                    res = StackResult(job.student_id, job.stack, opts.action, "failed", error=f"runner error: {e}")
                with lock:
                    result.results.append(res)
                    if opts.action in ("up", "destroy"):
                        state[job.stack] = {
                            "action": opts.action,
                            "status": res.status,
                            "fingerprint": job_fingerprint(job, program),
                            "outputs": res.outputs,
                            "monthly_cost": res.monthly_cost,
                            "check": res.check,
                        }
                        atomic_write_text(opts.out_dir / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))
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
    result.results.sort(key=lambda r: r.stack)
    return result


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
    "error",
)


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
                "monthly_cost_usd": "" if r.monthly_cost is None else f"{r.monthly_cost:.2f}",
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
        "monthly_cost_usd": f"{cost:.2f}",
        "wall_seconds": f"{result.wall_seconds:.1f}",
    }


def write_reports(result: ClassResult, out_dir: Path, title: str = "Class report") -> list[Path]:
    rows, tot = report_rows(result), totals(result)
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
