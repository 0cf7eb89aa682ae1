"""The EnvFile provider's pure logic: dotenv rendering, SQL for the app user, failure diagnosis, file helpers.

No servers and no mocks: real exception objects go into ``diagnose``; real files into the file helpers.
"""

from __future__ import annotations

import io
import socket
import ssl
import stat
from pathlib import Path

import paramiko
import pymysql
import pytest
from dotenv import dotenv_values

import engines
from components import envcheck
from engines import mysqlcheck

AWKWARD = [
    "plain",
    "with space",
    "sq'uote",
    'dq"uote',
    "ha#sh",
    "# leading hash",
    "dollar$sign and $VAR",
    "back\\slash",
    "trailing backslash\\",
    "\\'escaped-looking",
    "eq=uals==",
    "multi\nline\r\nvalue",
    "tab\there",
    "  padded  ",
    "ünïcødé €",
    "`back`ticks;|&<>",
    "",
    "$ {not-a-var} and {braces}",
    "Adm1n 'q\" #h $d \\b =e!",
]


def _request(**over: object) -> envcheck.CheckRequest:
    accounts = envcheck.Accounts(
        db_name="lab",
        admin_user="admin",
        admin_password="S3cr3t'Admin#pw",
        app_user="lab_app",
        app_password="App\\Pa$$ word=1",
    )
    req = envcheck.CheckRequest(
        ssh=envcheck.SshTarget("203.0.113.10", 22, "opc", ("/k/id_ed25519",), Path("/p/.dblab_known_hosts")),
        db=envcheck.DbTarget("10.0.2.15", 3306, "labdb.private.labvcn.oraclevcn.com"),
        accounts=accounts,
        timeout_s=60,
    )
    for k, v in over.items():
        object.__setattr__(req, k, v)
    return req


# --- dotenv -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolate", [True, False])
def test_every_awkward_value_survives_a_python_dotenv_round_trip(interpolate: bool):
    values = {f"K{i}": v for i, v in enumerate(AWKWARD)}
    text = envcheck.render_dotenv(values)
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=interpolate)
    assert parsed == values


@pytest.mark.parametrize("name", sorted(engines.ENGINES))
def test_env_values_hold_the_same_eight_keys_for_the_app_user_whatever_the_engine(name):
    engine = engines.get(name)
    values = envcheck.env_values(
        engine=engine,
        db_host="10.0.2.15",
        db_port=engine.port,
        db_name="lab",
        app_user="lab_app",
        app_password="pw'1",
        ssl_mode=engine.ssl_mode,
    )
    assert (
        tuple(values)
        == envcheck.DOTENV_KEYS
        == (
            "DB_ENGINE",
            "DB_HOST",
            "DB_PORT",
            "DB_NAME",
            "DB_USER",
            "DB_PASSWORD",
            "DB_SSL_MODE",
            "DATABASE_URL",
        )
    )
    assert values["DB_ENGINE"] == name and values["DB_USER"] == "lab_app" and values["DB_PORT"] == str(engine.port)
    assert values["DATABASE_URL"].startswith(f"{engine.url_scheme}://lab_app:pw%271@10.0.2.15:{engine.port}/lab?")
    parsed = dotenv_values(stream=io.StringIO(envcheck.render_dotenv(values)))
    assert parsed == values


def test_variable_syntax_is_refused_without_echoing_the_value():
    secret = "abc${HOME}xyz"
    with pytest.raises(ValueError) as err:
        envcheck.render_dotenv({"DB_PASSWORD": secret})
    assert "DB_PASSWORD" in str(err.value) and secret not in str(err.value)
    assert envcheck.dotenv_problem("DB_PASSWORD", "a$b{c}") is None  # only ${...} is expanded
    assert envcheck.dotenv_problem("DB_PASSWORD", "nul\x00") is not None


def test_bad_dotenv_key_is_refused():
    with pytest.raises(ValueError):
        envcheck.render_dotenv({"db-host": "x"})


# --- files --------------------------------------------------------------------------------------------------


def test_write_private_file_is_0600_atomic_and_replaces_a_world_readable_file(tmp_path: Path):
    target = tmp_path / "sub" / ".env"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    envcheck.write_private_file(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == [".env"]  # no temp file left behind


def test_remove_file_reports_whether_anything_was_there(tmp_path: Path):
    f = tmp_path / ".env"
    f.write_text("x")
    assert envcheck.remove_file(f) is True
    assert envcheck.remove_file(f) is False


def test_key_paths_default_to_existing_usual_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert envcheck.resolve_key_paths("") == []
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("k")
    (tmp_path / ".ssh" / "id_ed25519").write_text("k")
    assert envcheck.resolve_key_paths("") == [str(tmp_path / ".ssh/id_ed25519"), str(tmp_path / ".ssh/id_rsa")]
    assert envcheck.resolve_key_paths("~/lab_key") == [str(tmp_path / "lab_key")]


def test_known_hosts_lives_next_to_the_env_and_forget_removes_one_entry(tmp_path: Path):
    kh = envcheck.known_hosts_path(tmp_path / "proj" / ".env")
    assert kh == (tmp_path / "proj" / envcheck.KNOWN_HOSTS_NAME).resolve()
    kh.parent.mkdir()
    kh.write_text("[10.0.0.1]:2222 ssh-ed25519 AAAA\n10.0.0.1 ssh-ed25519 BBBB\n[10.0.0.12]:2222 ssh-ed25519 CC\n")
    assert envcheck.forget_host_key(kh, "10.0.0.1", 2222) is True
    assert kh.read_text() == "10.0.0.1 ssh-ed25519 BBBB\n[10.0.0.12]:2222 ssh-ed25519 CC\n"
    assert envcheck.forget_host_key(kh, "10.0.0.1", 2222) is False
    assert envcheck.forget_host_key(tmp_path / "missing", "10.0.0.1", 22) is False


@pytest.mark.parametrize(
    ("remote_dir", "expected"),
    [("/home/opc/app", "/home/opc/app/.env"), ("~/app", "app/.env"), ("~", ".env"), ("app/", "app/.env")],
)
def test_remote_env_path(remote_dir: str, expected: str):
    assert envcheck.remote_env_path(remote_dir) == expected


# --- SQL ----------------------------------------------------------------------------------------------------


def test_app_user_gets_a_fixed_privilege_list_on_its_database_only():
    acc = envcheck.Accounts("lab", "admin", "a", "lab_app", "p'w%s")
    statements = mysqlcheck.app_user_statements(acc)
    sql = [s for s, _ in statements]
    grant = next(s for s in sql if s.startswith("GRANT"))
    assert grant == (
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, "
        "REFERENCES ON `lab`.* TO 'lab_app'@'%%'"
    )
    assert not any("ALL" in s and "REVOKE" not in s for s in sql)
    assert not any("*.*" in s for s in sql)
    assert "CREATE DATABASE IF NOT EXISTS `lab`" in sql
    assert all("REQUIRE SSL" in s for s in sql if s.startswith(("CREATE USER", "ALTER USER")))
    # the password is only ever a bound parameter, never part of the statement text
    assert all("p'w" not in s for s in sql)
    assert [p for _, p in statements if p] == [("p'w%s",), ("p'w%s",)]


def test_renamed_app_user_is_dropped_but_never_the_admin():
    renamed = mysqlcheck.app_user_statements(envcheck.Accounts("lab", "admin", "a", "new_app", "p", "old_app"))
    assert renamed[0] == ("DROP USER IF EXISTS 'old_app'@'%%'", ())
    for previous in ("admin", "new_app", None):
        sql = mysqlcheck.app_user_statements(envcheck.Accounts("lab", "admin", "a", "new_app", "p", previous))
        assert not any(s.startswith("DROP") for s, _ in sql)


@pytest.mark.parametrize(
    ("db_name", "user"), [("lab`; DROP", "app"), ("lab", "app'@'%"), ("1lab", "app"), ("lab", "x" * 33), ("", "a")]
)
def test_unsafe_names_never_reach_sql(db_name: str, user: str):
    with pytest.raises(ValueError):
        mysqlcheck.app_user_statements(envcheck.Accounts(db_name, "admin", "a", user, "p"))


def test_accounts_repr_hides_passwords():
    acc = envcheck.Accounts("lab", "admin", "AdminPw!", "lab_app", "AppPw!")
    assert "AdminPw!" not in repr(acc) and "AppPw!" not in repr(acc)


# --- TLS contexts -------------------------------------------------------------------------------------------


def test_tls_modes():
    required = mysqlcheck.tls_context(envcheck.DbTarget("10.0.0.5", 3306, "db", "REQUIRED"))
    assert required.verify_mode == ssl.CERT_NONE and not required.check_hostname
    verify_ca = mysqlcheck.tls_context(envcheck.DbTarget("10.0.0.5", 3306, "db", "VERIFY_CA"))
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    identity = mysqlcheck.tls_context(envcheck.DbTarget("10.0.0.5", 3306, "db", "VERIFY_IDENTITY"))
    assert identity.verify_mode == ssl.CERT_REQUIRED and identity.check_hostname
    assert required.minimum_version >= ssl.TLSVersion.TLSv1_2


# --- diagnosis ----------------------------------------------------------------------------------------------


def _ssl_wrapped_2003() -> pymysql.err.OperationalError:
    exc = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db' ([SSL] record layer failure)")
    exc.original_exception = ssl.SSLError(1, "[SSL] record layer failure")
    return exc


def _ed() -> paramiko.PKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


CASES = [
    # hop, exception, cause, retryable, words the message must contain
    (
        envcheck.HOP_SSH,
        ConnectionRefusedError(111, "Connection refused"),
        "refused",
        True,
        ["SSH hop", "opc@203.0.113.10:22", "security list", "adminCidr", "internet gateway"],
    ),
    (envcheck.HOP_SSH, TimeoutError("timed out"), "timeout", True, ["SSH hop", "timed out", "adminCidr"]),
    (envcheck.HOP_SSH, paramiko.SSHException("Error reading SSH protocol banner"), "timeout", True, ["SSH hop"]),
    (envcheck.HOP_SSH, OSError(113, "No route to host"), "unreachable", True, ["unreachable", "security list"]),
    (
        envcheck.HOP_SSH,
        paramiko.AuthenticationException("Authentication failed."),
        "auth",
        False,
        ["rejected the key", "sshPrivateKeyPath", "sshPublicKey", "/k/id_ed25519"],
    ),
    (
        envcheck.HOP_SSH,
        paramiko.PasswordRequiredException("private key file is encrypted"),
        "key",
        False,
        ["passphrase", "ssh-agent"],
    ),
    (envcheck.HOP_SSH, socket.gaierror(-2, "Name or service not known"), "dns", False, ["does not resolve"]),
    (
        envcheck.HOP_FORWARD,
        paramiko.ChannelException(2, "Connect failed"),
        "refused",
        True,
        [
            "forward hop",
            "10.0.2.15:3306",
            "private subnet's security list must allow TCP 3306 from the app (public) subnet CIDR",
        ],
    ),
    (
        envcheck.HOP_FORWARD,
        paramiko.SSHException("Timeout opening channel."),
        "timeout",
        True,
        ["forward hop", "timed out", "security list"],
    ),
    (
        envcheck.HOP_FORWARD,
        paramiko.ChannelException(1, "Administratively prohibited"),
        "forward-prohibited",
        False,
        ["AllowTcpForwarding"],
    ),
    (
        envcheck.HOP_ADMIN,
        pymysql.err.OperationalError(1045, "Access denied for user 'admin'@'10.0.1.5'"),
        "access-denied",
        False,
        ["MySQL hop", "'admin'", "credentials", "dbAdminUser and dbPassword"],
    ),
    (
        envcheck.HOP_APP,
        pymysql.err.OperationalError(1045, "Access denied for user 'lab_app'@'10.0.1.5'"),
        "access-denied",
        False,
        ["'lab_app'", "credentials"],
    ),
    (
        envcheck.HOP_ADMIN,
        pymysql.err.OperationalError(2026, "SSL is required but the server doesn't support it"),
        "tls",
        False,
        ["does not offer TLS", "TLS settings"],
    ),
    (envcheck.HOP_ADMIN, envcheck.TlsNotNegotiated("session is not encrypted"), "tls", False, ["TLS settings"]),
    (envcheck.HOP_ADMIN, _ssl_wrapped_2003(), "tls", False, ["handshake failed", "TLS settings"]),
    (
        envcheck.HOP_ADMIN,
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        "not-ready",
        True,
        ["still starting"],
    ),
    (
        envcheck.HOP_APP,
        pymysql.err.OperationalError(1142, "CREATE command denied"),
        "privileges",
        False,
        ["create and drop tables in 'lab'"],
    ),
    (
        envcheck.HOP_ADMIN,
        pymysql.err.OperationalError(1227, "Access denied; you need CREATE USER"),
        "privileges",
        False,
        ["CREATE USER and GRANT OPTION"],
    ),
    (envcheck.HOP_SFTP, PermissionError(13, "Permission denied"), "sftp", False, ["SFTP", "writable"]),
]


@pytest.mark.parametrize(("hop", "exc", "cause", "retryable", "words"), CASES)
def test_diagnose_names_the_hop_cause_and_concept(hop, exc, cause, retryable, words):
    diagnosis = envcheck.diagnose(hop, exc, _request())
    assert (diagnosis.hop, diagnosis.cause, diagnosis.retryable) == (hop, cause, retryable)
    for word in words:
        assert word in diagnosis.message


def test_bad_host_key_names_the_file_and_line_and_is_final():
    diagnosis = envcheck.diagnose(
        envcheck.HOP_SSH, paramiko.BadHostKeyException("203.0.113.10", _ed(), _ed()), _request()
    )
    assert diagnosis.cause == "host-key" and not diagnosis.retryable
    assert "/p/.dblab_known_hosts" in diagnosis.message and "203.0.113.10" in diagnosis.message


def test_diagnosis_never_carries_a_password_from_the_exception_text():
    req = _request()
    leaky = pymysql.err.OperationalError(
        1064, f"syntax error near '{req.accounts.app_password}' and {req.accounts.admin_password!r}"
    )
    message = envcheck.diagnose(envcheck.HOP_ADMIN, leaky, req).message
    for secret in req.accounts.secrets:
        assert secret not in message
        assert repr(secret)[1:-1] not in message
    assert "***" in message


def test_check_failed_message_says_whether_it_gave_up_or_failed_fast():
    diagnosis = envcheck.Diagnosis("ssh", "refused", True, "SSH hop: refused")
    assert "gave up after 7 attempts in 12.3 s" in str(envcheck.CheckFailed(diagnosis, 7, 12.34, timed_out=True))
    assert "not retried" in str(envcheck.CheckFailed(diagnosis, 1, 0.2, timed_out=False))


def test_backoff_grows_with_jitter_and_is_capped():
    for attempt in range(1, 12):
        ceiling = min(envcheck.BACKOFF_CAP_S, envcheck.BACKOFF_BASE_S * 2 ** (attempt - 1))
        delays = {envcheck._backoff(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_redact_handles_overlapping_secrets():
    assert envcheck.redact("x abcdef y abc z", ["abc", "abcdef", ""]) == "x *** y *** z"
    assert envcheck.redact("pw 'it\\'s' here", ["it's"]) == "pw '***' here"


class _Greeting:
    """What ``server_version`` reads from a session: the version string of its login greeting."""

    def __init__(self, version: str) -> None:
        self.version = version

    def get_server_info(self) -> str:
        return self.version


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [
        ("5.5.5-10.11.19-MariaDB-0+deb12u1", "10.11.19-MariaDB-0+deb12u1"),  # MariaDB < 11: replication prefix
        ("11.4.2-MariaDB", "11.4.2-MariaDB"),
        ("8.4.3-cloud", "8.4.3-cloud"),  # MySQL HeatWave
        ("5.5.5-something-else", "5.5.5-something-else"),  # only MariaDB's prefix is dropped
    ],
)
def test_server_version_reads_like_select_version(greeting: str, expected: str):
    assert mysqlcheck.server_version(_Greeting(greeting)) == expected


class _SilentAdapter:
    """An adapter that claims no error: the generic DB-hop meaning must apply."""

    def diagnose(self, hop, exc, req):
        return None


@pytest.mark.parametrize(
    ("exc", "cause", "retryable"),
    [
        (ssl.SSLError("handshake failure"), "tls", False),
        (envcheck.TlsNotNegotiated("session is not encrypted"), "tls", False),
        (ConnectionResetError("reset by peer"), "not-ready", True),
        (ValueError("S3cr3t'Admin#pw rejected"), "sql", False),
    ],
)
def test_the_db_hops_fall_back_to_the_generic_meaning_when_the_adapter_claims_nothing(exc, cause, retryable):
    diagnosis = envcheck.diagnose(envcheck.HOP_ADMIN, exc, _request(), _SilentAdapter())
    assert (diagnosis.hop, diagnosis.cause, diagnosis.retryable) == (envcheck.HOP_ADMIN, cause, retryable)
    assert diagnosis.message.startswith("DB hop (login as 'admin' to 10.0.2.15:3306")
    assert "S3cr3t" not in diagnosis.message  # the adapter's silence does not leak the password either


def test_the_request_engine_picks_the_adapter():
    assert envcheck.adapter_of(_request()).family == engines.get(engines.DEFAULT).family
    pg = next(e for e in engines.ENGINES.values() if e.family == "postgresql")
    assert envcheck.adapter_of(_request(engine=pg.name)).family == "postgresql"
    with pytest.raises(KeyError, match="known: "):
        envcheck.adapter_of(_request(engine="no-such-engine"))


@pytest.mark.parametrize("engine", sorted(engines.ENGINES))
def test_a_forward_failure_names_the_engines_own_lab_concept(engine: str):
    """The forward hop's message ends with the engine's lab concept (a DB VM's firewalld, a managed DB's private
    endpoint), not only the security list every engine shares."""
    spec = engines.ENGINES[engine]
    req = _request(engine=engine)
    diag = envcheck.diagnose(envcheck.HOP_FORWARD, paramiko.ChannelException(2, "Connect failed"), req)
    assert spec.lab_concepts, f"{engine} has no lab_concepts"
    assert f"Lab concept ({engine}): {spec.lab_concepts}" in diag.message
    assert "security list" in diag.message


def test_a_db_vm_forward_failure_points_at_its_firewall():
    diag = envcheck.diagnose(envcheck.HOP_FORWARD, TimeoutError("timed out"), _request(engine="mysql-vm"))
    assert "firewalld" in diag.message and diag.cause == "timeout"


@pytest.mark.parametrize("engine", sorted(n for n, e in engines.ENGINES.items() if e.family == "mysql"))
def test_a_mysql_family_failure_names_the_engines_own_server(engine: str):
    """The MySQL-family adapter serves MariaDB too: its DB-hop messages name the engine's server
    (``Engine.server_label``), not always MySQL."""
    label = engines.ENGINES[engine].server_label
    denied = pymysql.err.OperationalError(1045, "Access denied for user 'admin'@'10.0.1.5'")
    diag = envcheck.diagnose(envcheck.HOP_ADMIN, denied, _request(engine=engine))
    assert label and f"{label} hop (login as 'admin'" in diag.message
    assert diag.cause == "access-denied"
    if label != "MySQL":
        assert "MySQL hop" not in diag.message


def test_mariadb_vm_says_mariadb_and_the_mysql_engines_keep_mysql():
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    labels = {
        name: envcheck.diagnose(envcheck.HOP_APP, lost, _request(engine=name)).message.split(" hop", 1)[0]
        for name in ("mysql", "mysql-vm", "mariadb-vm")
    }
    assert labels == {"mysql": "MySQL", "mysql-vm": "MySQL", "mariadb-vm": "MariaDB"}
