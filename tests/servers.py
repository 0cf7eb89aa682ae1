"""Real servers for the EnvFile tests: MariaDB (with or without TLS) and OpenSSH sshd, on 127.0.0.1 only.

Every server runs from its own temporary directory with its own configuration (never the system services or
their config files), listens on a loopback port picked for this run, and is stopped by whoever started it
(``stop()`` is idempotent and also registered with ``atexit`` as a last resort). Nothing here talks to any
address other than 127.0.0.1.

The TLS material (a throwaway CA and a server certificate) and the SSH keys (host key, user key) are generated
with ``cryptography`` for each run.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
ADMIN_USER = "admin"
# Quotes, #, $, spaces, backslash, = and a ${...} look-alike split so dotenv interpolation cannot bite.
ADMIN_PASSWORD = "Adm1n 'q\" #h $d \\b =e!"
OTHER_DB = "other_db"  # a database the app user must not be able to touch
SERVER_HOSTNAME = "db.lab.test"  # the DNS name in the generated server certificate (like the DB's FQDN)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Block until 127.0.0.1:port accepts a TCP connection; raise with the server's log tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}:\n{_tail(log)}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s:\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- key material -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path, dns_names: Sequence[str] = ("localhost", SERVER_HOSTNAME)) -> TlsFiles:
    """A throwaway CA and a server certificate for ``dns_names`` and 127.0.0.1, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dblab test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.server_key.chmod(0o600)
    return files


def make_ssh_key(path: Path, comment: str = "dblab-test") -> str:
    """Write an Ed25519 private key (OpenSSH format, 0600) to ``path``; return the public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


# --- processes --------------------------------------------------------------------------------------------


class _Managed:
    """A server process started in its own session so stop() can end it and anything it forked."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def _launch(self, argv: list[str], log: Path) -> subprocess.Popen:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                raise RuntimeError("already running")
            out = log.open("ab")
            try:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            finally:
                out.close()
            return self.proc

    def stop(self) -> None:
        with self._lock:
            proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class MariaDBServer(_Managed):
    """A private MariaDB instance: own datadir, socket and port; TLS when ``tls`` is given, none otherwise.

    At every start an init file (re)creates the admin user (all privileges, awkward password) and a second
    database with one row in it, so the server is ready for the provider as soon as it accepts connections.
    """

    def __init__(self, base: Path, tls: TlsFiles | None, port: int | None = None) -> None:
        super().__init__()
        self.base = base
        self.tls = tls
        self.port = port or free_port()
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.log = base / "mysqld.log"
        self.init_file = base / "init.sql"

    def prepare(self) -> MariaDBServer:
        """Create the data directory (mariadb-install-db) and the init file; no server runs yet."""
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.datadir.exists():
            installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
            if installer is None:
                raise RuntimeError("mariadb-install-db not found: run .ci/services.sh")
            subprocess.run(
                [
                    installer,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    f"--tmpdir={self.base}",  # bootstrap temp tables in our own dir: /tmp is shared by other runs
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=120,
            )
        pw = ADMIN_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
        self.init_file.write_text(
            f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{pw}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n"
            f"CREATE DATABASE IF NOT EXISTS `{OTHER_DB}`;\n"
            f"CREATE TABLE IF NOT EXISTS `{OTHER_DB}`.`secrets` (id INT PRIMARY KEY, v VARCHAR(20));\n"
            f"INSERT IGNORE INTO `{OTHER_DB}`.`secrets` VALUES (1, 'not yours');\n"
        )
        return self

    def start(self, wait: float = 30.0) -> MariaDBServer:
        argv = [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={LOOPBACK}",
            "--user=root",
            f"--pid-file={self.base / 'mysqld.pid'}",
            f"--log-error={self.log}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            f"--init-file={self.init_file}",
            f"--tmpdir={self.base}",
        ]
        if self.tls is not None:
            argv += [
                f"--ssl-ca={self.tls.ca_cert}",
                f"--ssl-cert={self.tls.server_cert}",
                f"--ssl-key={self.tls.server_key}",
            ]
        else:
            argv.append("--skip-ssl")
        proc = self._launch(argv, self.log)
        if wait:
            wait_for_port(self.port, wait, proc, self.log)
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Wait until the admin user can log in (the init file has run)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin_connect().close()
                return
            except pymysql.MySQLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def admin_connect(self, database: str | None = None) -> pymysql.Connection:
        return self.connect(ADMIN_USER, ADMIN_PASSWORD, database)

    def connect(self, user: str, password: str, database: str | None = None) -> pymysql.Connection:
        """A direct (no tunnel) connection to 127.0.0.1:port, with TLS when this server has it."""
        tls: dict | None = {"check_hostname": False, "verify_mode": False} if self.tls else None
        return pymysql.connect(
            host=LOOPBACK,
            port=self.port,
            user=user,
            password=password.encode(),
            database=database,
            ssl=tls,
            ssl_disabled=self.tls is None,
            connect_timeout=5,
            read_timeout=10,
            write_timeout=10,
            autocommit=True,
        )


class SshServer(_Managed):
    """OpenSSH's sshd with its own config: loopback only, key auth only, TCP forwarding and internal-sftp."""

    def __init__(
        self, base: Path, authorized_keys: Sequence[str], port: int | None = None, allow_tcp_forwarding: bool = True
    ) -> None:
        super().__init__()
        self.base = base
        self.port = port or free_port()
        self.authorized_keys = list(authorized_keys)
        self.allow_tcp_forwarding = allow_tcp_forwarding
        self.config = base / "sshd_config"
        self.log = base / "sshd.log"
        self.host_key = base / "ssh_host_ed25519_key"

    def prepare(self) -> SshServer:
        self.base.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        if not self.host_key.exists():
            make_ssh_key(self.host_key, "host")
        keys = self.base / "authorized_keys"
        keys.write_text("".join(k.strip() + "\n" for k in self.authorized_keys))
        keys.chmod(0o600)
        self.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {LOOPBACK}",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.base / 'sshd.pid'}",
                    f"AuthorizedKeysFile {keys}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    f"AllowTcpForwarding {'yes' if self.allow_tcp_forwarding else 'no'}",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        return self

    def start(self, wait: float = 15.0) -> SshServer:
        sshd = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path
        proc = self._launch([sshd, "-D", "-e", "-f", str(self.config)], self.log)
        if wait:
            wait_for_port(self.port, wait, proc, self.log)
        return self


def start_later(delay: float, start: Callable[[], object]) -> threading.Thread:
    """Run ``start()`` after ``delay`` seconds in a daemon thread (for the "server came up late" faults)."""

    def run() -> None:
        time.sleep(delay)
        start()

    thread = threading.Thread(target=run, name="start-later", daemon=True)
    thread.start()
    return thread


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never says a word: an sshd that hangs before its banner."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for c in self._held:
            c.close()
        self.sock.close()
