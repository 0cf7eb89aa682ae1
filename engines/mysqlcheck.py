"""The MySQL-family check adapter: pymysql over the check's tunnel socket, with TLS required.

Used by every engine of family ``mysql`` (``Engine.adapter``): MySQL HeatWave, and MySQL/MariaDB on a DB VM. The
engine-neutral flow (``components/envcheck.py``: SSH, tunnel, retries, staged ``.env``) calls ``ADAPTER``. The admin
session creates the lab database and the least-privilege app user in one multi-statement batch; a second session as
the app user runs ``SELECT 1, CURRENT_USER()`` and creates, writes and drops a table. The server version comes from
its login greeting, the TLS version and cipher from the client's TLS socket; pymysql's ``SET NAMES`` after login is
skipped (the login packet names utf8mb4).

IMPORT RULE (engines/base.py): pymysql is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import ssl
import time
import uuid
from typing import Any

from engines.base import certificate_fingerprint

FAMILY = "mysql"
SSL_MODES = ("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
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


def tls_context(db: Any) -> ssl.SSLContext:
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


@functools.lru_cache(maxsize=1)
def session_class() -> type:
    """pymysql's Connection minus the post-login ``SET NAMES`` round trip (made on first use: IMPORT RULE)."""
    import pymysql
    import pymysql.charset
    import pymysql.connections

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

    return _Session


def _session(db: Any, user: str, password: str, database: str | None, timeout: float, ctx: ssl.SSLContext) -> Any:
    import pymysql.constants

    return session_class()(
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


def _login(conn: Any, sock: socket.socket) -> None:
    conn.connect(sock=sock)
    try:
        if not conn.tls()[1]:
            from components.envcheck_diagnosis import TlsNotNegotiated

            raise TlsNotNegotiated("session is not encrypted")
    except BaseException:
        conn.close()
        raise


def mysql_over(
    sock: socket.socket,
    db: Any,
    user: str,
    password: str,
    database: str | None,
    timeout: float,
    ctx: ssl.SSLContext | None = None,
) -> Any:
    """Log in over an existing socket with TLS required; raise TlsNotNegotiated for a plaintext session.

    ``ctx`` is the check's one TLS context (``tls_context(db)`` when not given). Multi-statements are on: the
    check sends each batch of its own SQL (validated names, bound parameters) in one round trip.
    """
    ctx = ctx or tls_context(db)
    real = getattr(ctx, "ctx", ctx)  # a gated context (components/envcheck.py pre-open) wraps the real one
    conn = _session(db, user, password, database, timeout, real)
    if real is not ctx:
        conn.ctx = ctx  # pymysql only calls ctx.wrap_socket: the handshake runs, the login waits for the gate
    _login(conn, sock)
    return conn


def session_tls(conn: Any) -> tuple[str, str]:
    """(TLS version, cipher) of this session; cipher is '' when unencrypted. No round trip for our sessions."""
    if isinstance(conn, session_class()):
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


def app_user_statements(acc: Any) -> list[tuple[str, tuple[str, ...]]]:
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


def run_batch(conn: Any, statements: list[tuple[str, tuple[str, ...]]]) -> list[tuple]:
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


def ensure_app_user(conn: Any, acc: Any) -> None:
    """Run ``app_user_statements`` on an admin connection, all in one round trip."""
    run_batch(conn, app_user_statements(acc))


def server_version(conn: Any) -> str:
    """The version from the login greeting, as ``SELECT VERSION()`` would return it: MariaDB before 11 prefixes
    its greeting with ``5.5.5-`` for old replication clients (MariaDB Connector/C strips it the same way)."""
    version = str(conn.get_server_info())
    if version.startswith("5.5.5-") and "MariaDB" in version:
        return version[len("5.5.5-") :]
    return version


def probe_app(conn: Any, db_name: str) -> dict[str, object]:
    """As the app user, in two round trips: ``SELECT 1, CURRENT_USER()`` (timed: the latency) and a table
    create/insert/drop. The server version comes from the login greeting, the TLS details from the socket."""
    import pymysql

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
        # the server certificate's SHA-256 (a DB VM's is self-signed at boot: compare it with the VM's)
        "tls_fingerprint": certificate_fingerprint(getattr(conn, "_sock", None)),
    }


# --- diagnosis ----------------------------------------------------------------------------------------------


def _mysql_code(exc: BaseException) -> int | None:
    import pymysql

    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def server_label(req: Any) -> str:
    """The request's engine's server, as failure messages name it (``Engine.server_label``: MySQL, MariaDB)."""
    import engines

    engine = engines.ENGINES.get(getattr(req, "engine", "") or engines.DEFAULT)
    return engine.server_label if engine is not None and engine.server_label else "MySQL"


def diagnose(hop: str, exc: BaseException, req: Any) -> Any:
    """The MySQL meaning of a failure at the admin or app hop, as a ``Diagnosis``; None for the other hops (SSH,
    forward, SFTP: the generic diagnosis applies). Secrets are redacted from the server's text."""
    from components.envcheck_diagnosis import (
        HOP_ADMIN,
        HOP_APP,
        Diagnosis,
        TlsNotNegotiated,
        _is_tls_error,
        forward_concepts,
        redact,
    )

    if hop not in (HOP_ADMIN, HOP_APP):
        return None
    db, acc = req.db, req.accounts
    detail = redact(f"{type(exc).__name__}: {exc}", acc.secrets)
    fwd_concepts = forward_concepts(req)

    def d(cause: str, retryable: bool, message: str) -> Any:
        return Diagnosis(hop, cause, retryable, f"{message} [{detail}]")

    who = acc.admin_user if hop == HOP_ADMIN else acc.app_user
    db_hop = f"{server_label(req)} hop (login as '{who}' to {db.host}:{db.port} over the tunnel, TLS {db.ssl_mode})"
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


class MysqlAdapter:
    """The hooks as one object (``Engine.adapter()`` returns ``ADAPTER``). Each method calls this module's function
    at call time, so a test can replace one (``monkeypatch.setattr(mysqlcheck, "probe_app", ...)``)."""

    family = FAMILY
    ssl_modes = SSL_MODES
    gated_login = True  # connect() accepts the flow's gated TLS context (the app login pre-opened alongside the admin)

    def connect(
        self,
        sock: socket.socket,
        db: Any,
        user: str,
        password: str,
        database: str | None,
        timeout: float,
        ssl_ctx: Any = None,
    ) -> Any:
        return mysql_over(sock, db, user, password, database, timeout, ssl_ctx)

    def tls_context(self, db: Any) -> ssl.SSLContext:
        return tls_context(db)

    def ensure_app_user(self, conn: Any, acc: Any) -> None:
        ensure_app_user(conn, acc)

    def probe_app(self, conn: Any, db_name: str) -> dict[str, object]:
        return probe_app(conn, db_name)

    def server_version(self, conn: Any) -> str:
        return server_version(conn)

    def session_tls(self, conn: Any) -> tuple[str, str]:
        return session_tls(conn)

    def diagnose(self, hop: str, exc: BaseException, req: Any) -> Any:
        return diagnose(hop, exc, req)

    @property
    def error_types(self) -> tuple[type[BaseException], ...]:
        import pymysql

        return (pymysql.MySQLError,)


ADAPTER = MysqlAdapter()


def adapter() -> MysqlAdapter:
    """The ``mysql`` family's check adapter (the Engine's ``adapter`` hook)."""
    return ADAPTER
