"""The PostgreSQL check adapter: pg8000 over the tunnel's socket, TLS required, the lab database and app user.

Used by every engine of the ``postgresql`` family (``engine.adapter()``); the check flow (SSH hop, tunnel,
retries, staged ``.env`` upload) is engine-neutral and calls the hooks below.

Driver: pg8000 (pure Python). ``pg8000.native.Connection(sock=..., ssl_context=...)`` uses a socket it is given
as-is instead of connecting (tlocke/pg8000 ``src/pg8000/core.py`` ``_make_socket``, l.199-200 ``elif orig_sock is
not None: sock = orig_sock``), then sends PostgreSQL's SSLRequest on it and wraps it with the given
``ssl.SSLContext`` (l.218-234, ``ssl_context.wrap_socket(sock, server_hostname=host)``), and raises
``InterfaceError("Server refuses SSL")`` when the server answers "N" while a context was given (l.235-241). So it
runs over the same ``socketpair``/SSH-channel pump as the MySQL check: no local port is opened, the TCP connection
to the DB starts on the app VM. pg8000 sets no timeout on a socket it was given (its ``timeout`` only reaches
``socket.create_connection``), so ``connect`` sets one. ``host`` is only the TLS server name here.

Server errors arrive as ``pg8000.exceptions.DatabaseError`` whose first argument is the ErrorResponse's fields
(``core.py`` ``handle_ERROR_RESPONSE``, l.405-415: ``{"S": severity, "C": SQLSTATE, "M": message, ...}``);
``diagnose`` maps SQLSTATEs (PostgreSQL documentation, Appendix A "PostgreSQL Error Codes") to the lab's concepts.

Least privilege: the admin (a CREATEDB/CREATEROLE role, superuser not needed) logs into the maintenance database
``postgres`` and, on every create/update, converges: the lab database exists (``CREATE DATABASE`` on its own,
outside a transaction block), nobody but the app user (and the admin, its owner) may connect to it (``REVOKE ALL
... FROM PUBLIC``), the app user exists with LOGIN, no CREATEDB/CREATEROLE, no connection limit, no expiry, its
password reset, and holds exactly CONNECT, CREATE (schemas in the lab database only) and TEMPORARY on the lab
database. Everything is granted from the maintenance database (database ACLs live in the shared catalog), so the
admin needs no second session. The app user works in a schema of its own name, which the check creates as the app
user in the lab database: PostgreSQL's default ``search_path`` is ``"$user", public``, so unqualified table names
land there (PostgreSQL 15+ no longer lets PUBLIC create in ``public``). The app user owns nothing elsewhere.
pg_hba.conf names no database or user (the lab may rename both after the server's setup wrote it): the server's setup
takes CONNECT on ``postgres`` and ``template1`` from PUBLIC and gives it on ``postgres`` to the admin only
(``cluster_grants``), so the app user can enter only the lab database.

Passwords never travel in SQL: ``CREATE/ALTER ROLE ... PASSWORD`` is given a SCRAM-SHA-256 verifier computed here
(``scram_sha256_verifier``), which PostgreSQL stores as it is ("If the presented password string is already in
MD5-encrypted or SCRAM-encrypted format, then it is stored as-is", CREATE ROLE reference; verifier format
``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64, the pg_authid catalog page, RFC 5803). DDL
takes no bind parameters, so identifiers are validated and double-quoted, name literals validated and
single-quoted, and the verifier's alphabet checked: no input can add a statement. Error texts are built from the
server's fields and passed through ``redact``.

Import rule: standard library only at module level; pg8000/scramp and the check flow's types are imported inside the
functions that use them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import socket
import ssl
import time
import uuid
from typing import TYPE_CHECKING, Any

from engines.base import certificate_fingerprint

if TYPE_CHECKING:  # pragma: no cover - types only
    import pg8000.native

FAMILY = "postgresql"
SSL_MODES = ("require", "verify-ca", "verify-full")  # libpq's sslmode spellings the lab allows (tls_context)
MAINTENANCE_DB = "postgres"  # every cluster has it (initdb creates it); the admin logs into it
APPLICATION_NAME = "dblab-check"  # shows in pg_stat_activity while the check runs
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations (and RFC 7677's minimum)

# SQLSTATEs (PostgreSQL documentation, Appendix A "PostgreSQL Error Codes")
INVALID_AUTHORIZATION = "28000"  # no pg_hba.conf entry; role may not log in
INVALID_PASSWORD = "28P01"
INVALID_CATALOG_NAME = "3D000"  # database does not exist
INSUFFICIENT_PRIVILEGE = "42501"
DUPLICATE_DATABASE = "42P04"
DUPLICATE_OBJECT = "42710"
DEPENDENT_OBJECTS_STILL_EXIST = "2BP01"
TOO_MANY_CONNECTIONS = "53300"
ADMIN_SHUTDOWN = "57P01"
CRASH_SHUTDOWN = "57P02"
CANNOT_CONNECT_NOW = "57P03"  # starting up, shutting down, in recovery
CONNECTION_EXCEPTION_CLASS = "08"

# Names the check puts into SQL: a letter or underscore, then letters, digits, underscores (63 bytes: NAMEDATALEN-1).
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Role names PostgreSQL itself refuses, for every engine of the family (tried on PostgreSQL 15.18: `CREATE ROLE
# pg_admin` -> 'Role names starting with "pg_" are reserved'; public, none, current_user, session_user, current_role
# -> syntax error, reserved words), plus "postgres", the superuser initdb makes. An engine adds its own.
RESERVED_ROLE_PREFIX = "pg_"
RESERVED_ROLE_NAMES = frozenset({"postgres", "public", "none", "current_user", "session_user", "current_role", "pg_*"})


class ReservedRoles(frozenset):
    """Reserved role names; ``in`` is also true for any name starting with ``pg_`` (PostgreSQL reserves the prefix),
    so config's ``user.lower() in engine.reserved_users`` refuses those too."""

    def __contains__(self, name: object) -> bool:
        return frozenset.__contains__(self, name) or (isinstance(name, str) and name.startswith(RESERVED_ROLE_PREFIX))


def reserved_roles(*extra: str) -> ReservedRoles:
    """The family's reserved role names and an engine's own ``extra`` ones."""
    return ReservedRoles(RESERVED_ROLE_NAMES | set(extra))


_VERIFIER_RE = re.compile(r"^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$")


# --- SQL text ---------------------------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted identifier, after checking it is a plain lab name (no quoting tricks to escape)."""
    if not NAME_RE.match(name):
        raise ValueError("invalid PostgreSQL name (letters, digits and _, starting with a letter or _, ≤ 63)")
    return f'"{name}"'


def quote_name_literal(name: str) -> str:
    """A validated name as a string literal (for ``WHERE rolname = ...``)."""
    quote_ident(name)
    return f"'{name}'"


def scram_sha256_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677; format of pg_authid).

    SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations); StoredKey = SHA-256(HMAC(
    SaltedPassword, "Client Key")); ServerKey = HMAC(SaltedPassword, "Server Key"). The password is normalised with
    SASLprep (RFC 4013) as PostgreSQL does; scramp (pg8000's SCRAM library) provides it. A fresh random 16-byte
    salt unless one is given (a caller that needs a stable verifier derives the salt itself).
    """
    from scramp.utils import saslprep  # lazy: import rule

    try:
        normalised = saslprep(password)
    except Exception:  # noqa: BLE001 - PostgreSQL uses the raw bytes when SASLprep refuses the string
        normalised = password
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", normalised.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _verifier_literal(password: str) -> str:
    verifier = scram_sha256_verifier(password)
    if not _VERIFIER_RE.match(verifier):  # base64, digits, '$' and ':' only: nothing to escape
        raise ValueError("unexpected SCRAM verifier shape")
    return f"'{verifier}'"


# --- errors -----------------------------------------------------------------------------------------------------


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a server error raised by pg8000 (``None`` for anything else)."""
    fields = _fields(exc)
    code = fields.get("C") if fields else None
    return code if isinstance(code, str) else None


def _fields(exc: BaseException) -> dict[str, str] | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict):
        return args[0]
    return None


def server_error(exc: BaseException) -> BaseException | None:
    """The server's own error behind ``exc``, if any. pg8000 closes the connection when a login fails, and that
    close writes a Terminate message; when the server has already hung up (it does after a FATAL error), the write
    fails and pg8000 raises ``InterfaceError("network error")`` with the server's ``DatabaseError`` only as its
    ``__context__`` (core.py ``CoreConnection.__init__``: ``except BaseException as e: self.close(); raise e``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _fields(current) is not None:
            return current
        seen.add(id(current))
        current = current.__context__
    return None


def describe_error(exc: BaseException) -> str:
    """One line for a driver error: ``SQLSTATE 28P01: password authentication failed for user "app"`` for server
    errors (severity, message and detail only: no source file/line noise), ``Type: text`` otherwise."""
    fields = _fields(exc)
    if fields is None:
        return f"{type(exc).__name__}: {exc}"
    text = f"SQLSTATE {fields.get('C', '?')}: {fields.get('M', '')}"
    if fields.get("D"):
        text += f" ({fields['D']})"
    return text


def _refused_tls(exc: BaseException) -> bool:
    return type(exc).__name__ == "InterfaceError" and "refuses SSL" in str(exc)


def _is_tls_error(exc: BaseException) -> bool:
    """A TLS problem: the handshake's own error (pg8000 lets ``wrap_socket``'s exceptions through unwrapped, core.py
    l.218-241), a server that refuses TLS, or a session that is not encrypted. An ``ssl.SSLError`` *behind* pg8000's
    ``InterfaceError("network error")`` is not one: it is a read or write on an established session failing (e.g.
    ``SSLEOFError`` when the far end hung up), i.e. a dropped connection, which a retry may cure."""
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)) or _refused_tls(exc):
        return True
    return type(exc).__name__ == "TlsNotNegotiated"


# --- sessions ---------------------------------------------------------------------------------------------------


def tls_context(db: Any) -> ssl.SSLContext:
    """The check's TLS context from ``db.ssl_mode`` in either family's spelling: require/REQUIRED (encrypted, the
    certificate not verified: a self-signed one is reported by fingerprint instead), verify-ca/VERIFY_CA (chain
    checked against ``db.ssl_ca``), verify-full/VERIFY_IDENTITY (chain and the name ``db.hostname``)."""
    mode = str(getattr(db, "ssl_mode", "require")).lower().replace("_", "-")
    if mode in ("require", "required"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif mode in ("verify-ca", "verify-full", "verify-identity"):
        ctx = ssl.create_default_context(cafile=getattr(db, "ssl_ca", "") or None)
        ctx.check_hostname = mode != "verify-ca"
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        raise ValueError(f"TLS mode {mode!r} is not one the lab allows (require, verify-ca, verify-full)")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def connect(
    sock: socket.socket,
    db_target: Any,
    user: str,
    password: str,
    database: str | None,
    timeout: float,
    ssl_ctx: ssl.SSLContext | None = None,
) -> pg8000.native.Connection:
    """Log in over ``sock`` (one end of the tunnel) with TLS required; ``database`` None means the maintenance
    database (where the admin works). A session that is somehow not encrypted is closed and refused."""
    import pg8000.exceptions  # lazy: import rule
    import pg8000.native

    sock.settimeout(timeout)  # pg8000 leaves a given socket's timeout alone
    try:
        conn = pg8000.native.Connection(
            user,
            host=getattr(db_target, "hostname", "") or db_target.host,  # only the TLS server name (verify-full)
            database=database or MAINTENANCE_DB,
            password=password,
            ssl_context=ssl_ctx or tls_context(db_target),
            sock=sock,
            application_name=APPLICATION_NAME,
        )
    except pg8000.exceptions.InterfaceError as exc:
        refused = server_error(exc)  # the login's real answer, hidden behind a failed close (see server_error)
        if refused is not None and refused is not exc:
            raise refused from None
        raise
    if not isinstance(_tls_socket(conn), ssl.SSLSocket):
        with contextlib.suppress(Exception):
            conn.close()
        from components.envcheck import TlsNotNegotiated

        raise TlsNotNegotiated("session is not encrypted")
    return conn


def _tls_socket(conn: Any) -> Any:
    # pg8000 keeps the (TLS-wrapped) socket as CoreConnection._usock (core.py l.322, _make_socket's result); it has
    # no public accessor. The check reads TLS facts from it instead of asking the server (no round trip).
    return getattr(conn, "_usock", None)


def session_tls(conn: Any) -> tuple[str, str]:
    """(TLS version, cipher) of the session, from the client's TLS socket; ("", "") when unencrypted."""
    sock = _tls_socket(conn)
    if not isinstance(sock, ssl.SSLSocket):
        return "", ""
    cipher = sock.cipher()
    return sock.version() or "", cipher[0] if cipher else ""


def tls_fingerprint(conn: Any) -> str:
    """SHA-256 fingerprint of the server's certificate, ``AB:CD:...`` as ``openssl x509 -fingerprint -sha256``
    prints it (the DB VM logs it at boot, so a student can compare); "" when unencrypted."""
    return certificate_fingerprint(_tls_socket(conn))


def server_version(conn: Any) -> str:
    """``PostgreSQL <server_version>`` from the ParameterStatus the server sends at login (no query)."""
    version = getattr(conn, "parameter_statuses", {}).get("server_version", "")
    return f"PostgreSQL {version}".strip()


# --- the admin's work -------------------------------------------------------------------------------------------


def cluster_grants(admin_user: str) -> list[str]:
    """What the server's setup runs once, as the superuser, so pg_hba.conf needs no database or user names (which
    the lab may rename later): PUBLIC loses CONNECT on the maintenance database and on template1 (initdb grants it
    to PUBLIC), and the admin gets CONNECT on the maintenance database back. The lab database is closed to PUBLIC
    by the admin on every run (``app_user_statements``); template0 takes no connections at all (datallowconn false).
    CREATE DATABASE needs no CONNECT on its template. Run by the DB VM's first boot (dbvm-postgresql.sh.j2) and by
    labctl local's PostgreSQL (labctl/local/servers.py), so both behave alike."""
    return [
        f"REVOKE CONNECT ON DATABASE {MAINTENANCE_DB}, template1 FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {MAINTENANCE_DB} TO {quote_ident(admin_user)}",
    ]


def app_user_statements(acc: Any, existing_roles: set[str], database_exists: bool) -> list[str]:
    """The admin's SQL, in order; each item is sent as one simple-protocol query.

    Item 0 (when the database is missing) is ``CREATE DATABASE`` alone: it may not run inside a transaction block,
    and several statements in one query form one. The rest is one batch (one round trip, all or nothing). The
    password appears only as a SCRAM verifier.
    """
    app, db = quote_ident(acc.app_user), quote_ident(acc.db_name)
    verifier = _verifier_literal(acc.app_password)
    items: list[str] = []
    if not database_exists:
        items.append(f"CREATE DATABASE {db}")
    batch: list[str] = []
    previous = getattr(acc, "previous_app_user", None)
    if previous and previous not in (acc.app_user, acc.admin_user) and previous in existing_roles:
        prev = quote_ident(previous)
        if acc.app_user not in existing_roles:
            # A rename keeps what the old user made (its schema and tables); its password is reset below.
            batch.append(f"ALTER ROLE {prev} RENAME TO {app}")
            existing_roles = (existing_roles - {previous}) | {acc.app_user}
        else:
            batch += [f"REVOKE ALL ON DATABASE {db} FROM {prev}", f"ALTER ROLE {prev} NOLOGIN"]
    attributes = "LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity'"
    if acc.app_user in existing_roles:
        batch.append(f"ALTER ROLE {app} WITH {attributes} PASSWORD {verifier}")
    else:
        batch.append(f"CREATE ROLE {app} WITH {attributes} PASSWORD {verifier}")
    batch += [
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        f"REVOKE ALL ON DATABASE {db} FROM {app}",
        f"GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {db} TO {app}",
    ]
    items.append(";\n".join(batch))
    return items


def ensure_app_user(conn: Any, acc: Any) -> None:
    """Converge the lab database and the app user (see the module docstring), as the admin, in three round trips:
    what exists, ``CREATE DATABASE`` when missing, the batch. A previous app user (renamed in config) becomes the
    new one when that does not exist yet, otherwise it loses CONNECT and LOGIN and is dropped if it owns nothing."""
    names = [acc.app_user] + ([acc.previous_app_user] if getattr(acc, "previous_app_user", None) else [])
    roles_in = ", ".join(quote_name_literal(n) for n in names)
    rows = conn.run(
        f"SELECT 'role', rolname FROM pg_roles WHERE rolname IN ({roles_in}) "
        f"UNION ALL SELECT 'db', datname FROM pg_database WHERE datname = {quote_name_literal(acc.db_name)}"
    )
    roles = {str(name) for kind, name in rows if kind == "role"}
    has_db = any(kind == "db" for kind, _ in rows)
    items = app_user_statements(acc, roles, has_db)
    if not has_db:
        try:
            conn.run(items.pop(0))
        except Exception as exc:
            if sqlstate(exc) != DUPLICATE_DATABASE:  # created meanwhile by a concurrent run: fine
                raise
    conn.run(items[0])
    previous = getattr(acc, "previous_app_user", None)
    if previous and previous in roles and acc.app_user in roles and previous not in (acc.app_user, acc.admin_user):
        try:
            conn.run(f"DROP ROLE IF EXISTS {quote_ident(previous)}")
        except Exception as exc:  # it still owns objects in the lab database: it keeps them, without LOGIN
            if sqlstate(exc) != DEPENDENT_OBJECTS_STILL_EXIST:
                raise


# --- the app user's check ---------------------------------------------------------------------------------------


def probe_app(conn: Any, db_name: str) -> dict[str, object]:
    """As the app user, connected to the lab database, in two round trips: ``SELECT 1, current_user`` (timed: the
    latency), then one batch that makes the user's own schema if missing and creates, writes and drops a table in
    it (one implicit transaction: a failure leaves nothing behind)."""
    t0 = time.perf_counter()
    rows = conn.run("SELECT 1, current_user")
    latency_ms = (time.perf_counter() - t0) * 1000
    if not rows or rows[0][0] != 1:
        raise RuntimeError("SELECT 1 did not return 1")
    user = str(rows[0][1])
    schema = quote_ident(user)
    table = f"{schema}.{quote_ident('_dblab_check_' + uuid.uuid4().hex[:12])}"
    conn.run(
        f"CREATE SCHEMA IF NOT EXISTS {schema};\n"
        f"CREATE TABLE {table} (id integer PRIMARY KEY, note varchar(32));\n"
        f"INSERT INTO {table} VALUES (1, 'dblab check');\n"
        f"DROP TABLE {table}"
    )
    tls_version, tls_cipher = session_tls(conn)
    return {
        "server_version": server_version(conn),
        "current_user": user,
        "database": db_name,
        "latency_ms": round(latency_ms, 2),
        "tls_version": tls_version,
        "tls_cipher": tls_cipher,
        "tls_fingerprint": tls_fingerprint(conn),
    }


# --- diagnosis --------------------------------------------------------------------------------------------------


def diagnose(hop: str, exc: BaseException, req: Any) -> Any:
    """The PostgreSQL meaning of a failure at the admin or app hop, as a ``Diagnosis``; None for the other hops
    (SSH, forward, SFTP: the generic diagnosis applies). Messages name the hop, the cause and the lab concept;
    secrets are redacted from the server's text."""
    from components import envcheck as check  # lazy: import rule (and the flow's own types)

    if hop not in (check.HOP_ADMIN, check.HOP_APP):
        return None
    db, acc = req.db, req.accounts
    admin = hop == check.HOP_ADMIN
    who = acc.admin_user if admin else acc.app_user
    database = MAINTENANCE_DB if admin else acc.db_name
    exc = server_error(exc) or exc  # the server's answer when pg8000 hid it behind a failed close
    detail = check.redact(describe_error(exc), acc.secrets)
    where = f"PostgreSQL hop (login as '{who}' to database '{database}' at {db.host}:{db.port} over the tunnel, TLS "
    where += f"{db.ssl_mode})"
    subnet = (
        "pg_hba.conf on the DB must allow the app subnet's CIDR with the line "
        "`hostssl all all <app subnet CIDR> scram-sha-256` (and the admin from the VCN CIDR; no database or user "
        "names: the CONNECT privilege decides which database a role may enter); only hostssl + scram-sha-256 lines "
        "belong there"
    )

    def d(cause: str, retryable: bool, message: str) -> Any:
        return check.Diagnosis(hop, cause, retryable, f"{message} [{detail}]")

    code = sqlstate(exc)
    message = (_fields(exc) or {}).get("M", "")
    if _is_tls_error(exc) or (code == INVALID_AUTHORIZATION and "no encryption" in message):
        why = (
            "the server refuses TLS"
            if _refused_tls(exc) or type(exc).__name__ == "TlsNotNegotiated" or code == INVALID_AUTHORIZATION
            else "the TLS handshake failed"
        )
        return d(
            "tls",
            False,
            f"{where}: {why}. TLS settings: the lab requires an encrypted session (sslmode {db.ssl_mode}); the DB "
            "needs ssl = on with a certificate (the DB VM makes a self-signed one at boot; its SHA-256 fingerprint "
            "is what the check reports), and for verify-ca/verify-full the CA bundle must match the certificate "
            f"and, for verify-full, its name must be {db.hostname}",
        )
    if code == INVALID_PASSWORD:
        what = (
            "check dbAdminUser and dbPassword (the DB's admin credentials)"
            if admin
            else "the app user's password was just set by this check; was it changed by someone else meanwhile?"
        )
        return d("access-denied", False, f"{where}: password authentication failed — credentials: {what}")
    if code == INVALID_AUTHORIZATION:
        if "pg_hba" in message:
            return d(
                "host-not-allowed", False, f"{where}: no pg_hba.conf entry lets '{who}' in from the app VM. {subnet}"
            )
        return d("access-denied", False, f"{where}: '{who}' may not log in (role missing or NOLOGIN?)")
    if code == INVALID_CATALOG_NAME:
        if admin:
            fix = f"the admin logs into the maintenance database '{MAINTENANCE_DB}', which every cluster has"
        else:
            fix = f"the lab database '{acc.db_name}' was created by the admin a moment ago; was it dropped meanwhile?"
        return d("no-database", False, f"{where}: database '{database}' does not exist — {fix}")
    if code == INSUFFICIENT_PRIVILEGE:
        if admin:
            fix = (
                "the admin needs CREATEDB and CREATEROLE (superuser not needed) and must own the lab database "
                f"'{acc.db_name}' to grant on it"
            )
        else:
            fix = (
                f"the app user needs CONNECT and CREATE on the lab database '{acc.db_name}' (granted by the admin on "
                "every run; REVOKE ... FROM PUBLIC keeps everyone else out)"
            )
        return d("privileges", False, f"{where}: missing privilege — {fix}")
    if code == TOO_MANY_CONNECTIONS:
        return d(
            "too-many-connections",
            True,
            f"{where}: too many connections — the server's max_connections or the role's CONNECTION LIMIT is used "
            "up; close idle sessions (psql, the app, pgAdmin) or wait",
        )
    if code in (CANNOT_CONNECT_NOW, ADMIN_SHUTDOWN, CRASH_SHUTDOWN) or (code or "").startswith(
        CONNECTION_EXCEPTION_CLASS
    ):
        return d("not-ready", True, f"{where}: the DB is starting, stopping or recovering; retrying")
    if code is not None:
        return d("sql", False, f"{where}: the DB refused a statement")
    if isinstance(exc, (OSError, EOFError)) or isinstance(exc.__cause__, (OSError, EOFError)):
        return d(
            "not-ready",
            True,
            f"{where}: the DB dropped the connection (still starting?). The private subnet's security list and the "
            f"DB's firewall must allow TCP {db.port} from the app subnet, and the server must listen on its private IP",
        )
    return d("protocol", False, f"{where}: the PostgreSQL session failed")


class PostgresAdapter:
    """The hooks as one object (``engine.adapter()`` returns ``ADAPTER``)."""

    family = FAMILY
    ssl_modes = SSL_MODES
    maintenance_db = MAINTENANCE_DB
    # The flow may pre-open the app user's session with a context whose wrap_socket() holds the login back until the
    # admin is done: pg8000 uses nothing of the context but wrap_socket(sock, server_hostname=...) (core.py l.234),
    # then sends the startup (login) message. No host-blocking counter on PostgreSQL's side, unlike MySQL's
    # max_connect_errors, punishes an abandoned pre-opened session.
    gated_login = True

    connect = staticmethod(connect)
    ensure_app_user = staticmethod(ensure_app_user)
    probe_app = staticmethod(probe_app)
    server_version = staticmethod(server_version)
    session_tls = staticmethod(session_tls)
    tls_fingerprint = staticmethod(tls_fingerprint)
    diagnose = staticmethod(diagnose)
    tls_context = staticmethod(tls_context)

    @property
    def error_types(self) -> tuple[type[BaseException], ...]:
        import pg8000.exceptions  # lazy: import rule

        return (pg8000.exceptions.Error,)


ADAPTER = PostgresAdapter()


def adapter() -> PostgresAdapter:
    """The ``postgresql`` family's check adapter (the Engine's ``adapter`` hook)."""
    return ADAPTER
