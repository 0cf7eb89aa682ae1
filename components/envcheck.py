"""The EnvFile provider's logic, in plain functions: .env rendering, the connection check and its diagnosis.

Nothing here imports Pulumi. ``components/envfile.py`` turns resource properties into a ``CheckRequest`` and
calls ``run_check``; the tests call the same functions against real servers on loopback.

The check, from the app VM's side of the network
-------------------------------------------------
1. **SSH hop** — this machine → ``appHost:sshPort`` (the VM's public IP) as ``sshUser`` with the private key at
   ``sshPrivateKeyPath``. Only the key's *path* is ever a resource property; paramiko reads the key file.
2. **Forward hop** — sshd on the VM opens a ``direct-tcpip`` channel to ``dbHost:dbPort`` (the DB's private
   IP). The TCP connection to the DB therefore starts *on the VM*, exactly like the app's would, so it exercises
   the private subnet's security list and route table.
3. **DB hop** — the engine's check adapter (``Engine.adapter()``: ``engines/mysqlcheck.py`` for the MySQL family,
   ``engines/pgcheck.py`` for PostgreSQL) speaks to the DB through that channel with TLS required. The admin
   session creates the lab database and the least-privilege app user; a second session *as the app user* proves
   it can log in and create, write and drop a table. Server version and TLS details come with the sessions.
4. **SFTP** — the ``.env`` is staged on the VM under a temporary name while the SQL runs and renamed to
   ``.env`` only once the check passed (``StagedUpload``).

Round trips: each one costs the distance to the VM, so the check makes only those the protocols need. The SSH
socket acknowledges at once (``TCP_QUICKACK``), so sshd's back-to-back small packets are not held by Nagle
waiting for a delayed ACK; each session's SQL is one batch (the adapter's); one TLS context serves the whole
check; where the adapter allows it (``gated_login``) the app user's forward and TLS handshake run while the admin
works (``_AppLogin``), and the ``.env`` upload overlaps the SQL.

The job is split by module: ``envcheck_dotenv.py`` (the .env text), ``envcheck_ssh.py`` (known hosts, SSH, tunnel,
staged upload), ``envcheck_diagnosis.py`` (hops, causes, messages), the engine's adapter (driver, SQL, its error
codes) and this module (the request, the retries, one attempt over every hop). The names of the first three are
re-exported here, so the provider and the tests import one module.

Host keys: trust on first use, in a file of our own
---------------------------------------------------
A VM created a minute ago has a host key nobody could have known in advance, so strict checking against
``~/.ssh/known_hosts`` would always fail and turning checking off would accept anyone. The check keeps its own
known-hosts file, ``.dblab_known_hosts`` next to the local ``.env``: the first connection to ``host:port``
records the key (paramiko ``AutoAddPolicy``), every later connection must present the same key, and a change
fails fast with a message saying what happened (usually: the VM got a new boot volume), both fingerprints, and
the exact ``ssh-keygen -R`` command that forgets the old key if the VM was rebuilt. ``~/.ssh/known_hosts`` is
neither read nor written. Deleting the EnvFile forgets that host's entry, so a destroy/up cycle that reuses the
public IP starts over cleanly.

Retries and diagnosis
---------------------
Failures while sshd or the DB is still coming up (refused, timed out, no banner, lost handshake) are retried
with capped exponential backoff and jitter until ``timeout_s``; the last failure is then reported with "after N
attempts in T s". Failures a retry cannot fix (host key changed, key rejected, access denied, TLS missing or
broken, missing privileges) are reported at once. Every message names the hop, what failed and the lab concept
to look at (``envcheck_diagnosis.py``); passwords never appear in any message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import engines
from components.envcheck_diagnosis import (
    HOP_ADMIN,
    HOP_APP,
    HOP_FORWARD,
    HOP_SFTP,
    HOP_SSH,
    CheckFailed,
    Diagnosis,
    TlsNotNegotiated,
    _HopError,
    host_key_changed_message,
    redact,
)
from components.envcheck_diagnosis import diagnose as _diagnose
from components.envcheck_dotenv import (
    DOTENV_INTERPOLATION_RE,
    dotenv_problem,
    env_values,
    quote_dotenv_value,
    render_dotenv,
)
from components.envcheck_ssh import (
    DEFAULT_SSH_KEYS,
    KNOWN_HOSTS_NAME,
    REMOTE_ENV_NAME,
    SshTarget,
    StagedUpload,
    Tunnel,
    _QuickAckSocket,
    _ssh_socket,
    forget_host_key,
    host_key_name,
    known_hosts_path,
    open_ssh,
    paramiko,
    remote_env_path,
    remove_file,
    remove_remote_env,
    resolve_key_paths,
    write_private_file,
)
from engines.base import DOTENV_KEYS

__all__ = [
    "DEFAULT_SSH_KEYS",
    "DOTENV_INTERPOLATION_RE",
    "DOTENV_KEYS",
    "HOP_ADMIN",
    "HOP_APP",
    "HOP_FORWARD",
    "HOP_SFTP",
    "HOP_SSH",
    "KNOWN_HOSTS_NAME",
    "REMOTE_ENV_NAME",
    "Accounts",
    "CheckFailed",
    "CheckReport",
    "CheckRequest",
    "DbTarget",
    "Diagnosis",
    "SshTarget",
    "StagedUpload",
    "TlsNotNegotiated",
    "Tunnel",
    "_QuickAckSocket",
    "_ssh_socket",
    "adapter_of",
    "diagnose",
    "dotenv_problem",
    "env_values",
    "forget_host_key",
    "host_key_changed_message",
    "host_key_name",
    "known_hosts_path",
    "open_ssh",
    "paramiko",
    "quote_dotenv_value",
    "redact",
    "remote_env_path",
    "remove_file",
    "remove_remote_env",
    "render_dotenv",
    "resolve_key_paths",
    "run_check",
    "write_private_file",
]

# Names the EnvFile provider validates before any connection (a safe subset every engine accepts: the adapters
# quote them as identifiers).
USER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

ATTEMPT_CAP_S = 20.0  # no single attempt (connect + SQL + SFTP) may take longer than this
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0


def adapter_of(req: CheckRequest) -> Any:
    """The check adapter of the request's engine (``Engine.adapter()``)."""
    engine = engines.get(req.engine or engines.DEFAULT)
    found = engine.adapter()
    if found is None:
        raise ValueError(f"engine {engine.name} has no check adapter")
    return found


def diagnose(hop: str, exc: BaseException, req: CheckRequest, adapter: Any = None) -> Diagnosis:
    """``envcheck_diagnosis.diagnose`` with the request's engine adapter (``adapter_of``) unless one is given."""
    return _diagnose(hop, exc, req, adapter if adapter is not None else adapter_of(req))


# --- the request and the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DbTarget:
    host: str  # private IP, as seen from the VM
    port: int
    hostname: str  # FQDN, used for TLS identity checks (VERIFY_IDENTITY / verify-full)
    ssl_mode: str = "REQUIRED"  # in the engine's spelling (Engine.ssl_mode, the adapter's ssl_modes)
    ssl_ca: str = ""  # CA bundle path for the verifying modes; "" means the system trust store


@dataclass(frozen=True, repr=False)
class Accounts:
    db_name: str
    admin_user: str
    admin_password: str
    app_user: str
    app_password: str
    previous_app_user: str | None = None  # dropped when the app user is renamed

    def __repr__(self) -> str:  # never show the passwords, even in a debugger or traceback
        return f"Accounts(db_name={self.db_name!r}, admin_user={self.admin_user!r}, app_user={self.app_user!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.admin_password, self.app_password)


@dataclass(frozen=True)
class CheckRequest:
    ssh: SshTarget
    db: DbTarget
    accounts: Accounts
    timeout_s: float = 600.0
    engine: str = ""  # the dbEngine whose adapter speaks to the DB; "" = the registry's default engine


@dataclass(frozen=True)
class CheckReport:
    server_version: str
    current_user: str
    latency_ms: float
    tls_version: str
    tls_cipher: str
    attempts: int
    elapsed_ms: float
    checked_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    # SHA-256 of the server certificate (AB:CD:..., as `openssl x509 -fingerprint -sha256` prints it) when the
    # adapter reports one: a DB VM's self-signed certificate is checked by comparing it with what its boot logged
    tls_fingerprint: str = ""

    def as_output(self) -> dict[str, object]:
        """The resource's ``check`` output (camelCase, no secrets)."""
        return {
            "ok": True,
            "serverVersion": self.server_version,
            "currentUser": self.current_user,
            "latencyMs": self.latency_ms,
            "checkedAt": self.checked_at,
            "tls": {"version": self.tls_version, "cipher": self.tls_cipher}
            | ({"fingerprintSha256": self.tls_fingerprint} if self.tls_fingerprint else {}),
            "attempts": self.attempts,
            "elapsedMs": self.elapsed_ms,
        }


# --- the check ----------------------------------------------------------------------------------------------


def _backoff(attempt: int) -> float:
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


class _Background:
    """Run ``fn`` in a thread; ``result`` waits for it and re-raises what it raised."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name="dblab-stage", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of result()
            self._error = exc

    def result(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"SFTP did not finish within {timeout:.1f} s")
        if self._error is not None:
            raise self._error


PREOPEN_MAX_WAIT_S = 5.0  # a login left waiting longer is not used (servers drop unauthenticated sessions at ~10 s)


class _StaleLogin(Exception):
    """The pre-opened app session waited too long at the gate; log in afresh instead."""


class _GatedContext:
    """Wraps the check's SSLContext for the pre-opened app session: the TLS handshake runs at once, then
    ``wrap_socket`` waits for the gate (the admin's batch is done) before the driver sends the login packet."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.gate = threading.Event()
        self.abandoned = False

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None) -> ssl.SSLSocket:
        tls = self.ctx.wrap_socket(sock, server_hostname=server_hostname)
        ready = self.gate.wait(PREOPEN_MAX_WAIT_S)
        if self.abandoned or not ready:
            raise _StaleLogin("not used")
        return tls


class _AppLogin:
    """The app user's session, opened while the admin works: forward + greeting + TLS now, login at ``finish``.

    Saves the forward and TLS round trips on the critical path. If the admin failed, the session is abandoned;
    if it waited too long, or failed before the gate, ``finish`` reports the hop it failed at.
    """

    def __init__(
        self, tunnel: Tunnel, req: CheckRequest, ctx: ssl.SSLContext, left: Callable[[], float], adapter: Any
    ) -> None:
        self.gated = _GatedContext(ctx)
        self.adapter = adapter
        self.hop = HOP_FORWARD
        self.conn: Any = None
        self.error: BaseException | None = None
        self._args = (tunnel, req, left)
        self._thread = threading.Thread(target=self._run, name="dblab-app-login", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tunnel, req, left = self._args
        acc = req.accounts
        try:
            sock = tunnel.connect(req.db.host, req.db.port, left())
            self.hop = HOP_APP
            db, gated = req.db, self.gated
            self.conn = self.adapter.connect(sock, db, acc.app_user, acc.app_password, acc.db_name, left(), gated)
        except BaseException as exc:  # noqa: BLE001 - handed to finish()
            self.error = exc

    def finish(self, timeout: float) -> Any:
        """Open the gate and return the logged-in session; raises the session's own error (``self.hop``)."""
        self.gated.gate.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the app user's login did not finish within {timeout:.1f} s")
        if self.error is not None:
            raise self.error
        assert self.conn is not None
        return self.conn

    def abandon(self) -> None:
        """Tell the session not to log in (call ``wait_closed`` once the tunnel is closed)."""
        self.gated.abandoned = True
        self.gated.gate.set()

    def wait_closed(self, timeout: float = 2.0) -> None:
        """After the tunnel closed (a handshake still waiting for the DB then reads EOF): end the thread."""
        self._thread.join(timeout)
        if self.conn is not None:
            self.conn.close()


def _attempt(
    req: CheckRequest,
    timeout: float,
    ctx: ssl.SSLContext,
    upload: StagedUpload | None,
    preopen: bool = True,
    adapter: Any = None,
) -> dict[str, object]:
    """One pass over every hop; each step gets what is left of ``timeout``, so the pass as a whole is bounded.

    Round trips on the critical path after the SSH login: forward + TLS + login + one batch as the admin, then
    the app user's login (its forward and TLS ran alongside the admin's), its two probe round trips and the
    rename. The SFTP staging overlaps the SQL.

    ``preopen`` is for the first attempt only: a pre-opened session that is abandoned (the admin failed) counts
    as an interrupted connection on the DB, and a host with more than ``max_connect_errors`` (default 100) of those
    in a row is blocked until ``FLUSH HOSTS`` (MariaDB docs, "max_connect_errors"; MySQL manual, "DNS Lookups and
    the Host Cache"). Retries therefore log the app user in after the admin, never leaving a session behind.
    """
    adapter = adapter or adapter_of(req)
    preopen = preopen and bool(getattr(adapter, "gated_login", False))
    ends = time.monotonic() + timeout

    def left() -> float:
        return max(0.5, ends - time.monotonic())

    hop = HOP_SSH
    client: paramiko.SSHClient | None = None
    tunnel: Tunnel | None = None
    staging: _Background | None = None
    app_login: _AppLogin | None = None
    committed = False
    acc = req.accounts
    try:
        client = open_ssh(req.ssh, left())
        if upload is not None:
            ssh_client = client
            staging = _Background(lambda: upload.stage(ssh_client, left()))
        hop = HOP_FORWARD
        tunnel = Tunnel(client)
        if preopen:
            app_login = _AppLogin(tunnel, req, ctx, left, adapter)  # the app user's forward + TLS while the admin works
        sock = tunnel.connect(req.db.host, req.db.port, left())
        hop = HOP_ADMIN
        admin = adapter.connect(sock, req.db, acc.admin_user, acc.admin_password, None, left(), ctx)
        try:
            adapter.ensure_app_user(admin, acc)
        finally:
            admin.close()
        app: Any = None
        if app_login is not None:
            try:
                app = app_login.finish(left())
            except _StaleLogin:  # the admin took long: log in afresh rather than on a session the DB may drop
                pass
            except Exception:
                hop = app_login.hop
                raise
            app_login = None
        if app is None:
            hop = HOP_FORWARD
            sock = tunnel.connect(req.db.host, req.db.port, left())
            hop = HOP_APP
            app = adapter.connect(sock, req.db, acc.app_user, acc.app_password, acc.db_name, left(), ctx)
        hop = HOP_APP
        try:
            probe = adapter.probe_app(app, acc.db_name)
        finally:
            app.close()
        if upload is not None and staging is not None:
            hop = HOP_SFTP
            staging.result(left())
            probe["remote_path"] = upload.commit(left())
            committed = True
        return probe
    except Exception as exc:
        raise _HopError(hop, exc) from None  # the cause may carry secrets in locals; keep only the hop + error
    finally:
        if app_login is not None:  # the admin failed: the app session is not wanted
            app_login.abandon()
        if upload is not None and not committed:
            if staging is not None:
                with contextlib.suppress(Exception):
                    staging.result(left())  # let a staging in flight finish, so its file can be removed
            upload.discard()
        if tunnel is not None:
            tunnel.close()
        if app_login is not None:
            app_login.wait_closed()
        if client is not None:
            client.close()


def run_check(
    req: CheckRequest,
    upload: StagedUpload | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[CheckReport, str | None]:
    """Create the DB and app user and check the app user's connection, retrying until ``req.timeout_s``.

    With ``upload``, the remote .env is staged under a temporary name while the SQL runs and renamed to ``.env``
    only once the check passed (removed otherwise); the second value is its path. Raises ``CheckFailed`` with
    the diagnosis of the last failure.
    """
    start = clock()
    deadline = start + req.timeout_s
    adapter = adapter_of(req)
    ctx = adapter.tls_context(req.db)  # once per check: a verifying context loads the CA bundle
    attempt = 0
    while True:
        attempt += 1
        budget = max(1.0, min(ATTEMPT_CAP_S, deadline - clock()))
        try:
            probe = _attempt(req, budget, ctx, upload, preopen=attempt == 1, adapter=adapter)
        except _HopError as failure:
            diagnosis = diagnose(failure.hop, failure.error, req, adapter)
            elapsed = clock() - start
            if not diagnosis.retryable:
                raise CheckFailed(diagnosis, attempt, elapsed, timed_out=False) from None
            remaining = deadline - clock()
            if remaining <= 0.05:
                raise CheckFailed(diagnosis, attempt, elapsed, timed_out=True) from None
            sleep(min(_backoff(attempt), remaining))  # the last attempt starts at the deadline at the latest
            continue
        elapsed_ms = round((clock() - start) * 1000, 1)
        report = CheckReport(
            server_version=str(probe["server_version"]),
            current_user=str(probe["current_user"]),
            latency_ms=float(probe["latency_ms"]),  # type: ignore[arg-type]
            tls_version=str(probe["tls_version"]),
            tls_cipher=str(probe["tls_cipher"]),
            attempts=attempt,
            elapsed_ms=elapsed_ms,
            tls_fingerprint=str(probe.get("tls_fingerprint") or ""),
        )
        remote = probe.get("remote_path")
        return report, str(remote) if remote is not None else None
