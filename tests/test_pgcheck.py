"""The PostgreSQL check adapter (engines/pgcheck.py) against a real PostgreSQL with TLS, through the real sshd.

The server is Debian's PostgreSQL started by the product's launcher on 127.0.0.1 (tests/servers.py
PostgreSQLServer): pg_hba ``hostssl`` + scram-sha-256 only, the admin a non-superuser with CREATEDB/CREATEROLE.
Every session of the adapter goes through an SSH ``direct-tcpip`` channel of the loopback sshd (components/envcheck
``open_ssh`` + ``Tunnel``), as the check does from the app VM. Faults are real: a wrong password, a pg_hba.conf
without the client's network, a server with TLS off, a role at its connection limit, a missing database.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pg8000.exceptions
import pytest
import scramp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components import envcheck
from engines import pgcheck
from tests.servers import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    LOOPBACK,
    OTHER_DB,
    SERVER_HOSTNAME,
    PostgreSQLServer,
    SshServer,
    loopback_lab,
)

APP_PASSWORD = "Pg 'app' \"pw\" #1 $x \\ = ü"
LAB_DB = "lab"


@dataclass
class Lab:
    db: PostgreSQLServer
    ssh: SshServer
    key: Path
    tmp: Path

    def request(self, **accounts: Any) -> envcheck.CheckRequest:
        acc: dict[str, Any] = {
            "db_name": LAB_DB,
            "admin_user": ADMIN_USER,
            "admin_password": ADMIN_PASSWORD,
            "app_user": "lab_app",
            "app_password": APP_PASSWORD,
        }
        acc.update(accounts)
        return envcheck.CheckRequest(
            ssh=envcheck.SshTarget(LOOPBACK, self.ssh.port, "root", (str(self.key),), self.tmp / ".dblab_known_hosts"),
            db=envcheck.DbTarget(LOOPBACK, self.db.port, SERVER_HOSTNAME, "require"),
            accounts=envcheck.Accounts(**acc),
            timeout_s=20,
        )

    @contextlib.contextmanager
    def session(self, req: envcheck.CheckRequest, user: str, password: str, database: str | None) -> Iterator[Any]:
        """An adapter session through the SSH tunnel (the TCP connection to the DB starts at sshd)."""
        client = envcheck.open_ssh(req.ssh, 10)
        tunnel = envcheck.Tunnel(client)
        try:
            sock = tunnel.connect(req.db.host, req.db.port, 10)
            conn = pgcheck.connect(sock, req.db, user, password, database, 10)
            try:
                yield conn
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
        finally:
            tunnel.close()
            client.close()

    def fail(self, req: envcheck.CheckRequest, hop: str, user: str, password: str, database: str | None) -> Any:
        """Log in through the tunnel expecting a failure; return the adapter's diagnosis of it."""
        with pytest.raises(Exception) as info, self.session(req, user, password, database):
            pass
        diagnosis = pgcheck.diagnose(hop, info.value, req)
        assert diagnosis is not None
        for secret in req.accounts.secrets:
            assert secret not in diagnosis.message
        return diagnosis


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("pglab")
    with loopback_lab(base, key_comment="dblab-pg-test", server="postgresql") as s:
        assert isinstance(s.db, PostgreSQLServer)
        yield Lab(s.db, s.ssh, s.user_key, base)


def _check(lab: Lab, req: envcheck.CheckRequest) -> dict[str, object]:
    acc = req.accounts
    with lab.session(req, acc.admin_user, acc.admin_password, None) as admin:
        pgcheck.ensure_app_user(admin, acc)
    with lab.session(req, acc.app_user, acc.app_password, acc.db_name) as app:
        return pgcheck.probe_app(app, acc.db_name)


def _cert_fingerprint(pem: Path) -> str:
    der = x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


# --- the verifier ---------------------------------------------------------------------------------------------


def test_scram_verifier_agrees_with_scramp_and_has_postgresqls_format():
    salt = bytes(range(16))
    verifier = pgcheck.scram_sha256_verifier(APP_PASSWORD, salt=salt)
    got_salt, stored, server, iterations = scramp.ScramMechanism("SCRAM-SHA-256").make_auth_info(
        APP_PASSWORD, iteration_count=4096, salt=salt
    )
    import base64

    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    assert verifier == f"SCRAM-SHA-256$4096:{b64(got_salt)}${b64(stored)}:{b64(server)}"
    assert APP_PASSWORD not in verifier
    assert pgcheck.scram_sha256_verifier(APP_PASSWORD) != pgcheck.scram_sha256_verifier(APP_PASSWORD)  # fresh salts


@pytest.mark.parametrize("name", ['x"; DROP ROLE admin; --', "a b", "", "1abc", "x" * 64, "ü"])
def test_names_that_could_escape_quoting_are_refused(name: str):
    with pytest.raises(ValueError):
        pgcheck.quote_ident(name)


# --- the check through the tunnel -----------------------------------------------------------------------------


def test_check_through_ssh_tunnel_creates_least_privilege_app_user_and_reports_tls_fingerprint(lab: Lab):
    req = lab.request()
    report = _check(lab, req)
    assert report["current_user"] == "lab_app"
    assert str(report["server_version"]).startswith("PostgreSQL 1")
    assert report["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert report["tls_cipher"]
    assert report["tls_fingerprint"] == _cert_fingerprint(lab.db.tls.server_cert)
    # the server agrees the session was TLS and the password is stored as a SCRAM verifier, never in plain text
    admin = lab.db.admin_connect()
    try:
        [[super_, createdb, createrole, limit]] = admin.run(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolconnlimit FROM pg_roles WHERE rolname = 'lab_app'"
        )
        assert (super_, createdb, createrole, limit) == (False, False, False, -1)
        [[acl]] = admin.run("SELECT datacl::text FROM pg_database WHERE datname = 'lab'")
        assert "lab_app=CTc/" in acl  # CONNECT, TEMPORARY, CREATE for the app user ...
        assert "=Tc/" not in acl.replace("lab_app=", "")  # ... and nothing left for PUBLIC (an empty grantee)
        [[owned_dbs]] = admin.run(
            "SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = 'lab_app'"
        )
        assert owned_dbs == 0
    finally:
        admin.close()


def test_app_user_reaches_nothing_outside_the_lab_database(lab: Lab):
    req = lab.request()
    _check(lab, req)
    app = lab.db.connect("lab_app", APP_PASSWORD, OTHER_DB)  # PUBLIC may connect to other_db (default), but ...
    try:
        for sql in ("SELECT v FROM secrets", "CREATE TABLE public.mine (id int)", f"CREATE DATABASE {LAB_DB}2"):
            with pytest.raises(pg8000.exceptions.DatabaseError) as info:
                app.run(sql)
            assert pgcheck.sqlstate(info.value) == pgcheck.INSUFFICIENT_PRIVILEGE, sql
    finally:
        app.close()
    # someone else with a login may not even connect to the lab database: REVOKE ... FROM PUBLIC
    admin = lab.db.admin_connect()
    try:
        admin.run("DROP ROLE IF EXISTS intruder")
        admin.run(f"CREATE ROLE intruder LOGIN PASSWORD '{pgcheck.scram_sha256_verifier('intruder pw')}'")
    finally:
        admin.close()
    diagnosis = lab.fail(req, envcheck.HOP_APP, "intruder", "intruder pw", LAB_DB)
    assert diagnosis.cause == "privileges" and "CONNECT" in diagnosis.message


def test_rerun_resets_password_connection_limit_and_grants(lab: Lab):
    req = lab.request()
    _check(lab, req)
    admin = lab.db.admin_connect()
    try:
        other = pgcheck.scram_sha256_verifier("someone changed it")
        admin.run(f"ALTER ROLE lab_app CONNECTION LIMIT 0 PASSWORD '{other}'")
        admin.run("REVOKE ALL ON DATABASE lab FROM lab_app")
        admin.run("GRANT CONNECT ON DATABASE lab TO PUBLIC")
    finally:
        admin.close()
    denied = lab.fail(req, envcheck.HOP_APP, "lab_app", APP_PASSWORD, LAB_DB)
    assert denied.cause in ("access-denied", "too-many-connections")
    report = _check(lab, req)  # the admin's pass puts everything back
    assert report["current_user"] == "lab_app"
    admin = lab.db.admin_connect()
    try:
        [[limit]] = admin.run("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'lab_app'")
        [[acl]] = admin.run("SELECT datacl::text FROM pg_database WHERE datname = 'lab'")
    finally:
        admin.close()
    assert limit == -1
    assert "=c/" not in acl.replace("lab_app=", "")  # PUBLIC's CONNECT revoked again


def test_role_at_its_connection_limit_is_diagnosed_as_too_many_connections(lab: Lab):
    req = lab.request()
    _check(lab, req)
    admin = lab.db.admin_connect()
    try:
        admin.run("ALTER ROLE lab_app CONNECTION LIMIT 0")
    finally:
        admin.close()
    diagnosis = lab.fail(req, envcheck.HOP_APP, "lab_app", APP_PASSWORD, LAB_DB)
    assert (diagnosis.cause, diagnosis.retryable) == ("too-many-connections", True)
    assert "53300" in diagnosis.message and "CONNECTION LIMIT" in diagnosis.message
    _check(lab, req)  # and the next run's reset lets it in again


def test_renamed_app_user_takes_over_the_old_one(lab: Lab):
    _check(lab, lab.request(app_user="old_app"))
    with lab.session(lab.request(app_user="old_app"), "old_app", APP_PASSWORD, LAB_DB) as app:
        app.run("CREATE TABLE kept (id int)")  # lands in the old_app schema ("$user" first in search_path)
    report = _check(lab, lab.request(app_user="new_app", app_password="N3w pw!", previous_app_user="old_app"))
    assert report["current_user"] == "new_app"
    admin = lab.db.admin_connect(LAB_DB)
    try:
        assert admin.run("SELECT rolname FROM pg_roles WHERE rolname IN ('old_app', 'new_app')") == [["new_app"]]
        [[owner]] = admin.run("SELECT tableowner FROM pg_tables WHERE tablename = 'kept'")
        assert owner == "new_app"  # the student's table survived the rename
    finally:
        admin.close()


def _db_vm_hba(app_cidr: str, vcn_cidr: str) -> str:
    """The pg_hba.conf the postgresql-vm engine's first boot writes (engines/templates/dbvm-postgresql.sh.j2)."""
    from engines import postgresql_vm, vmdb

    flavor = postgresql_vm.FLAVOR
    verifier = vmdb.admin_verifier(flavor.family, ADMIN_PASSWORD, "urn:pulumi:dev::oci-dblab::pghba")
    body = vmdb.render_setup_script(flavor, vmdb.DbVmSettings(app_cidr, vcn_cidr, ADMIN_USER, verifier))
    return body.split("<<'EOF_HBA'\n", 1)[1].split("EOF_HBA", 1)[0]


@contextlib.contextmanager
def _with_db_vm_hba(lab: Lab) -> Iterator[None]:
    """The server restarted with the DB VM's pg_hba.conf (app subnet and VCN = loopback), the launcher's own after."""
    lab.db.stop()
    hba = lab.db.datadir / "pg_hba.conf"
    hba.write_text(_db_vm_hba(f"{LOOPBACK}/32", "127.0.0.0/8"))
    lab.db._give(hba, 0o600)
    lab.db.start()
    try:
        yield
    finally:
        lab.db.reload()


def test_renaming_the_app_user_and_the_lab_database_needs_no_pg_hba_change(lab: Lab):
    """Issue 11: pg_hba.conf is written once at the DB VM's first boot; renaming dbAppUser and dbName later (a second
    check run with new names against the same server) must still let the new app user in, and only where it may."""
    with _with_db_vm_hba(lab):
        first = _check(lab, lab.request(app_user="first_app", db_name="first_db"))
        assert (first["current_user"], first["database"]) == ("first_app", "first_db")
        renamed = lab.request(app_user="second_app", db_name="second_db", previous_app_user="first_app")
        report = _check(lab, renamed)
        assert (report["current_user"], report["database"]) == ("second_app", "second_db")
        with lab.session(renamed, "second_app", APP_PASSWORD, "second_db") as app:
            app.run("CREATE TABLE works (id int)")
            app.run("INSERT INTO works VALUES (1)")
            assert app.run("SELECT id FROM works") == [[1]]
        # the app user may not enter the maintenance database (PUBLIC has no CONNECT there) nor template1 ...
        for database in (pgcheck.MAINTENANCE_DB, "template1"):
            denied = lab.fail(renamed, envcheck.HOP_APP, "second_app", APP_PASSWORD, database)
            assert denied.cause == "privileges" and "42501" in denied.message, denied.message
        # ... while the admin (not a superuser) still logs into it: it was granted CONNECT there
        with lab.session(renamed, ADMIN_USER, ADMIN_PASSWORD, None) as admin:
            [[superuser, current]] = admin.run(
                "SELECT rolsuper, current_database() FROM pg_roles WHERE rolname = current_user"
            )
            assert (superuser, current) == (False, pgcheck.MAINTENANCE_DB)


def test_wrong_admin_password_is_a_credentials_diagnosis_without_the_password(lab: Lab):
    req = lab.request(admin_password="Wrong 'admin' pw")
    diagnosis = lab.fail(req, envcheck.HOP_ADMIN, ADMIN_USER, "Wrong 'admin' pw", None)
    assert (diagnosis.cause, diagnosis.retryable) == ("access-denied", False)
    assert "28P01" in diagnosis.message and "dbAdminUser and dbPassword" in diagnosis.message


def test_missing_database_is_named(lab: Lab):
    req = lab.request(db_name="no_such_db")
    diagnosis = lab.fail(req, envcheck.HOP_APP, ADMIN_USER, ADMIN_PASSWORD, "no_such_db")
    assert diagnosis.cause == "no-database", diagnosis.message
    assert "'no_such_db' does not exist" in diagnosis.message


def test_client_outside_pg_hba_is_sent_to_pg_hba_conf(lab: Lab):
    req = lab.request()
    lab.db.reload(hba_cidrs=["127.0.0.2/32"])  # the "app subnet" is elsewhere: sshd connects from 127.0.0.1
    try:
        diagnosis = lab.fail(req, envcheck.HOP_ADMIN, ADMIN_USER, ADMIN_PASSWORD, None)
    finally:
        lab.db.reload(hba_cidrs=[f"{LOOPBACK}/32"])
    assert (diagnosis.cause, diagnosis.retryable) == ("host-not-allowed", False)
    assert "pg_hba.conf" in diagnosis.message and "hostssl all all <app subnet CIDR> scram-sha-256" in (
        diagnosis.message
    )


def test_server_without_tls_is_refused_and_diagnosed(lab: Lab):
    req = lab.request()
    settings = lab.db.settings
    lab.db.settings = (*settings, "ssl=off")  # the last -c wins
    lab.db.stop()
    lab.db.start()
    try:
        diagnosis = lab.fail(req, envcheck.HOP_ADMIN, ADMIN_USER, ADMIN_PASSWORD, None)
    finally:
        lab.db.settings = settings
        lab.db.stop()
        lab.db.start()
    assert (diagnosis.cause, diagnosis.retryable) == ("tls", False)
    assert "refuses TLS" in diagnosis.message and "ssl = on" in diagnosis.message


def test_plaintext_login_finds_no_pg_hba_line(lab: Lab):
    import pg8000.native

    with pytest.raises(pg8000.exceptions.DatabaseError) as info:
        pg8000.native.Connection(
            ADMIN_USER, host=LOOPBACK, port=lab.db.port, password=ADMIN_PASSWORD, ssl_context=False
        )
    assert pgcheck.sqlstate(info.value) == pgcheck.INVALID_AUTHORIZATION
    diagnosis = pgcheck.diagnose(envcheck.HOP_ADMIN, info.value, lab.request())
    assert diagnosis is not None and diagnosis.cause == "tls"


def test_verify_full_checks_the_certificate_name_through_the_tunnel(lab: Lab):
    req = lab.request()
    good = envcheck.DbTarget(LOOPBACK, lab.db.port, SERVER_HOSTNAME, "verify-full", str(lab.db.tls.ca_cert))
    bad = envcheck.DbTarget(LOOPBACK, lab.db.port, "other.lab.test", "verify-full", str(lab.db.tls.ca_cert))
    client = envcheck.open_ssh(req.ssh, 10)
    tunnel = envcheck.Tunnel(client)
    try:
        conn = pgcheck.connect(tunnel.connect(LOOPBACK, lab.db.port, 10), good, ADMIN_USER, ADMIN_PASSWORD, None, 10)
        conn.close()
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            pgcheck.connect(tunnel.connect(LOOPBACK, lab.db.port, 10), bad, ADMIN_USER, ADMIN_PASSWORD, None, 10)
    finally:
        tunnel.close()
        client.close()
    diagnosis = pgcheck.diagnose(envcheck.HOP_ADMIN, info.value, req)
    assert diagnosis is not None and diagnosis.cause == "tls" and "handshake failed" in diagnosis.message


def test_a_silent_peer_times_out_instead_of_hanging():
    near, far = socket.socketpair()  # nobody answers pg8000's SSLRequest
    try:
        with pytest.raises((TimeoutError, pg8000.exceptions.InterfaceError)):
            pgcheck.connect(near, envcheck.DbTarget(LOOPBACK, 5432, "", "require"), "u", "p", None, 0.3)
    finally:
        near.close()
        far.close()


def test_other_hops_are_left_to_the_generic_diagnosis(lab: Lab):
    assert pgcheck.diagnose(envcheck.HOP_SSH, ConnectionRefusedError(), lab.request()) is None
    assert pgcheck.diagnose(envcheck.HOP_FORWARD, TimeoutError(), lab.request()) is None


def test_server_answer_hidden_behind_a_failed_close_is_still_diagnosed(lab: Lab):
    # pg8000 closes a failed login and, when the server already hung up, raises the close's "network error" with the
    # server's DatabaseError only as __context__: the diagnosis must still see the SQLSTATE (not a TLS/network fault)
    refused = pg8000.exceptions.DatabaseError({"S": "FATAL", "C": "3D000", "M": 'database "lab" does not exist'})
    try:
        try:
            raise refused
        except pg8000.exceptions.DatabaseError:
            raise pg8000.exceptions.InterfaceError("network error") from ssl.SSLEOFError(8, "EOF")
    except pg8000.exceptions.InterfaceError as hidden:
        diagnosis = pgcheck.diagnose(envcheck.HOP_APP, hidden, lab.request())
    assert diagnosis is not None and diagnosis.cause == "no-database"


def test_every_postgresql_family_engine_uses_this_adapter():
    import engines

    family = [e for e in engines.ENGINES.values() if e.family == pgcheck.FAMILY]
    assert family, "no postgresql-family engine is registered"
    for engine in family:
        assert engine.adapter() is pgcheck.ADAPTER, engine.name
    assert pgcheck.ADAPTER.error_types == (pg8000.exceptions.Error,)


def test_pg8000_uses_only_wrap_socket_of_the_context_so_a_gated_login_works(lab: Lab):
    """The flow's pre-opened app session hands the adapter a context that only has wrap_socket (gated_login)."""
    import threading

    req = lab.request()
    _check(lab, req)
    gate = threading.Event()
    calls: list[str | None] = []

    class Gated:
        def __init__(self, ctx: ssl.SSLContext) -> None:
            self.ctx = ctx

        def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None) -> ssl.SSLSocket:
            tls = self.ctx.wrap_socket(sock, server_hostname=server_hostname)
            calls.append(server_hostname)
            assert gate.wait(10)
            return tls

    client = envcheck.open_ssh(req.ssh, 10)
    tunnel = envcheck.Tunnel(client)
    result: dict[str, Any] = {}
    try:
        sock = tunnel.connect(LOOPBACK, lab.db.port, 10)
        ctx: Any = Gated(pgcheck.tls_context(req.db))

        def login() -> None:
            result["conn"] = pgcheck.connect(sock, req.db, "lab_app", APP_PASSWORD, LAB_DB, 10, ctx)

        thread = threading.Thread(target=login)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and "conn" not in result  # TLS is up, the login waits at the gate
        gate.set()
        thread.join(10)
        assert pgcheck.probe_app(result["conn"], LAB_DB)["current_user"] == "lab_app"
        result["conn"].close()
    finally:
        gate.set()
        tunnel.close()
        client.close()
    assert calls == [SERVER_HOSTNAME] and pgcheck.ADAPTER.gated_login


# --- the engine-neutral check flow with this adapter ------------------------------------------------------------


def test_the_check_flow_runs_the_postgresql_engine_and_reports_the_certificate_fingerprint(lab: Lab):
    import dataclasses

    req = dataclasses.replace(lab.request(app_user="flow_app"), engine="postgresql")
    assert envcheck.adapter_of(req) is pgcheck.ADAPTER
    report, remote = envcheck.run_check(req)
    assert remote is None
    assert report.current_user == "flow_app" and report.server_version.startswith("PostgreSQL ")
    assert report.tls_version in ("TLSv1.2", "TLSv1.3") and report.attempts >= 1
    out = report.as_output()
    assert out["tls"]["fingerprintSha256"] == _cert_fingerprint(lab.db.tls.server_cert)  # type: ignore[index]


def test_the_check_flow_stops_at_once_on_a_wrong_postgresql_password_without_echoing_it(lab: Lab):
    import dataclasses

    req = dataclasses.replace(lab.request(admin_password="Not the 'admin' pw"), engine="postgresql")
    with pytest.raises(envcheck.CheckFailed) as info:
        envcheck.run_check(req)
    assert info.value.diagnosis.cause == "access-denied" and not info.value.timed_out  # stopped at once
    assert "Not the 'admin' pw" not in str(info.value) and "28P01" in str(info.value)


def test_the_launchers_and_the_adapter_import_without_posix_only_modules():
    """The laptop matrix collects these modules on Windows (no pwd/grp): they may use them only where they run."""
    import subprocess
    import sys

    code = (
        "import importlib.abc, sys\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('pwd', 'grp'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import labctl.local.servers, tests.servers, engines.pgcheck\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_session_dropped_after_the_handshake_is_retryable_not_a_tls_problem(lab: Lab):
    # pg8000 wraps a failed read/write as InterfaceError("network error") from the socket's error; over TLS that is
    # an SSLEOFError when the far end hung up mid-session (seen when the SSH channel under the session breaks)
    try:
        try:
            raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
        except ssl.SSLError as eof:
            raise pg8000.exceptions.InterfaceError("network error") from eof
    except pg8000.exceptions.InterfaceError as dropped:
        diagnosis = pgcheck.diagnose(envcheck.HOP_APP, dropped, lab.request())
    assert diagnosis is not None and (diagnosis.cause, diagnosis.retryable) == ("not-ready", True)


def test_the_tunnel_pump_never_asks_the_channel_for_a_file_descriptor():
    """paramiko's Channel.fileno() pipe is closed racily against the transport thread (envcheck_ssh._Pump): the pump
    must work with a channel that has no fileno at all, both ways, and end when either side closes."""
    from components import envcheck_ssh

    class Channel:  # recv/sendall/close only, like the part of paramiko.Channel the pump may use
        def __init__(self) -> None:
            self.db, self.end = socket.socketpair()
            self.closed = False

        def recv(self, n: int) -> bytes:
            return b"" if self.closed else self.end.recv(n)

        def sendall(self, data: bytes) -> None:
            self.end.sendall(data)

        def close(self) -> None:
            self.closed = True
            with contextlib.suppress(OSError):
                self.end.shutdown(socket.SHUT_RDWR)

    channel = Channel()
    pump = envcheck_ssh._Pump(channel)  # type: ignore[arg-type]
    try:
        pump.outer.settimeout(5)
        channel.db.settimeout(5)
        pump.outer.sendall(b"SSLRequest")
        assert channel.db.recv(100) == b"SSLRequest"
        channel.db.sendall(b"S")
        assert pump.outer.recv(1) == b"S"
        channel.db.close()  # the DB hangs up: the driver reads EOF
        assert pump.outer.recv(1) == b""
    finally:
        pump.close()
    assert not pump.thread.is_alive() and channel.closed
