"""How one student's stack is run: offline (the same machinery as ``labctl plan``) or through the Automation API.

Both runners take a ``StackJob`` and return a ``StackResult``; ``labctl class`` fans them out. The Automation API
runner is deliberately thin: everything it decides (stack name, config values and which are secret, environment,
backend) is built by ``automation_args`` and tested without the Pulumi CLI; only ``AutomationRunner.run`` talks to
the CLI and OCI.
"""

from __future__ import annotations

import configparser
import contextlib
import difflib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from components.portable import atomic_write_text
from labctl.offline import REPO_ROOT
from labctl.worker import plan_doc

ACTIONS = ("up", "preview", "destroy", "status")
# OCI answers these when it is busy; they pass if tried again later (OCI API errors: 429 TooManyRequests,
# 500 InternalError "Out of host capacity" for VM shapes, 503 ServiceUnavailable).
TRANSIENT = re.compile(
    r"\b429\b|TooManyRequests|Out of host capacity|\b503\b|ServiceUnavailable|InternalError|\b500\b", re.I
)


@dataclass(frozen=True)
class StackJob:
    student_id: str
    stack: str
    config: dict[str, str]  # full keys (oci-dblab:..., oci:region)
    secret_keys: tuple[str, ...] = ()
    project_dir: Path = REPO_ROOT
    env_file: str | None = None  # where the connection check writes the student's .env (<out-dir>/env/<id>/.env)
    oci_profile: str | None = None  # per-student tenancy: a profile of the OCI config file
    spec_extra: dict[str, Any] = field(default_factory=dict)  # what the offline judgement needs (admin limit)


@dataclass
class StackResult:
    student_id: str
    stack: str
    action: str
    status: str  # succeeded | failed | skipped
    seconds: float = 0.0
    attempts: int = 1
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    monthly_cost: float | None = None
    check: dict[str, Any] | None = None
    resources: int = 0
    env_file: str | None = None
    started_at: float | None = None  # wall clock (time.time()) when the stack was started


class StackRunner(Protocol):
    """What ``labctl class`` needs of a runner. ``kind`` is recorded in the state and the reports."""

    kind: str

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult: ...

    def interrupt(self, signal_name: str) -> None:
        """The first Ctrl-C/SIGTERM: let running stacks finish (or cancel cleanly)."""

    def abort(self) -> None:
        """The second one: end the children now."""


def is_transient(error: str) -> bool:
    return bool(TRANSIENT.search(error))


def _ignore_sigint() -> None:
    """Worker processes ignore Ctrl-C: a terminal sends it to the whole process group, and the parent decides
    (the first lets running plans finish; the second ends the workers through ``abort``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --- offline workers: start-up and memory (issue 12 item 3) -------------------------------------------------
# What a worker needs before its first plan. The forkserver imports these once and forks every worker from itself,
# so a worker starts with them loaded (shared copy-on-write pages) instead of importing pulumi and pulumi_oci again.
PRELOAD_BASE = ("pulumi", "pulumi.runtime", "pulumi_oci", "pulumi_random", "labctl.worker")
# The program's own modules (and through them only the pulumi_oci modules it uses, components/ocimods.py) and the
# judgement plan_doc runs; preloaded only when the class plans this tree (``components`` is the project's own).
PRELOAD_PROGRAM = (
    "engines",
    "components.config",
    "components.network",
    "components.compute",
    "components.database",
    "components.operations",
    "components.envfile",
    "components.lookups",
    "labctl.reach",
    "labctl.estimate",
    "policy.rules",
)


def cpu_count() -> int:
    """CPUs this process may run on (its affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def offline_parallel(requested: int, cpus: int | None = None) -> int:
    """Worker processes for an offline class: an offline plan is pure CPU, so a pool wider than the machine only
    adds start-up and memory (issue 12: --parallel 4 on 2 CPUs was slower than 2)."""
    return max(1, min(requested, cpus if cpus is not None else cpu_count()))


def pool_context(
    preload: Sequence[str], methods: Sequence[str] | None = None
) -> tuple[multiprocessing.context.BaseContext, str]:
    """The start method for offline workers: ``forkserver`` with ``preload`` where the OS has it (Linux, macOS),
    else ``spawn`` (Windows), where each worker imports for itself. ``methods``: the OS's start methods (tests)."""
    available = multiprocessing.get_all_start_methods() if methods is None else list(methods)
    if "forkserver" in available:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ctx, "forkserver"
    return multiprocessing.get_context("spawn"), "spawn"


def process_memory(pid: int | str = "self", proc: Path = Path("/proc")) -> tuple[float, str] | None:
    """(MiB, kind) of a process: PSS from /proc/<pid>/smaps_rollup (Linux 4.14+), where pages a worker shares with
    the forkserver and its siblings count once in total; else RSS (/proc/<pid>/status, or this process's peak RSS
    from getrusage where there is no /proc); None when neither can be read."""
    for name, key, kind in (("smaps_rollup", "Pss:", "PSS"), ("status", "VmRSS:", "RSS")):
        try:
            for line in (proc / str(pid) / name).read_text().splitlines():
                if line.startswith(key):
                    return int(line.split()[1]) / 1024, kind  # kB
        except (OSError, ValueError, IndexError):
            continue
    if pid == "self":
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
            return (peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024), "peak RSS"
        except (ImportError, OSError):
            return None
    return None


def _plan_in_worker(spec: dict[str, Any], stack: str, project_dir: str) -> dict[str, Any]:
    """``plan_doc`` in a pool worker, plus the worker's pid and memory after the plan (``"_worker"``)."""
    root = Path(project_dir).resolve()
    mod = sys.modules.get("components")
    where = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", [])), None)
    if mod is not None and where and root not in Path(where).resolve().parents:
        # preloaded from another tree (the forkserver outlives one runner): this project's own components instead
        for name in [n for n in sys.modules if n.split(".")[0] in ("components", "engines")]:
            del sys.modules[name]
    doc = plan_doc(spec, stack, project_dir, True)
    memory = process_memory()
    doc["_worker"] = {"pid": os.getpid(), "mib": memory[0] if memory else None, "kind": memory[1] if memory else ""}
    return doc


class OfflineRunner:
    """Plans each stack offline, under the same mocks as ``labctl plan``: a dry run of the whole class.

    Stacks run in a pool of ``processes`` long-lived worker processes (at most one per CPU: ``offline_parallel``).
    Where the OS has it the workers are forked from a forkserver that has imported pulumi, the pulumi_oci modules the
    program uses and the program's components once (``PRELOAD_*``), so a worker starts in milliseconds and shares
    those pages; elsewhere they are spawned and import for themselves. No state of this process is shared with them.
    Each worker's memory (PSS where /proc has it, else RSS) is logged per stack and summed up by ``memory_summary``.
    ``inject`` maps a student id to ``(resource type or invoke token, error text, failing attempts)``: the mocks
    raise that error on the first ``failing attempts`` attempts (fault injection for tests and drills).
    """

    kind = "offline"

    def __init__(
        self,
        plan_dir: Path | None = None,
        inject: dict[str, tuple[str, str, int]] | None = None,
        processes: int = 4,
        timeout: float = 300,
        start_methods: Sequence[str] | None = None,
        cpus: int | None = None,
    ) -> None:
        self.plan_dir = plan_dir
        self.inject = dict(inject or {})
        self.timeout = timeout
        self.requested = max(1, processes)
        self.processes = offline_parallel(self.requested, cpus)
        self.start_methods = start_methods  # None: the OS's (tests inject a platform without forkserver)
        self.start_method = ""  # decided when the pool starts
        self.worker_memory: dict[int, tuple[float, str]] = {}  # pid -> (largest MiB seen, PSS|RSS)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self, project_dir: Path = REPO_ROOT) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                same_tree = Path(project_dir).resolve() == REPO_ROOT.resolve()
                preload = PRELOAD_BASE + (PRELOAD_PROGRAM if same_tree else ())
                ctx, self.start_method = pool_context(preload, self.start_methods)
                self._pool = ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_ignore_sigint)
            return self._pool

    def memory_summary(self) -> str:
        """One line for the run's output: the workers, how they started, and their memory."""
        if not self.worker_memory:
            return f"offline workers: {self.processes} ({self.start_method or 'not started'})"
        values = [m for m, _ in self.worker_memory.values()]
        kind = sorted({k for _, k in self.worker_memory.values()})[0]
        capped = f", --parallel {self.requested} capped at the CPU count" if self.requested > self.processes else ""
        return (
            f"offline workers: {len(values)} ({self.start_method}{capped}); memory per worker ({kind}): "
            f"max {max(values):.0f} MiB, total {sum(values):.0f} MiB"
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def interrupt(self, signal_name: str) -> None:
        """Offline plans take a second or two each: the running ones are left to finish."""

    def abort(self) -> None:
        """End the worker processes now (their stacks fail with 'offline run crashed')."""
        with self._lock:
            pool = self._pool
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):  # the executor has no public kill
            with contextlib.suppress(Exception):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult:
        spec: dict[str, Any] = {"config": job.config, "secretKeys": list(job.secret_keys), **job.spec_extra}
        fault = self.inject.get(job.student_id)
        if fault and attempt <= fault[2]:
            spec["failTypes"] = {fault[0]: fault[1]}
        start = time.perf_counter()
        try:
            pool = self._executor(job.project_dir)
            doc = pool.submit(_plan_in_worker, spec, job.stack, str(job.project_dir)).result(self.timeout)
        except Exception as e:  # a crashed or hung worker process fails this student only
            doc = {"error": f"offline run crashed: {type(e).__name__}: {e}"}
        seconds = time.perf_counter() - start
        worker = doc.pop("_worker", None) or {}
        memory = ""
        if worker.get("mib") is not None:
            with self._lock:
                seen = self.worker_memory.get(worker["pid"], (0.0, ""))[0]
                self.worker_memory[worker["pid"]] = (max(seen, worker["mib"]), worker["kind"])
            memory = f", worker {worker['pid']} {worker['kind']} {worker['mib']:.0f} MiB"
        with log.open("a") as out:
            out.write(f"== {action} {job.stack} (offline) attempt {attempt}: {seconds:.2f}s{memory}\n")
            if "error" in doc:
                out.write(doc["error"] + "\n")
        if "error" in doc:
            return StackResult(job.student_id, job.stack, action, "failed", seconds, attempt, error=doc["error"])
        if self.plan_dir is not None:
            self.plan_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.plan_dir / f"{job.stack}.json", json.dumps(doc, indent=1, sort_keys=True))
        if action == "destroy":
            return StackResult(job.student_id, job.stack, action, "succeeded", seconds, attempt)
        return StackResult(
            job.student_id,
            job.stack,
            action,
            "succeeded",
            seconds,
            attempt,
            outputs=doc.get("outputs", {}),
            monthly_cost=doc.get("monthlyCost"),
            check=doc.get("check"),
            resources=len(doc.get("resources", [])),
        )


class JudgedRunner:
    """A runner (the cloud one) behind the judgement of ``labctl plan``: before a stack's first ``up`` or
    ``preview`` attempt, its offline plan is judged by every policy rule and reachability verdict (``plan_doc``);
    a mandatory finding, a failed verdict or a failing program fails that student before anything is created."""

    def __init__(self, inner: StackRunner, judge: OfflineRunner) -> None:
        self.inner = inner
        self.judge = judge
        self.kind = inner.kind

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult:
        if action in ("up", "preview") and attempt == 1:
            judged = self.judge.run(job, "preview", log, 1)
            if judged.status != "succeeded":
                error = judged.error
                if not error.startswith("blocked before anything is created"):
                    error = f"blocked before anything is created: the offline plan fails:\n{error}"
                return StackResult(job.student_id, job.stack, action, "failed", judged.seconds, 1, error=error)
        return self.inner.run(job, action, log, attempt)

    def interrupt(self, signal_name: str) -> None:
        self.judge.interrupt(signal_name)
        self.inner.interrupt(signal_name)

    def abort(self) -> None:
        self.judge.abort()
        self.inner.abort()

    def close(self) -> None:
        self.judge.close()


@dataclass(frozen=True)
class AutomationArgs:
    stack_name: str
    work_dir: str
    config: dict[str, tuple[str, bool]]  # key -> (value, secret)
    env_vars: dict[str, str]
    secrets_provider: str


def automation_args(job: StackJob, backend_url: str | None = None) -> AutomationArgs:
    """Everything the Automation API call needs, decided without touching the CLI.

    A per-student tenancy (roster ``oci_profile``) becomes the stack's OCI provider config ``oci:configFileProfile``
    (and the row's ``region`` is already ``oci:region``): each stack authenticates as its student's own tenancy.
    """
    env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
    backend = backend_url or os.environ.get("PULUMI_BACKEND_URL") or f"file://{job.project_dir / '.pulumi-state'}"
    env["PULUMI_BACKEND_URL"] = backend
    secret = set(job.secret_keys)
    config = dict(job.config)
    if job.oci_profile:
        config["oci:configFileProfile"] = job.oci_profile
    return AutomationArgs(
        stack_name=job.stack,
        work_dir=str(job.project_dir),
        config={k: (v, k in secret) for k, v in sorted(config.items())},
        env_vars=env,
        secrets_provider="passphrase",
    )


# --- what the cloud runner needs before any stack starts -----------------------------------------------------
# The OCI config file: ~/.oci/config unless OCI_CLI_CONFIG_FILE names another (OCI SDK/CLI "SDK and CLI
# Configuration File", docs.oracle.com/iaas/Content/API/Concepts/sdkconfig.htm); an API-key profile needs user,
# fingerprint, tenancy, region and key_file.
OCI_PROFILE_KEYS = ("user", "fingerprint", "tenancy", "region", "key_file")


def oci_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("OCI_CLI_CONFIG_FILE") or "~/.oci/config").expanduser()


def check_cloud_tools(
    profiles: Sequence[str],
    environ: Mapping[str, str] | None = None,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> tuple[list[str], str]:
    """Problems that would make every cloud stack fail, found before any starts; and the Pulumi version.

    Checks: the Pulumi CLI on PATH answers ``pulumi version``; the OCI config file is readable; every named
    profile (``DEFAULT`` when none is named) exists with the keys of an API-key profile and a readable key file.
    """
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    version = ""
    exe = shutil.which("pulumi", path=env.get("PATH"))
    if exe is None:
        problems.append(
            "the Pulumi CLI is not on PATH; install it (curl -fsSL https://get.pulumi.com | sh, or: brew install "
            "pulumi/tap/pulumi, winget install pulumi) and open a new shell. `--offline` needs no CLI"
        )
    else:
        try:
            done = run([exe, "version"], capture_output=True, text=True, timeout=60, env=env)
            version = (done.stdout or "").strip()
            if done.returncode != 0 or not re.fullmatch(r"v?[0-9]+\.[0-9]+\.[0-9]+\S*", version):
                problems.append(f"`{exe} version` did not answer with a version ({(done.stderr or version)[:200]!r})")
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append(f"`{exe} version` could not run ({e})")
    path = oci_config_path(env)
    parser = configparser.ConfigParser(default_section="__none__", interpolation=None)
    try:
        text = path.read_text(encoding="utf-8")
        parser.read_string(text, source=str(path))
    except FileNotFoundError:
        problems.append(
            f"no OCI config file at {path}; create it with `oci setup config` (or set OCI_CLI_CONFIG_FILE). "
            "Each tenancy needs a profile with user, fingerprint, tenancy, region and key_file"
        )
        return problems, version
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        problems.append(f"the OCI config file {path} cannot be read: {e}")
        return problems, version
    for name in sorted(set(profiles) or {"DEFAULT"}):
        if not parser.has_section(name):
            near = difflib.get_close_matches(name, parser.sections(), n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; it has: {', '.join(parser.sections()) or 'none'}"
            problems.append(f"profile [{name}] is not in {path}{hint}")
            continue
        missing = [k for k in OCI_PROFILE_KEYS if not parser.get(name, k, fallback="").strip()]
        if missing:
            problems.append(f"profile [{name}] in {path} lacks {', '.join(missing)}")
            continue
        key_file = Path(parser.get(name, "key_file").strip()).expanduser()
        if not key_file.is_file() or not os.access(key_file, os.R_OK):
            problems.append(f"profile [{name}] in {path}: key_file {key_file} is missing or not readable")
    return problems, version


def child_pids(pid: int | None = None, proc: Path = Path("/proc")) -> list[int]:
    """Direct children of ``pid`` (default: this process), from /proc on Linux; [] where /proc is absent."""
    pid = os.getpid() if pid is None else pid
    out: list[int] = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return out
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat_text = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the command name (which may hold spaces and parentheses): state, ppid, ...
        rest = stat_text.rsplit(")", 1)[-1].split()
        if len(rest) > 1 and rest[1] == str(pid):
            out.append(int(entry.name))
    return out


def _signal_children(sig: int) -> None:
    for pid in child_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


class AutomationRunner:
    """Runs ``pulumi up|preview|destroy`` for a stack through the Automation API (needs the CLI and OCI)."""

    kind = "cloud"

    def __init__(self, backend_url: str | None = None) -> None:
        self.backend_url = backend_url

    def interrupt(self, signal_name: str) -> None:
        """Pass the stop on to each running ``pulumi``, which then cancels its update cleanly (Pulumi's first
        Ctrl-C). A Ctrl-C in a terminal already reaches the whole foreground process group; a SIGTERM sent to
        labctl alone does not, so it is forwarded as SIGINT."""
        if signal_name != "SIGINT":
            _signal_children(signal.SIGINT)

    def abort(self) -> None:
        """The second signal: end the ``pulumi`` children now."""
        _signal_children(signal.SIGTERM)

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult:  # pragma: no cover - cloud
        from pulumi import automation as auto

        a = automation_args(job, self.backend_url)
        start = time.perf_counter()
        with log.open("a") as out:
            out.write(f"== {action} {a.stack_name} attempt {attempt}\n")
            try:
                ws = auto.LocalWorkspaceOptions(env_vars=a.env_vars, secrets_provider=a.secrets_provider)
                stack = auto.create_or_select_stack(stack_name=a.stack_name, work_dir=a.work_dir, opts=ws)
                stack.set_all_config({k: auto.ConfigValue(value=v, secret=s) for k, (v, s) in a.config.items()})
                outputs: dict[str, Any] = {}
                if action == "up":
                    res = stack.up(on_output=out.write, color="never")
                    outputs = {k: ("[secret]" if v.secret else v.value) for k, v in res.outputs.items()}
                elif action == "preview":
                    stack.preview(on_output=out.write, color="never", diff=True)
                elif action == "destroy":
                    stack.destroy(on_output=out.write, color="never")
                elif action == "status":
                    outputs = {k: ("[secret]" if v.secret else v.value) for k, v in stack.outputs().items()}
            except Exception as e:  # the CLI's error text, which carries OCI's code
                out.write(f"{e}\n")
                return StackResult(
                    job.student_id,
                    job.stack,
                    action,
                    "failed",
                    time.perf_counter() - start,
                    attempt,
                    error=str(e)[-2000:],
                )
        check = outputs.get("connectionCheck") if isinstance(outputs.get("connectionCheck"), dict) else None
        return StackResult(
            job.student_id,
            job.stack,
            action,
            "succeeded",
            time.perf_counter() - start,
            attempt,
            outputs=outputs,
            check=check,
        )
