"""How one student's stack is run: offline (the same machinery as ``labctl plan``) or through the Automation API.

Both runners take a ``StackJob`` and return a ``StackResult``; ``labctl class`` fans them out. The Automation API
runner is deliberately thin: everything it decides (stack name, config values and which are secret, environment,
backend) is built by ``automation_args`` and tested without the Pulumi CLI; only ``AutomationRunner.run`` talks to
the CLI and OCI.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import threading
import time
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


class StackRunner(Protocol):
    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult: ...


def is_transient(error: str) -> bool:
    return bool(TRANSIENT.search(error))


class OfflineRunner:
    """Plans each stack offline, under the same mocks as ``labctl plan``: a dry run of the whole class.

    Stacks run in a pool of ``processes`` long-lived worker processes (spawned, so no state is shared with this
    one), which saves each stack the ~1 s of importing pulumi and pulumi-oci. ``inject`` maps a student id to
    ``(resource type or invoke token, error text, failing attempts)``: the mocks raise that error on the first
    ``failing attempts`` attempts (fault injection for tests and drills).
    """

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
                self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult:
        spec: dict[str, Any] = {"config": job.config, "secretKeys": list(job.secret_keys)}
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
    """Everything the Automation API call needs, decided without touching the CLI."""
    env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
    backend = backend_url or os.environ.get("PULUMI_BACKEND_URL") or f"file://{job.project_dir / '.pulumi-state'}"
    env["PULUMI_BACKEND_URL"] = backend
    secret = set(job.secret_keys)
    return AutomationArgs(
        stack_name=job.stack,
        work_dir=str(job.project_dir),
        config={k: (v, k in secret) for k, v in sorted(job.config.items())},
        env_vars=env,
        secrets_provider="passphrase",
    )


class AutomationRunner:
    """Runs ``pulumi up|preview|destroy`` for a stack through the Automation API (needs the CLI and OCI)."""

    def __init__(self, backend_url: str | None = None) -> None:
        self.backend_url = backend_url

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
