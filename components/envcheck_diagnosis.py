"""What a failed connection check means: the hop that failed, the cause, and the lab concept to look at.

Failures while sshd or the DB is still coming up (refused, timed out, no banner, lost handshake) are retryable;
failures a retry cannot fix (host key changed, key rejected, access denied, TLS missing or broken, missing
privileges) are not. Every message names the hop, what failed and the lab concept to look at (security list, admin
CIDR, key, credentials, TLS). Passwords never appear in any message: each one is built from fixed text plus
exception text passed through ``redact``. The DB hops' driver errors are the engine adapter's (``diagnose`` asks it).
"""

from __future__ import annotations

import errno
import shlex
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import engines
from components.envcheck_ssh import KNOWN_HOSTS_NAME, SshTarget, host_key_name, paramiko

HOP_SSH = "ssh"
HOP_FORWARD = "forward"
HOP_ADMIN = "db-admin"  # the admin session: creates the lab database and the app user
HOP_APP = "db-app"  # the app user's session: the check proper
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


def host_key_changed_message(ssh_hop: str, ssh: SshTarget, exc: Any) -> str:
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


def forward_concepts(req: Any) -> str:
    """What to check when the app VM cannot reach the DB: the security list, the DB's state and address, and the
    engine's own lab concept (``Engine.lab_concepts``: e.g. a DB VM's firewalld, a managed DB's private endpoint)."""
    db = req.db
    text = (
        f"The private subnet's security list must allow TCP {db.port} from the app (public) subnet CIDR, the DB "
        f"must be ACTIVE and listening on {db.port}, and dbHost must be its private IP"
    )
    name = getattr(req, "engine", "") or engines.DEFAULT
    engine = engines.ENGINES.get(name)
    if engine is not None and engine.lab_concepts:
        text += f". Lab concept ({engine.name}): {engine.lab_concepts}"
    return text


def diagnose(hop: str, exc: BaseException, req: Any, adapter: Any = None) -> Diagnosis:
    """Turn a failure at ``hop`` into one message naming the hop, the cause and the lab concept to check.

    SSH, forward and SFTP hops are the same for every engine; for the DB hops the engine's check ``adapter`` is
    asked first (``adapter.diagnose``: its driver's error codes), then the generic meaning applies."""
    ssh, db, acc = req.ssh, req.db, req.accounts
    detail = redact(f"{type(exc).__name__}: {exc}", acc.secrets)
    ssh_hop = f"SSH hop (this machine → app VM {ssh.describe()})"
    fwd_hop = f"forward hop (app VM → DB private IP {db.host}:{db.port})"
    ssh_concepts = (
        f"Check that the public subnet's security list allows TCP {ssh.port} from adminCidr (your public IP "
        "as /32, e.g. 203.0.113.7/32), that appHost is the VM's public IP, that the public route table sends "
        "0.0.0.0/0 to the internet gateway, and that the VM has finished booting"
    )
    fwd_concepts = forward_concepts(req)

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

    # DB hops: admin (create the database and the app user) or app (the check proper). The engine's adapter knows
    # its driver's errors; what it does not claim gets the generic meaning below.
    found = adapter.diagnose(hop, exc, req) if adapter is not None else None
    if found is not None:
        return found
    who = acc.admin_user if hop == HOP_ADMIN else acc.app_user
    db_hop = f"DB hop (login as '{who}' to {db.host}:{db.port} over the tunnel, TLS {db.ssl_mode})"
    if _is_tls_error(exc):
        return d(
            "tls",
            False,
            f"{db_hop}: the TLS handshake failed. TLS settings: the lab requires an encrypted session (TLS mode "
            f"{db.ssl_mode}); the DB must have TLS enabled, and a verifying mode needs the CA bundle of the server "
            f"certificate (and its name {db.hostname})",
        )
    if isinstance(exc, (OSError, EOFError)):
        return d("not-ready", True, f"{db_hop}: the DB dropped the connection (still starting?). {fwd_concepts}")
    return d("sql", False, f"{db_hop}: the DB refused a statement")
