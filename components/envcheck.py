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
3. **MySQL hop** — pymysql speaks to the DB through that channel with TLS required. The admin session creates
   the lab database and the least-privilege app user; a second session *as the app user* runs ``SELECT 1,
   CURRENT_USER()`` and creates, writes and drops a table. The server version comes from its login greeting,
   the TLS version and cipher from the client's TLS socket.
4. **SFTP** — the ``.env`` is staged on the VM under a temporary name while the SQL runs and renamed to
   ``.env`` only once the check passed (``StagedUpload``).

Round trips: each one costs the distance to the VM, so the check makes only those the protocols need. The SSH
socket acknowledges at once (``TCP_QUICKACK``), so sshd's back-to-back small packets are not held by Nagle
waiting for a delayed ACK; each session's SQL is one multi-statement batch; pymysql's ``SET NAMES`` after login
is skipped (the login packet names utf8mb4); one TLS context serves the whole check; the app user's forward and
TLS handshake run while the admin works (``_AppLogin``), and the ``.env`` upload overlaps the SQL.

pymysql is handed one end of a ``socket.socketpair()``; a small pump thread copies bytes between the other end
and the SSH channel. That gives pymysql a real socket (so ``ssl.wrap_socket`` works) without opening any
listening port on this machine that another local process could connect to.

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
to look at (security list, admin CIDR, key, credentials, TLS). Passwords never appear in any message: each one
is built from fixed text plus exception text passed through ``redact``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import posixpath
import random
import re
import select
import shlex
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql
import pymysql.charset
import pymysql.connections
import pymysql.constants

from components import portable

if TYPE_CHECKING:
    import paramiko
else:

    class _Paramiko:
        """``paramiko``, imported on first use. Every offline plan imports this module (EnvFile validates its inputs
        with it) but never opens SSH; paramiko with the invoke it pulls in is ~8% of a cold `labctl plan` (issue 12).
        """

        def __getattr__(self, name: str) -> Any:
            import paramiko as real

            globals()["paramiko"] = real
            return getattr(real, name)

    paramiko = _Paramiko()

DOTENV_KEYS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_HOSTNAME", "DB_SSL_MODE")
SSL_MODES = ("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
DEFAULT_SSH_KEYS = tuple(f"~/.ssh/{name}" for name in portable.SSH_KEY_NAMES)  # as shown in messages
KNOWN_HOSTS_NAME = ".dblab_known_hosts"
REMOTE_ENV_NAME = ".env"
# What the app needs inside its own database, and nothing outside it (no ALL, no GRANT OPTION, no FILE...).
APP_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "INDEX",
    "ALTER",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "REFERENCES",
)
# MySQL/MariaDB user names are at most 32 characters; database names at most 64. We accept a safe subset only,
# which is what makes the backtick/quote interpolation in app_user_statements safe.
USER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# python-dotenv (and docker compose, and most others) expand ${NAME} even inside quotes, with no escape.
DOTENV_INTERPOLATION_RE = re.compile(r"\$\{[^}]*\}")

ATTEMPT_CAP_S = 20.0  # no single attempt (connect + SQL + SFTP) may take longer than this
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0

MYSQL_ACCESS_DENIED = 1045
MYSQL_DB_ACCESS_DENIED = 1044
MYSQL_TABLE_ACCESS_DENIED = 1142
MYSQL_NEED_PRIVILEGE = 1227
MYSQL_HOST_NOT_ALLOWED = 1130
MYSQL_TOO_MANY_CONNECTIONS = 1040
CR_CONN_HOST_ERROR = 2003
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
CR_SSL_CONNECTION_ERROR = 2026


# --- .env rendering ---------------------------------------------------------------------------------------


def quote_dotenv_value(value: str) -> str:
    """Single-quote ``value`` for a .env file: backslash and single quote are escaped, nothing else is special.

    python-dotenv decodes exactly ``\\\\`` and ``\\'`` inside single quotes, so every other character (``#``,
    ``$``, ``"``, ``=``, spaces, newlines) survives as itself. ``${...}`` cannot be escaped in any dotenv dialect
    that interpolates, so such values are refused (see ``dotenv_problem``).
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dotenv_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be written under ``key`` (the value itself is never quoted back), or None."""
    if DOTENV_INTERPOLATION_RE.search(value):
        return (
            f"{key} contains '${{…}}', which dotenv parsers expand as a variable even inside quotes; "
            "use a value without '${' (for generated passwords, leave '$' or '{' out of the special characters)"
        )
    if "\x00" in value:
        return f"{key} contains a NUL character, which no .env file can carry"
    return None


def render_dotenv(values: Mapping[str, str]) -> str:
    """The .env text for ``values`` (insertion order kept), one ``KEY='value'`` line each, with a header."""
    lines = ["# Written by oci-dblab (EnvFile). Holds the app user's password: keep it mode 0600, never commit it."]
    for key, value in values.items():
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise ValueError(f"invalid .env key {key!r}")
        problem = dotenv_problem(key, value)
        if problem:
            raise ValueError(problem)
        lines.append(f"{key}={quote_dotenv_value(value)}")
    return "\n".join(lines) + "\n"


def env_values(
    *,
    db_host: str,
    db_port: int,
    db_name: str,
    app_user: str,
    app_password: str,
    db_hostname: str,
    ssl_mode: str,
) -> dict[str, str]:
    """The seven DB_* settings the app reads, in a stable order. DB_USER is the app user, never the admin."""
    return {
        "DB_HOST": db_host,
        "DB_PORT": str(db_port),
        "DB_NAME": db_name,
        "DB_USER": app_user,
        "DB_PASSWORD": app_password,
        "DB_HOSTNAME": db_hostname,
        "DB_SSL_MODE": ssl_mode,
    }


# --- files --------------------------------------------------------------------------------------------------


def write_private_file(path: Path, content: str) -> Path:
    """Atomically replace ``path`` with ``content``, private to the current user from the first byte.

    Thin wrapper over ``portable.write_private_file`` (0600 on POSIX, user-only ACL on Windows, refuses links).
    """
    return portable.write_private_file(path, content)


def remove_file(path: Path) -> bool:
    """Delete the file at ``path`` if it exists, never following a link; True when something was removed."""
    return portable.remove_file_no_follow(path)


def known_hosts_path(local_env_path: str | os.PathLike[str]) -> Path:
    """The project-local known-hosts file: next to the local .env (see the module docstring)."""
    return Path(local_env_path).expanduser().resolve().parent / KNOWN_HOSTS_NAME


def resolve_key_paths(configured: str) -> list[str]:
    """The private key file(s) to offer: ``configured`` if set, else whichever default keys exist."""
    if configured:
        return [str(portable.config_path(configured))]
    return [str(p) for p in portable.existing_ssh_keys()]


def host_key_name(host: str, port: int) -> str:
    """The known_hosts spelling of host:port (OpenSSH and paramiko agree on it)."""
    return host if port == 22 else f"[{host}]:{port}"


def forget_host_key(known_hosts: Path, host: str, port: int) -> bool:
    """Drop ``host:port`` from our known-hosts file; True when an entry was removed."""
    if not known_hosts.is_file():
        return False
    name = host_key_name(host, port)
    lines = portable.read_text_no_follow(known_hosts).splitlines(keepends=True)
    kept = [ln for ln in lines if name not in ln.split(" ", 1)[0].split(",")]
    if len(kept) == len(lines):
        return False
    write_private_file(known_hosts, "".join(kept))
    return True


# --- the request and the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_paths: tuple[str, ...]
    known_hosts: Path

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class DbTarget:
    host: str  # private IP, as seen from the VM
    port: int
    hostname: str  # FQDN, used for TLS identity checks (VERIFY_IDENTITY)
    ssl_mode: str = "REQUIRED"
    ssl_ca: str = ""  # CA bundle path for VERIFY_*; "" means the system trust store


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

    def as_output(self) -> dict[str, object]:
        """The resource's ``check`` output (camelCase, no secrets)."""
        return {
            "ok": True,
            "serverVersion": self.server_version,
            "currentUser": self.current_user,
            "latencyMs": self.latency_ms,
            "checkedAt": self.checked_at,
            "tls": {"version": self.tls_version, "cipher": self.tls_cipher},
            "attempts": self.attempts,
            "elapsedMs": self.elapsed_ms,
        }


# --- diagnosis ----------------------------------------------------------------------------------------------

HOP_SSH = "ssh"
HOP_FORWARD = "forward"
HOP_ADMIN = "mysql-admin"
HOP_APP = "mysql-app"
HOP_SFTP = "sftp"


@dataclass(frozen=True)
class Diagnosis:
    hop: str
    cause: str  # short machine-readable cause: refused, timeout, auth, host-key, access-denied, tls, ...
    retryable: bool
    message: str


class CheckFailed(Exception):
    """The check failed; ``str()`` is the one clear message for the user (no secrets)."""

    def __init__(self, diagnosis: Diagnosis, attempts: int, elapsed_s: float, timed_out: bool) -> None:
        self.diagnosis = diagnosis
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        self.timed_out = timed_out
        if timed_out:
            suffix = f" (gave up after {attempts} attempts in {elapsed_s:.1f} s; checkTimeoutSeconds bounds this)"
        else:
            suffix = f" (attempt {attempts}, {elapsed_s:.1f} s; not retried: waiting cannot fix this)"
        super().__init__(diagnosis.message + suffix)


class TlsNotNegotiated(Exception):
    """The session is up but not encrypted (a server that ignored the TLS request)."""


class _HopError(Exception):
    def __init__(self, hop: str, error: BaseException) -> None:
        super().__init__(hop)
        self.hop = hop
        self.error = error


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret (and its repr-escaped form) replaced by ***."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {s, repr(s)[1:-1], s.replace("'", "\\'")}:
            text = text.replace(form, "***")
    return text


def _mysql_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _is_tls_error(exc: BaseException) -> bool:
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError, TlsNotNegotiated)):
        return True
    original = getattr(exc, "original_exception", None)
    return isinstance(original, (ssl.SSLError, ssl.CertificateError))


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):  # socket.timeout is an alias since 3.10
        return True
    text = str(exc).lower()
    return "timed out" in text or "timeout" in text


def host_key_changed_message(ssh_hop: str, ssh: SshTarget, exc: paramiko.BadHostKeyException) -> str:
    """What a changed SSH host key means for this lab, and the exact command that re-trusts the VM.

    The usual cause is a VM that got a new boot volume (re-imaged from a newer image, or destroyed and created
    again at the same public IP): its sshd generated new host keys on first boot. The same message would appear
    if something else answered on that address, so it says how to compare fingerprints before re-trusting.
    """
    name = host_key_name(ssh.host, ssh.port)
    got = getattr(exc.key, "fingerprint", "?")
    recorded = getattr(exc.expected_key, "fingerprint", "?")
    command = f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(str(ssh.known_hosts))}"
    return (
        f"{ssh_hop}: the VM's SSH host key changed. {ssh.known_hosts} (this lab's own known-hosts file, "
        f"{KNOWN_HOSTS_NAME}, next to the local .env) recorded {recorded} for {name} on first use; the VM now "
        f"presents {got} ({exc.key.get_name()}). This happens when the VM got a new boot volume (re-imaged from a "
        "newer image, or destroyed and created again at the same public IP): its new sshd made new host keys. "
        "Nothing was changed. If you know the VM was rebuilt (compare the fingerprint with the one cloud-init "
        "prints in the VM's console history, or `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the VM), forget "
        f"the old key with: {command} — then run `pulumi up` again (it trusts the new key on first use). If the "
        "VM was not rebuilt, something else answers on that IP: do not continue"
    )


def diagnose(hop: str, exc: BaseException, req: CheckRequest) -> Diagnosis:
    """Turn a failure at ``hop`` into one message naming the hop, the cause and the lab concept to check."""
    ssh, db, acc = req.ssh, req.db, req.accounts
    detail = redact(f"{type(exc).__name__}: {exc}", acc.secrets)
    ssh_hop = f"SSH hop (this machine → app VM {ssh.describe()})"
    fwd_hop = f"forward hop (app VM → DB private IP {db.host}:{db.port})"
    ssh_concepts = (
        f"Check that the public subnet's security list allows TCP {ssh.port} from adminCidr (your public IP "
        "as /32, e.g. 203.0.113.7/32), that appHost is the VM's public IP, that the public route table sends "
        "0.0.0.0/0 to the internet gateway, and that the VM has finished booting"
    )
    fwd_concepts = (
        f"The private subnet's security list must allow TCP {db.port} from the app (public) subnet CIDR, the DB "
        f"must be ACTIVE and listening on {db.port}, and dbHost must be its private IP"
    )

    def d(cause: str, retryable: bool, message: str) -> Diagnosis:
        return Diagnosis(hop, cause, retryable, f"{message} [{detail}]")

    if hop == HOP_SSH:
        if isinstance(exc, paramiko.BadHostKeyException):
            return Diagnosis(hop, "host-key", False, host_key_changed_message(ssh_hop, ssh, exc))
        if isinstance(exc, paramiko.PasswordRequiredException):
            return d(
                "key",
                False,
                f"{ssh_hop}: the private key in sshPrivateKeyPath is passphrase-protected; load it into ssh-agent "
                "(ssh-add) or point sshPrivateKeyPath at an unencrypted lab key",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            keys = ", ".join(ssh.key_paths) or "(no key file found)"
            return d(
                "auth",
                False,
                f"{ssh_hop}: the VM rejected the key ({keys}). sshPrivateKeyPath must be the private half of the "
                f"sshPublicKey the VM was created with, and sshUser must be the image's user ('{ssh.user}')",
            )
        if isinstance(exc, socket.gaierror):
            return d("dns", False, f"{ssh_hop}: appHost '{ssh.host}' does not resolve; use the VM's public IP")
        if isinstance(exc, (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError)):
            return d("refused", True, f"{ssh_hop}: connection refused (nothing listening yet?). {ssh_concepts}")
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return d("unreachable", True, f"{ssh_hop}: host unreachable. {ssh_concepts}")
        if _is_timeout(exc) or "banner" in str(exc).lower():
            return d("timeout", True, f"{ssh_hop}: timed out (packets dropped or sshd not ready). {ssh_concepts}")
        return d("ssh", True, f"{ssh_hop}: SSH failed. {ssh_concepts}")

    if hop == HOP_FORWARD:
        prohibited = paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if isinstance(exc, paramiko.ChannelException) and exc.code == prohibited:
            return d(
                "forward-prohibited",
                False,
                f"{fwd_hop}: sshd on the VM refuses TCP forwarding; set AllowTcpForwarding yes in its sshd_config",
            )
        if isinstance(exc, paramiko.ChannelException):
            cause = "timeout" if _is_timeout(exc) else "refused"
            return d(cause, True, f"{fwd_hop}: the VM could not reach the DB ({exc.text}). {fwd_concepts}")
        if _is_timeout(exc):
            return d("timeout", True, f"{fwd_hop}: timed out (packets dropped?). {fwd_concepts}")
        return d("forward", True, f"{fwd_hop}: the SSH session broke while opening the tunnel. {fwd_concepts}")

    if hop == HOP_SFTP:
        return d(
            "sftp",
            False,
            f"SFTP to {ssh.describe()}: could not write the .env into the app directory; check that the remote "
            f"directory is writable by '{ssh.user}' (cloud-init creates it on first boot)",
        )

    # MySQL hops: admin (create DB + user) or app (the check proper)
    who = acc.admin_user if hop == HOP_ADMIN else acc.app_user
    db_hop = f"MySQL hop (login as '{who}' to {db.host}:{db.port} over the tunnel, TLS {db.ssl_mode})"
    code = _mysql_code(exc)
    if _is_tls_error(exc) or code == CR_SSL_CONNECTION_ERROR:
        why = (
            "the server does not offer TLS"
            if isinstance(exc, TlsNotNegotiated) or code == CR_SSL_CONNECTION_ERROR
            else "the TLS handshake failed"
        )
        return d(
            "tls",
            False,
            f"{db_hop}: {why}. TLS settings: the lab requires an encrypted session (sslMode {db.ssl_mode}); the DB "
            "must have TLS enabled, and for VERIFY_CA/VERIFY_IDENTITY the CA bundle must match the server "
            f"certificate and, for VERIFY_IDENTITY, its name must be {db.hostname}",
        )
    if code == MYSQL_ACCESS_DENIED:
        if hop == HOP_ADMIN:
            what = "check dbAdminUser and dbPassword (the DB system's admin credentials)"
        else:
            what = "the app user's password was just set by this provider; was it changed by someone else meanwhile?"
        return d("access-denied", False, f"{db_hop}: access denied — credentials: {what}")
    if code == MYSQL_HOST_NOT_ALLOWED:
        return d("host-not-allowed", False, f"{db_hop}: '{who}' may not log in from the app VM's address")
    if code in (MYSQL_DB_ACCESS_DENIED, MYSQL_TABLE_ACCESS_DENIED, MYSQL_NEED_PRIVILEGE):
        fix = (
            "the admin user needs CREATE USER and GRANT OPTION to create the app user"
            if hop == HOP_ADMIN
            else f"the app user must be able to create and drop tables in '{acc.db_name}'"
        )
        return d("privileges", False, f"{db_hop}: missing privilege — {fix}")
    if code in (CR_CONN_HOST_ERROR, CR_SERVER_GONE, CR_SERVER_LOST, MYSQL_TOO_MANY_CONNECTIONS) or isinstance(
        exc, (OSError, EOFError)
    ):
        return d("not-ready", True, f"{db_hop}: the DB dropped the connection (still starting?). {fwd_concepts}")
    return d("sql", False, f"{db_hop}: the DB refused a statement")


# --- SSH, tunnel, MySQL -------------------------------------------------------------------------------------


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere the plain socket is used


class _QuickAckSocket(socket.socket):
    """A TCP socket that asks the kernel to acknowledge every segment at once (TCP_QUICKACK, re-armed after
    each read because Linux clears it).

    Why: sshd does not set TCP_NODELAY on a session without a terminal, so when it sends two small packets in a
    row (the channel-open confirmation and then the DB's greeting, or a global request and then the
    confirmation) Nagle's algorithm holds the second until the first is acknowledged, and a delayed ACK from
    this side arrives only after its timer (~40 ms on Linux). Acknowledging at once removes that stall.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
        return data


def _ssh_socket(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # our small SSH packets go out at once
    if _QUICKACK is None:
        return sock
    quick = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    with contextlib.suppress(OSError):
        quick.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    return quick


def open_ssh(target: SshTarget, timeout: float) -> paramiko.SSHClient:
    """An authenticated SSH session to ``target``, host key checked against our own known-hosts file."""
    sock = _ssh_socket(target.host, target.port, timeout)
    client = paramiko.SSHClient()
    try:
        if not target.known_hosts.exists():
            write_private_file(target.known_hosts, "")
        client.load_host_keys(str(target.known_hosts))
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        if not target.key_paths and not os.environ.get("SSH_AUTH_SOCK"):
            raise paramiko.AuthenticationException("no private key file and no ssh-agent")
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            key_filename=list(target.key_paths) or None,
            look_for_keys=False,
            allow_agent=bool(os.environ.get("SSH_AUTH_SOCK")),
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
        )
    except paramiko.SSHException as exc:
        client.close()
        sock.close()
        if "No existing session" in str(exc):  # paramiko's way of saying negotiation outlived `timeout`
            raise TimeoutError(f"SSH negotiation did not finish within {timeout:.1f} s") from None
        raise
    except BaseException:
        client.close()
        sock.close()
        raise
    return client


class _Pump:
    """Copies bytes between one end of a socketpair and an SSH channel until either side closes."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.outer, self.inner = socket.socketpair()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dblab-tunnel", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.inner, self.channel], [], [], 0.2)
                if self.inner in ready:
                    data = self.inner.recv(65536)
                    if not data:
                        break
                    self.channel.sendall(data)
                if self.channel in ready:
                    data = self.channel.recv(65536)
                    if not data:
                        break
                    self.inner.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            self.channel.close()
            self.inner.close()

    def close(self) -> None:
        self._stop.set()
        self.outer.close()  # the pump sees EOF at once instead of waiting out its select() timeout
        self.thread.join(timeout=2)


class Tunnel:
    """TCP connections from the VM to the DB, each one a local socket that pymysql can wrap in TLS."""

    def __init__(self, client: paramiko.SSHClient) -> None:
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("SSH session is not active")
        self.transport = transport
        self._pumps: list[_Pump] = []

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        channel = self.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
        pump = _Pump(channel)
        self._pumps.append(pump)
        return pump.outer

    def close(self) -> None:
        for pump in self._pumps:
            pump.close()
        self._pumps.clear()


def tls_context(db: DbTarget) -> ssl.SSLContext:
    """REQUIRED: encrypted, certificate not verified. VERIFY_CA: chain checked. VERIFY_IDENTITY: chain + name."""
    if db.ssl_mode == "REQUIRED":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=db.ssl_ca or None)
        ctx.check_hostname = db.ssl_mode == "VERIFY_IDENTITY"
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _Session(pymysql.connections.Connection):
    """pymysql's Connection, minus the ``SET NAMES`` round trip it makes after every login.

    The login packet already names utf8mb4, and the server sets character_set_client, _connection and _results
    from it (MySQL manual, "Connection Character Sets and Collations": the character set a client names at
    connect time sets all three; MariaDB documents the same for its handshake). pymysql repeats it as a query
    only to pin a *collation*, which none of the check's statements depends on.
    """

    _login = False

    def connect(self, sock: socket.socket | None = None) -> None:
        self._login = True
        try:
            super().connect(sock)
        finally:
            self._login = False

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        if not self._login:
            super().set_character_set(charset, collation)
            return
        self.encoding = pymysql.charset.charset_by_name(charset).encoding
        self.charset, self.collation = charset, collation

    def tls(self) -> tuple[str, str]:
        """(TLS version, cipher) of this session, read from the client's own TLS socket (no query)."""
        sock = self._sock
        if not isinstance(sock, ssl.SSLSocket):
            return "", ""
        cipher = sock.cipher()
        return sock.version() or "", cipher[0] if cipher else ""


def _session(
    db: DbTarget, user: str, password: str, database: str | None, timeout: float, ctx: ssl.SSLContext
) -> _Session:
    return _Session(
        host=db.hostname or db.host,  # only used as the TLS server name (VERIFY_IDENTITY)
        port=db.port,
        user=user,
        password=password.encode("utf-8"),
        database=database,
        ssl=ctx,
        connect_timeout=max(1, int(timeout)),
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
        defer_connect=True,
        charset="utf8mb4",
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )


def _login(conn: _Session, sock: socket.socket) -> None:
    conn.connect(sock=sock)
    try:
        if not conn.tls()[1]:
            raise TlsNotNegotiated("session is not encrypted")
    except BaseException:
        conn.close()
        raise


def mysql_over(
    sock: socket.socket,
    db: DbTarget,
    user: str,
    password: str,
    database: str | None,
    timeout: float,
    ctx: ssl.SSLContext | None = None,
) -> pymysql.Connection:
    """Log in over an existing socket with TLS required; raise TlsNotNegotiated for a plaintext session.

    ``ctx`` is the check's one TLS context (``tls_context(db)`` when not given). Multi-statements are on: the
    check sends each batch of its own SQL (validated names, bound parameters) in one round trip.
    """
    conn = _session(db, user, password, database, timeout, ctx or tls_context(db))
    _login(conn, sock)
    return conn


def session_tls(conn: pymysql.Connection) -> tuple[str, str]:
    """(TLS version, cipher) of this session; cipher is '' when unencrypted. No round trip for our sessions."""
    if isinstance(conn, _Session):
        return conn.tls()
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        status = {str(k): str(v) for k, v in cur.fetchall()}
    return status.get("Ssl_version", ""), status.get("Ssl_cipher", "")


def _account(user: str) -> str:
    if not USER_NAME_RE.match(user):
        raise ValueError("invalid MySQL user name")
    return f"'{user}'@'%%'"  # '%' (any host) doubled: statements are pymysql format strings


def _database(name: str) -> str:
    if not DB_NAME_RE.match(name):
        raise ValueError("invalid database name")
    return f"`{name}`"


def app_user_statements(acc: Accounts) -> list[tuple[str, tuple[str, ...]]]:
    """The admin's SQL for the lab database and the app user, as (statement, params) pairs.

    Idempotent: re-running converges (password reset, grants reset to exactly APP_PRIVILEGES on the lab
    database, TLS required for the account). Names are validated and quoted; the password is a bound parameter.
    Each statement is a pymysql format string (a literal percent sign is written ``%%``).
    """
    user, database = _account(acc.app_user), _database(acc.db_name)
    privileges = ", ".join(APP_PRIVILEGES)
    statements: list[tuple[str, tuple[str, ...]]] = []
    if acc.previous_app_user and acc.previous_app_user not in (acc.app_user, acc.admin_user):
        statements.append((f"DROP USER IF EXISTS {_account(acc.previous_app_user)}", ()))
    statements += [
        (f"CREATE DATABASE IF NOT EXISTS {database}", ()),
        (f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY %s REQUIRE SSL", (acc.app_password,)),
        (f"ALTER USER {user} IDENTIFIED BY %s REQUIRE SSL", (acc.app_password,)),
        (f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {user}", ()),
        (f"GRANT {privileges} ON {database}.* TO {user}", ()),
    ]
    return statements


def run_batch(conn: pymysql.Connection, statements: list[tuple[str, tuple[str, ...]]]) -> list[tuple]:
    """Send ``statements`` (pymysql format strings with their parameters) as one multi-statement query: one
    round trip. The server stops at the first failing statement; its error is raised here. Returns the rows of
    every statement, in order (empty for statements without a result set).

    Only for SQL this module builds itself: names validated by ``_account``/``_database``, values bound (and
    escaped by pymysql for this connection's SQL mode), so no input can add a statement.
    """
    with conn.cursor() as cur:
        query = ";\n".join(cur.mogrify(statement, params) for statement, params in statements)
        cur.execute(query)  # no args: the text is already formatted, a literal '%' stays as it is
        results = [tuple(cur.fetchall())]
        while cur.nextset():
            results.append(tuple(cur.fetchall()))
    return results


def ensure_app_user(conn: pymysql.Connection, acc: Accounts) -> None:
    """Run ``app_user_statements`` on an admin connection, all in one round trip."""
    run_batch(conn, app_user_statements(acc))


def server_version(conn: pymysql.Connection) -> str:
    """The version from the login greeting, as ``SELECT VERSION()`` would return it: MariaDB before 11 prefixes
    its greeting with ``5.5.5-`` for old replication clients (MariaDB Connector/C strips it the same way)."""
    version = str(conn.get_server_info())
    if version.startswith("5.5.5-") and "MariaDB" in version:
        return version[len("5.5.5-") :]
    return version


def probe_app(conn: pymysql.Connection, db_name: str) -> dict[str, object]:
    """As the app user, in two round trips: ``SELECT 1, CURRENT_USER()`` (timed: the latency) and a table
    create/insert/drop. The server version comes from the login greeting, the TLS details from the socket."""
    table = f"{_database(db_name)}.`_dblab_check_{uuid.uuid4().hex[:12]}`"
    with conn.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute("SELECT 1, CURRENT_USER()")
        row = cur.fetchone()
        latency_ms = (time.perf_counter() - t0) * 1000
    if not row or row[0] != 1:
        raise pymysql.err.InternalError("SELECT 1 did not return 1")
    ddl: list[tuple[str, tuple[str, ...]]] = [
        (f"CREATE TABLE {table} (id INT PRIMARY KEY, note VARCHAR(32))", ()),
        (f"INSERT INTO {table} VALUES (1, 'dblab check')", ()),
        (f"DROP TABLE {table}", ()),
    ]
    try:
        run_batch(conn, ddl)
    except pymysql.MySQLError:
        with contextlib.suppress(pymysql.MySQLError), conn.cursor() as cur:  # the batch stopped before its DROP
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        raise
    tls_version, tls_cipher = session_tls(conn)
    return {
        "server_version": server_version(conn),
        "current_user": str(row[1]),
        "latency_ms": round(latency_ms, 2),
        "tls_version": tls_version,
        "tls_cipher": tls_cipher,
    }


def _sftp_makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    parts = [p for p in directory.split("/") if p]
    path = "/" if directory.startswith("/") else ""
    for part in parts:
        path = posixpath.join(path, part) if path else part
        try:
            sftp.stat(path)
        except FileNotFoundError:
            sftp.mkdir(path, mode=0o700)


def remote_env_path(remote_dir: str) -> str:
    """Where the .env goes on the VM. A leading ``~/`` means the SSH user's home (SFTP's starting directory)."""
    d = remote_dir.strip()
    if d in ("~", "~/"):
        d = ""
    elif d.startswith("~/"):
        d = d[2:]
    return posixpath.join(d, REMOTE_ENV_NAME)


class StagedUpload:
    """The remote ``.env``, written in two steps so that its final name appears only after a passing check.

    ``stage`` runs while the SQL runs (its own SFTP channel on the same SSH session): the content goes to a
    temporary name in ``remote_dir``, mode 0600 before any byte. ``commit`` renames it over ``.env`` (one round
    trip); ``discard`` removes it when the check failed. The temporary file is the only trace a failed check
    can leave, and only if the VM became unreachable between the two steps.
    """

    def __init__(self, remote_dir: str, content: str) -> None:
        self.final = remote_env_path(remote_dir)
        self.content = content
        self.tmp = ""
        self._sftp: paramiko.SFTPClient | None = None

    def stage(self, client: paramiko.SSHClient, timeout: float) -> None:
        sftp = self._sftp = client.open_sftp()
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(timeout)
        tmp = f"{self.final}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            f = sftp.open(tmp, "wx")
        except FileNotFoundError:  # the app directory does not exist yet: create it, then try once more
            _sftp_makedirs(sftp, posixpath.dirname(self.final))
            f = sftp.open(tmp, "wx")
        self.tmp = tmp
        with f:
            f.chmod(0o600)
            f.write(self.content.encode("utf-8"))

    def commit(self, timeout: float) -> str:
        sftp = self._sftp
        if sftp is None or not self.tmp:
            raise paramiko.SSHException("the .env was not staged")
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(timeout)
        try:
            sftp.posix_rename(self.tmp, self.final)
        except OSError:  # server without the posix-rename extension
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(self.final)
            sftp.rename(self.tmp, self.final)
        self.tmp = ""
        self.close()
        return self.final

    def discard(self) -> None:
        """Best effort: remove the temporary file. Never raises."""
        sftp, tmp = self._sftp, self.tmp
        self.tmp = ""
        if sftp is not None and tmp:
            with contextlib.suppress(Exception):
                sftp.remove(tmp)
        self.close()

    def close(self) -> None:
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()


def remove_remote_env(target: SshTarget, remote_path: str, timeout: float = 10.0) -> bool:
    """Best effort: delete the .env on the VM. Never raises (an unreachable VM must not block a destroy)."""
    try:
        client = open_ssh(target, timeout)
    except Exception:  # noqa: BLE001 - by design: any failure means "could not remove"
        return False
    try:
        sftp = client.open_sftp()
        try:
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(timeout)
            sftp.remove(remote_path)
            return True
        finally:
            sftp.close()
    except Exception:  # noqa: BLE001
        return False
    finally:
        client.close()


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
    ``wrap_socket`` waits for the gate (the admin's batch is done) before pymysql sends the login packet."""

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

    def __init__(self, tunnel: Tunnel, req: CheckRequest, ctx: ssl.SSLContext, left: Callable[[], float]) -> None:
        self.gated = _GatedContext(ctx)
        self.hop = HOP_FORWARD
        self.conn: pymysql.Connection | None = None
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
            conn = _session(req.db, acc.app_user, acc.app_password, acc.db_name, left(), self.gated.ctx)
            conn.ctx = self.gated  # type: ignore[assignment] - pymysql only calls ctx.wrap_socket
            _login(conn, sock)
            self.conn = conn
        except BaseException as exc:  # noqa: BLE001 - handed to finish()
            self.error = exc

    def finish(self, timeout: float) -> pymysql.Connection:
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
    req: CheckRequest, timeout: float, ctx: ssl.SSLContext, upload: StagedUpload | None, preopen: bool = True
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
            app_login = _AppLogin(tunnel, req, ctx, left)  # forward + TLS for the app user while the admin works
        sock = tunnel.connect(req.db.host, req.db.port, left())
        hop = HOP_ADMIN
        admin = mysql_over(sock, req.db, acc.admin_user, acc.admin_password, None, left(), ctx)
        try:
            ensure_app_user(admin, acc)
        finally:
            admin.close()
        app: pymysql.Connection | None = None
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
            app = mysql_over(sock, req.db, acc.app_user, acc.app_password, acc.db_name, left(), ctx)
        hop = HOP_APP
        try:
            probe = probe_app(app, acc.db_name)
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
    ctx = tls_context(req.db)  # once per check: a VERIFY_* context loads the CA bundle
    attempt = 0
    while True:
        attempt += 1
        budget = max(1.0, min(ATTEMPT_CAP_S, deadline - clock()))
        try:
            probe = _attempt(req, budget, ctx, upload, preopen=attempt == 1)
        except _HopError as failure:
            diagnosis = diagnose(failure.hop, failure.error, req)
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
        )
        remote = probe.get("remote_path")
        return report, str(remote) if remote is not None else None
