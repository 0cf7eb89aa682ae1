"""The servers of the local lab: OpenSSH's sshd (the app VM), MariaDB and PostgreSQL with TLS (the DB engines).

Each runs from its own folder of the run directory with its own configuration (never the system services or their
config files), optionally inside a network namespace (``ip netns exec``, which keeps the process id), bound to one
address. Processes start in their own session, so ``stop()`` (or ``kill_recorded`` after a crash) ends them and
anything they forked. Key material (a throwaway CA and server certificate, SSH keys) is generated per run with
``cryptography``. The tests' loopback servers (``tests/servers.py``) are built on these same classes.

The MySQL engines are played by MariaDB (Debian's ``mariadb-server``): same protocol, same ``mysql`` clients, TLS
with a generated certificate for the DB's FQDN and private IP. The SSH login user is the user running the lab
(root: network namespaces need it); it stands in for the image's ``opc`` user, and the VM's app folder
``/home/opc/app`` is ``<run>/vm/home/opc/app``.

The PostgreSQL engines are played by Debian's ``postgresql`` (server binaries in ``/usr/lib/postgresql/<major>/bin``).
postgres refuses to run as root, so as root it runs as the system user ``dblab-pg`` (made by ``.ci/services.sh``)
from a private directory of its own under the system temp dir (the run directory may sit below folders that user
cannot enter); never the system cluster.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path
# A throwaway lab database needs no durability: a small redo log and no fsyncs make mariadb-install-db and the
# first start several times faster on a busy machine.
FAST_INNODB = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-flush-method=nosync",
    "--skip-innodb-doublewrite",
    "--innodb-flush-log-at-trx-commit=0",
)


class ServerError(RuntimeError):
    """A server did not start; the message ends with the tail of its log."""


def tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- key material -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _common_name(name: str) -> str:
    return name if len(name) <= 64 else name.split(".", 1)[0][:64]


def make_tls_files(directory: Path, dns_names: Sequence[str], ip_addresses: Sequence[str] = ()) -> TlsFiles:
    """A throwaway CA and a server certificate for ``dns_names`` and ``ip_addresses``, as PEM files (key 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dblab throwaway CA")])
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
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        # the CN is limited to 64 characters (RFC 5280 ub-common-name); the names that count are the SANs
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(dns_names[0]))]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.touch(mode=0o600)
    files.server_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def make_ssh_key(path: Path, comment: str) -> str:
    """Write an Ed25519 private key (OpenSSH format, 0600) to ``path`` and ``path.pub``; return the public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


# --- processes --------------------------------------------------------------------------------------------


class Managed:
    """A server process in its own session (inside ``netns`` when given) so ``stop()`` ends it and its children."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def _launch(self, argv: list[str], log: Path) -> subprocess.Popen:
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                raise ServerError("already running")
            with log.open("ab") as out:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            return self.proc

    def detach(self) -> None:
        """Leave the process running after this interpreter exits (``labctl local up``); its pid is recorded."""
        atexit.unregister(self.stop)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        with self._lock:
            proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_group(proc.pid)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with _no_such_process():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _no_such_process:  # noqa: N801 (a tiny context manager)
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type | None, *_: object) -> bool:
        return typ is not None and issubclass(typ, ProcessLookupError)


def stop_group(pid: int) -> None:
    with _no_such_process():
        os.killpg(pid, signal.SIGTERM)


def kill_recorded(pid: int, marker: str, timeout: float = 10.0) -> bool:
    """End the process group of ``pid`` if that process is still ours (its command line mentions ``marker``, the
    run directory), so a recycled pid is never signalled. True when something was stopped."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if marker not in cmdline:
        return False
    stop_group(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    with _no_such_process():
        os.killpg(pid, signal.SIGKILL)
    return True


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(errors="replace").rsplit(") ", 1)[-1][:1]
    except OSError:
        return False
    return state not in ("Z", "X")


class MariaDB(Managed):
    """A private MariaDB: own datadir, socket and port, bound to one address; TLS when ``tls`` is given.

    At every start an init file (re)creates the admin user (all privileges) and ``extra_sql``, so the server is
    ready for the provider as soon as it accepts connections.
    """

    def __init__(
        self,
        base: Path,
        tls: TlsFiles | None,
        admin_user: str,
        admin_password: str,
        bind: str = "127.0.0.1",
        port: int = 3306,
        netns: str | None = None,
        extra_sql: str = "",
        innodb_options: tuple[str, ...] = FAST_INNODB,
    ) -> None:
        super().__init__(netns)
        self.base = base
        self.tls = tls
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.bind = bind
        self.port = port
        self.extra_sql = extra_sql
        self.innodb_options = innodb_options  # FAST_INNODB for a throwaway lab; durable ones where fsyncs are measured
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.log = base / "mysqld.log"
        self.init_file = base / "init.sql"

    def install(self) -> MariaDB:
        """Create the data directory (mariadb-install-db); no server runs yet."""
        self.base.mkdir(parents=True, exist_ok=True)
        if self.datadir.exists():
            return self
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if installer is None:
            raise ServerError("mariadb-install-db not found: install mariadb-server (bash .ci/services.sh)")
        done = subprocess.run(
            [
                installer,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--tmpdir={self.base}",  # bootstrap temp tables in our own dir: /tmp is shared by other runs
                *self.innodb_options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"mariadb-install-db failed: {done.stderr.decode(errors='replace')[-2000:]}")
        return self

    def prepare(self) -> MariaDB:
        self.install()
        pw = self.admin_password.replace("\\", "\\\\").replace("'", "\\'")
        self.init_file.touch(mode=0o600)
        self.init_file.write_text(
            f"CREATE USER IF NOT EXISTS '{self.admin_user}'@'%' IDENTIFIED BY '{pw}';\n"
            f"ALTER USER '{self.admin_user}'@'%' IDENTIFIED BY '{pw}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.admin_user}'@'%' WITH GRANT OPTION;\n" + self.extra_sql
        )
        return self

    def start(self, wait: float = 30.0) -> MariaDB:
        argv = [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={self.bind}",
            "--user=root",
            f"--pid-file={self.base / 'mysqld.pid'}",
            f"--log-error={self.log}",
            "--skip-name-resolve",
            "--skip-log-bin",
            *self.innodb_options,
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
        self._launch(argv, self.log)
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Wait until the admin user can log in over the server's own socket (the init file has run)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ServerError(f"mariadbd exited before it was ready:\n{tail(self.log)}")
            try:
                pymysql.connect(
                    unix_socket=str(self.socket),
                    user=self.admin_user,
                    password=self.admin_password.encode(),
                    connect_timeout=2,
                ).close()
                return
            except pymysql.MySQLError:
                if time.monotonic() > deadline:
                    raise ServerError(f"mariadbd not ready after {timeout:.0f}s:\n{tail(self.log)}") from None
                time.sleep(0.05)


class Sshd(Managed):
    """OpenSSH's sshd with its own config: one address, key auth only, TCP forwarding and internal-sftp."""

    def __init__(
        self,
        base: Path,
        authorized_keys: Sequence[str],
        bind: str = "127.0.0.1",
        port: int = 22,
        netns: str | None = None,
        allow_tcp_forwarding: bool = True,
    ) -> None:
        super().__init__(netns)
        self.base = base
        self.bind = bind
        self.port = port
        self.authorized_keys = list(authorized_keys)
        self.allow_tcp_forwarding = allow_tcp_forwarding
        self.config = base / "sshd_config"
        self.log = base / "sshd.log"
        self.host_key = base / "ssh_host_ed25519_key"

    def prepare(self) -> Sshd:
        self.base.mkdir(parents=True, exist_ok=True)
        # sshd's compiled-in privilege separation directory; it refuses to start without it
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        if not self.host_key.exists():
            make_ssh_key(self.host_key, "host")
        keys = self.base / "authorized_keys"
        keys.write_text("".join(k.strip() + "\n" for k in self.authorized_keys))
        keys.chmod(0o600)
        self.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.bind}",
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

    def start(self) -> Sshd:
        """Start sshd; the caller waits for its port (it may be inside a namespace)."""
        self._launch([SSHD, "-D", "-e", "-f", str(self.config)], self.log)
        return self


# --- PostgreSQL ---------------------------------------------------------------------------------------------

HOME_PREFIX = "dblab-pg-"  # the private directory under the system temp dir: <tmp>/dblab-pg-XXXXXXXX
PG_USER = "dblab-pg"  # the unprivileged account our postgres runs as when we are root (.ci/services.sh adds it)
# A throwaway lab database needs no durability (like FAST_INNODB): no fsyncs, small shared memory.
FAST_PG = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "shared_buffers=16MB")
DURABLE_PG = ("shared_buffers=16MB",)


def pg_bindir() -> Path:
    """The directory holding ``postgres`` and ``initdb``: Debian's newest ``/usr/lib/postgresql/<major>/bin``, else
    the one of ``postgres`` on PATH (other systems put the server there)."""
    found = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        if (d / "postgres").exists() and (d / "initdb").exists() and d.parent.name.isdigit():
            found.append((int(d.parent.name), d))
    if found:
        return max(found)[1]
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    raise ServerError("postgres/initdb not found: install postgresql (bash .ci/services.sh)")


class PostgreSQL(Managed):
    """A private PostgreSQL: own data directory, socket directory and port, bound to one address, TLS on.

    ``pg_hba.conf`` has only ``hostssl all all <cidr> scram-sha-256`` lines, one per CIDR of ``hba_cidrs`` (a plain
    TCP login finds no line: SQLSTATE 28000), and nothing for the Unix socket; as on the DB VM, no database or user
    is named there and PUBLIC has no CONNECT on ``postgres`` and ``template1`` (``engines.pgcheck.cluster_grants``,
    run at every ``prepare()``): only the admin may enter the maintenance database. ``password_encryption`` is
    scram-sha-256. The bootstrap superuser ``postgres`` gets a random password nobody keeps; ``admin_user`` is a
    non-superuser with CREATEDB and CREATEROLE (what the lab's admin needs), its password (re)set as a SCRAM verifier
    at every ``prepare()``, like MariaDB's init file. ``init_sql`` ((database, SQL lines) pairs) runs once after
    initdb, as the superuser in single-user mode (one statement per line).

    The server's own files live in ``home`` (a private temp directory, owned by ``PG_USER`` when we are root, its
    path recorded in ``<base>/home``); ``base`` keeps the log. ``stop()`` ends the server; ``remove()`` (also at
    exit, unless ``detach()``) deletes ``home``.
    """

    def __init__(
        self,
        base: Path,
        tls: TlsFiles | None,
        admin_user: str,
        admin_password: str,
        bind: str = "127.0.0.1",
        port: int = 5432,
        netns: str | None = None,
        hba_cidrs: Sequence[str] = ("127.0.0.1/32",),
        init_sql: Sequence[tuple[str, str]] = (),
        settings: Sequence[str] = FAST_PG,
        max_connections: int = 20,
        home_prefix: str = HOME_PREFIX,
    ) -> None:
        super().__init__(netns)
        self.base = base
        self.tls = tls
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.bind = bind
        self.port = port
        self.hba_cidrs = tuple(hba_cidrs)
        self.init_sql = tuple(init_sql)
        self.settings = tuple(settings)
        self.max_connections = max_connections
        self.home_prefix = home_prefix  # the private directory's name starts with it (labctl local: the run id)
        self.log = base / "postgres.log"
        self.home: Path | None = None
        atexit.register(self.remove)

    # --- files and users ---

    @property
    def datadir(self) -> Path:
        if self.home is None:
            raise ServerError("PostgreSQL not installed yet (call install() or prepare())")
        return self.home / "data"

    def _as_server_user(self) -> list[str]:
        """argv prefix that runs a command as PG_USER when we are root (setpriv execs: the pid stays the server's)."""
        if os.geteuid() != 0:
            return []
        import pwd  # POSIX only: imported where used, so this module still imports on Windows (laptop matrix)

        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            raise ServerError(
                f"system user {PG_USER} missing: postgres refuses to run as root; create it with bash .ci/services.sh"
            ) from None
        return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--clear-groups", "--"]

    def _give(self, path: Path, mode: int) -> None:
        path.chmod(mode)
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(PG_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, argv: list[str], what: str, stdin: str | None = None) -> None:
        done = subprocess.run(
            [*self._as_server_user(), *argv],
            input=stdin.encode() if stdin is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            out = done.stdout.decode(errors="replace").splitlines()
            errors = [line for line in out if "ERROR:" in line or "FATAL:" in line] or out[-20:]
            raise ServerError(f"{what} failed:\n" + "\n".join(errors)[-2000:])

    def install(self) -> PostgreSQL:
        """initdb into a fresh private directory (once per ``base``), then ``init_sql``; no server runs yet."""
        self.base.mkdir(parents=True, exist_ok=True)
        record = self.base / "home"
        if record.exists() and Path(record.read_text().strip(), "data", "PG_VERSION").exists():
            self.home = Path(record.read_text().strip())
            return self
        bindir = pg_bindir()
        self._as_server_user()  # fail early with the clear message
        self.home = Path(tempfile.mkdtemp(prefix=self.home_prefix))
        try:
            self._give(self.home, 0o700)
            pwfile = self.home / "superuser.pw"
            pwfile.write_text(secrets.token_urlsafe(24) + "\n")  # the superuser's: nobody needs it, nobody keeps it
            self._give(pwfile, 0o600)
            try:
                self._run(
                    [
                        str(bindir / "initdb"),
                        f"--pgdata={self.datadir}",
                        "--username=postgres",
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--no-locale",
                        "--no-sync",
                        "--no-instructions",
                    ],
                    "initdb",
                )
            finally:
                pwfile.unlink(missing_ok=True)
            for database, sql in self.init_sql:
                self._single_user(database, sql)
        except BaseException:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None
            raise
        record.write_text(f"{self.home}\n")  # only a complete installation is reused
        return self

    def _single_user(self, database: str, sql: str) -> None:
        """Run SQL lines as the superuser in single-user mode (no server may be running on this data directory)."""
        self._run(
            [str(pg_bindir() / "postgres"), "--single", "-D", str(self.datadir), "-c", "exit_on_error=on", database],
            f"postgres --single ({database})",
            stdin=sql,
        )

    def prepare(self) -> PostgreSQL:
        """install(), the TLS files copied where the server user may read them, pg_hba.conf, the admin role."""
        self.install()
        assert self.home is not None
        if self.tls is None:
            raise ServerError("PostgreSQL needs TLS files (the lab requires TLS)")
        for src, name, mode in (
            (self.tls.server_cert, "server.crt", 0o644),
            (self.tls.server_key, "server.key", 0o600),
        ):
            dst = self.home / name
            dst.unlink(missing_ok=True)
            dst.touch(mode=0o600)
            dst.write_bytes(src.read_bytes())
            self._give(dst, mode)
        self.write_hba()
        from engines.pgcheck import cluster_grants, quote_ident, scram_sha256_verifier  # lazy: the adapter's SQL

        role = quote_ident(self.admin_user)
        verifier = scram_sha256_verifier(self.admin_password)
        attrs = f"LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD '{verifier}'"
        exists = f"SELECT FROM pg_roles WHERE rolname = '{self.admin_user}'"
        self._single_user(
            "postgres",
            f"DO $$ BEGIN IF EXISTS ({exists}) THEN ALTER ROLE {role} {attrs}; "
            f"ELSE CREATE ROLE {role} {attrs}; END IF; END $$;\n"
            # as the DB VM's first boot: only the admin may enter the maintenance database, nobody template1
            + "".join(f"{statement};\n" for statement in cluster_grants(self.admin_user)),
        )
        return self

    def write_hba(self) -> None:
        """pg_hba.conf: TLS + SCRAM from ``hba_cidrs`` only (read at start, and at ``reload()``)."""
        lines = ["# dblab: TLS and SCRAM only, from the allowed networks; nothing else (no local, no host lines)"]
        lines += [f"hostssl all all {cidr} scram-sha-256" for cidr in self.hba_cidrs]
        hba = self.datadir / "pg_hba.conf"
        hba.write_text("\n".join(lines) + "\n")
        self._give(hba, 0o600)

    # --- process ---

    def start(self, wait: float = 30.0) -> PostgreSQL:
        assert self.home is not None, "prepare() first"
        argv = [
            *self._as_server_user(),
            str(pg_bindir() / "postgres"),
            "-D",
            str(self.datadir),
            "-c",
            f"listen_addresses={self.bind}",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.home}",
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={self.home / 'server.crt'}",
            "-c",
            f"ssl_key_file={self.home / 'server.key'}",
            "-c",
            "ssl_min_protocol_version=TLSv1.2",
            "-c",
            "password_encryption=scram-sha-256",
            "-c",
            f"max_connections={self.max_connections}",
            "-c",
            "superuser_reserved_connections=2",
            "-c",
            "logging_collector=off",
            "-c",
            "log_connections=on",
        ]
        for setting in self.settings:
            argv += ["-c", setting]
        self._launch(argv, self.log)
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Wait until the postmaster says it accepts connections: line 8 of ``postmaster.pid`` is ``ready`` (PostgreSQL
        10+, src/include/utils/pidfile.h LOCK_FILE_LINE_PM_STATUS / PM_STATUS_READY), written after the listen
        sockets are open. No login needed, so it also works inside a network namespace."""
        deadline = time.monotonic() + timeout
        pidfile = self.datadir / "postmaster.pid"
        while True:
            if not self.running:
                raise ServerError(f"postgres exited before it was ready:\n{tail(self.log)}")
            with _suppress_oserror():
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            if time.monotonic() > deadline:
                raise ServerError(f"postgres not ready after {timeout:.0f}s:\n{tail(self.log)}")
            time.sleep(0.05)

    def reload(self, hba_cidrs: Sequence[str] | None = None) -> None:
        """Rewrite pg_hba.conf (with new ``hba_cidrs`` when given) and restart, so the next login sees it for sure
        (a SIGHUP reload is applied asynchronously)."""
        if hba_cidrs is not None:
            self.hba_cidrs = tuple(hba_cidrs)
        self.stop()
        self.write_hba()
        self.start()

    def detach(self) -> None:
        super().detach()
        atexit.unregister(self.remove)

    @staticmethod
    def remove_homes(prefix: str) -> list[str]:
        """Delete every private directory ``<tmp>/<prefix>*`` (after a crash, when no object remembers them);
        returns what could not be removed. ``prefix`` must name one run (``labctl local``: ``dblab-<run id>-pg-``)."""
        left = []
        for home in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            shutil.rmtree(home, ignore_errors=True)
            if home.exists():
                left.append(str(home))
        return left

    def remove(self) -> None:
        """Stop the server and delete its private directory (data, socket, TLS copies)."""
        self.stop()
        home, self.home = self.home, None
        if home is not None and home.name.startswith(self.home_prefix):
            shutil.rmtree(home, ignore_errors=True)
            (self.base / "home").unlink(missing_ok=True)


class _suppress_oserror:  # noqa: N801 (a tiny context manager)
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type | None, *_: object) -> bool:
        return typ is not None and issubclass(typ, OSError)
