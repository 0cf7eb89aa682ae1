"""The SSH side of the connection check: our own known-hosts file, the SSH session to the app VM, the tunnel to the
DB's private IP, and the staged ``.env`` upload over SFTP. Engine-neutral (``components/envcheck.py`` runs the check).

The SSH socket acknowledges at once (``TCP_QUICKACK``), so sshd's back-to-back small packets are not held by Nagle
waiting for a delayed ACK. The DB driver is handed one end of a ``socket.socketpair()``; a small pump thread copies
bytes between the other end and the SSH channel, so the driver gets a real socket (``ssl.wrap_socket`` works) without
any listening port on this machine that another local process could connect to.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

DEFAULT_SSH_KEYS = tuple(f"~/.ssh/{name}" for name in portable.SSH_KEY_NAMES)  # as shown in messages
KNOWN_HOSTS_NAME = ".dblab_known_hosts"
REMOTE_ENV_NAME = ".env"


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


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_paths: tuple[str, ...]
    known_hosts: Path

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


# --- SSH and the tunnel ---------------------------------------------------------------------------------


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
    """Copies bytes between one end of a socketpair and an SSH channel until either side closes.

    Two threads with blocking reads, one per direction, and no ``select`` on the channel: ``Channel.fileno()`` makes
    paramiko create a pipe that the transport thread writes to whenever data or EOF arrives, and ``Channel.close()``
    closes that pipe's descriptors before marking it closed (paramiko 5.1.0 ``pipe.py`` ``PosixPipe.close`` /
    ``set``; ``channel.py`` ``fileno`` and ``close``). When the DB hangs up while the pump closes the channel, the
    transport thread then writes to a closed (or already reused) descriptor: the ``OSError`` ends the whole SSH
    transport ("Socket exception: Bad file descriptor", transport.py ``run``) and every other session on it. Seen
    as ~1 check in 150 breaking against PostgreSQL on loopback; none in 600 with this design.
    """

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.outer, self.inner = socket.socketpair()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dblab-tunnel", daemon=True)
        self.thread.start()

    def _down(self) -> None:
        """DB → driver: channel to socketpair; at the DB's EOF the driver reads EOF too."""
        try:
            while True:
                data = self.channel.recv(65536)
                if not data:
                    break
                self.inner.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            with contextlib.suppress(OSError):
                self.inner.shutdown(socket.SHUT_WR)

    def _run(self) -> None:
        """Driver → DB: socketpair to channel; when the driver closes (or ``close()``), the channel is closed."""
        down = threading.Thread(target=self._down, name="dblab-tunnel-down", daemon=True)
        down.start()
        try:
            while not self._stop.is_set():
                data = self.inner.recv(65536)
                if not data:
                    break
                self.channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            self.channel.close()  # the down thread's recv() returns b"" once the channel is closed
            down.join(timeout=2)
            self.inner.close()

    def close(self) -> None:
        self._stop.set()
        self.outer.close()
        with contextlib.suppress(OSError):  # wakes the blocked recv() even while the driver still holds its end
            self.inner.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=2)


class Tunnel:
    """TCP connections from the VM to the DB, each one a local socket the DB driver can wrap in TLS."""

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


# --- the staged .env ---------------------------------------------------------------------------------------


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
