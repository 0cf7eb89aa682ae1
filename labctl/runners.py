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


class OfflineRunner:
    """Plans each stack offline, under the same mocks as ``labctl plan``: a dry run of the whole class.

    Stacks run in a pool of ``processes`` long-lived worker processes (spawned, so no state is shared with this
    one), which saves each stack the ~1 s of importing pulumi and pulumi-oci. ``inject`` maps a student id to
    ``(resource type or invoke token, error text, failing attempts)``: the mocks raise that error on the first
    ``failing attempts`` attempts (fault injection for tests and drills).
    """

    kind = "offline"

    def __init__(
        self,
        plan_dir: Path | None = None,
        inject: dict[str, tuple[str, str, int]] | None = None,
        processes: int = 4,
        timeout: float = 300,
    ) -> None:
        self.plan_dir = plan_dir
        self.inject = dict(inject or {})
        self.timeout = timeout
        self.processes = max(1, processes)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
                )
            return self._pool

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
            doc = self._executor().submit(plan_doc, spec, job.stack, str(job.project_dir), True).result(self.timeout)
        except Exception as e:  # a crashed or hung worker process fails this student only
            doc = {"error": f"offline run crashed: {type(e).__name__}: {e}"}
        seconds = time.perf_counter() - start
        with log.open("a") as out:
            out.write(f"== {action} {job.stack} (offline) attempt {attempt}: {seconds:.2f}s\n")
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
