"""The connection check's shape on the wire, against real servers on 127.0.0.1 (MariaDB with TLS, OpenSSH sshd).

What is counted is counted by the DB itself (its general query log: one ``Query`` line per statement batch the
client sent, i.e. per round trip), so the counts do not depend on timing. The staged ``.env`` is observed on the
"VM"'s file system (sshd's SFTP writes into a temp dir of this test).
"""

from __future__ import annotations

import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from components import envcheck
from engines import mysqlcheck
from tests.servers import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    LOOPBACK,
    SERVER_HOSTNAME,
    MariaDBServer,
    SshServer,
    loopback_lab,
)

APP_PASSWORD = "Live 'pw' #1 $ \\ ="


@dataclass
class Servers:
    base: Path
    db: MariaDBServer
    ssh: SshServer
    key: Path

    def request(self, tmp: Path, **accounts: str) -> envcheck.CheckRequest:
        acc: dict[str, Any] = {
            "db_name": "lab",
            "admin_user": ADMIN_USER,
            "admin_password": ADMIN_PASSWORD,
            "app_user": "lab_app",
            "app_password": APP_PASSWORD,
        }
        acc.update(accounts)
        return envcheck.CheckRequest(
            ssh=envcheck.SshTarget(LOOPBACK, self.ssh.port, "root", (str(self.key),), tmp / ".dblab_known_hosts"),
            db=envcheck.DbTarget(LOOPBACK, self.db.port, SERVER_HOSTNAME, "REQUIRED"),
            accounts=envcheck.Accounts(**acc),
            timeout_s=20,
        )

    def general_log(self, run: Callable[[], object], path: Path) -> dict[int, list[tuple[str, str]]]:
        """Run ``run`` with the DB's general log on; return {connection id: [(command, argument), ...]}."""
        admin = self.db.admin_connect()
        try:
            with admin.cursor() as cur:
                cur.execute("SET GLOBAL general_log_file = %s", (str(path),))
                cur.execute("SET GLOBAL general_log = 1")
            own = admin.thread_id()
            try:
                run()
            finally:
                with admin.cursor() as cur:
                    cur.execute("SET GLOBAL general_log = 0")
        finally:
            admin.close()
        sessions: dict[int, list[tuple[str, str]]] = {}
        entry = re.compile(r"^(?:\d{6}\s+[\d:]+)?\s+(\d+) (\w+)\t?(.*)$")
        target: list[tuple[str, str]] | None = None  # the session the last entry belongs to (None: our own)
        for line in path.read_text().splitlines()[3:]:
            m = entry.match(line)
            if m:
                conn_id = int(m.group(1))
                target = None if conn_id == own else sessions.setdefault(conn_id, [])
                if target is not None:
                    target.append((m.group(2), m.group(3)))
            elif target and target[-1][0] == "Query":  # continuation of a multi-line query
                target[-1] = ("Query", target[-1][1] + "\n" + line)
        return sessions


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with loopback_lab(tmp_path_factory.mktemp("live"), key_comment="dblab-test") as s:
        yield Servers(s.base, s.db, s.ssh, s.user_key)


def _remote_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _wait_for_staged(directory: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        staged = [n for n in _remote_files(directory) if n.startswith(".env.tmp-")]
        # The stager creates the file, chmods it 0600, then writes: a non-empty file is past the chmod (an empty
        # one may still show the server's umask mode for a moment, with nothing in it to read).
        if staged and (directory / staged[0]).stat().st_size > 0:
            return staged[0]
        time.sleep(0.01)
    raise AssertionError("the .env was never staged")


# --- round trips, counted by the server --------------------------------------------------------------------


def test_each_login_is_one_batch_of_sql_no_set_names_and_tls_read_from_the_socket(servers: Servers, tmp_path: Path):
    req = servers.request(tmp_path)
    envcheck.run_check(req)  # the user exists; the counted run is the steady state an update sees
    result: dict[str, Any] = {}

    def run() -> None:
        result["report"], _ = envcheck.run_check(req)

    sessions = servers.general_log(run, tmp_path / "general.log")
    report: envcheck.CheckReport = result["report"]
    logins = {cid: cmds for cid, cmds in sessions.items() if cmds and cmds[0][0] == "Connect"}
    by_user = {cmds[0][1].split("@", 1)[0]: cmds for cmds in logins.values()}
    assert len(logins) == 2 and set(by_user) == {ADMIN_USER, "lab_app"}, sessions  # one session each
    for cmds in by_user.values():
        assert "SSL/TLS" in cmds[0][1]
    admin_queries = [arg for cmd, arg in by_user[ADMIN_USER] if cmd == "Query"]
    app_queries = [arg for cmd, arg in by_user["lab_app"] if cmd == "Query"]
    assert len(admin_queries) == 1  # database, user, password, grants: one round trip
    assert admin_queries[0].count(";") == 4 and "GRANT SELECT" in admin_queries[0]
    assert app_queries[0] == "SELECT 1, CURRENT_USER()"  # the timed round trip
    assert len(app_queries) == 2 and "CREATE TABLE" in app_queries[1] and "DROP TABLE" in app_queries[1]
    everything = " ".join(admin_queries + app_queries)
    assert "SET NAMES" not in everything and "Ssl_cipher" not in everything and "VERSION()" not in everything
    # what the client read from its own TLS socket and the greeting
    assert report.tls_version.startswith("TLS") and report.tls_cipher
    assert "MariaDB" in report.server_version and report.current_user == "lab_app@%"
    assert not report.server_version.startswith("5.5.5-")  # as SELECT VERSION() says it, without the greeting's prefix


def test_the_tls_cipher_reported_is_the_one_the_server_sees(servers: Servers, tmp_path: Path):
    req = servers.request(tmp_path)
    ctx = mysqlcheck.tls_context(req.db)
    sock = socket.create_connection((LOOPBACK, servers.db.port), timeout=5)
    conn = mysqlcheck.mysql_over(sock, req.db, ADMIN_USER, ADMIN_PASSWORD, None, 5, ctx)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
            server_side = {k: v for k, v in cur.fetchall()}
        assert mysqlcheck.session_tls(conn) == (server_side["Ssl_version"], server_side["Ssl_cipher"])
    finally:
        conn.close()


# --- the staged .env ---------------------------------------------------------------------------------------


def _probe_that_waits_for_the_staged_file(
    directory: Path, seen: dict[str, Any], fail: BaseException | None = None
) -> Callable[[pymysql.Connection, str], dict[str, object]]:
    real = mysqlcheck.probe_app

    def probe(conn: pymysql.Connection, db_name: str) -> dict[str, object]:
        seen["staged"] = _wait_for_staged(directory)
        seen["during"] = _remote_files(directory)
        seen["mode"] = stat.S_IMODE((directory / seen["staged"]).stat().st_mode)
        if fail is not None:
            raise fail
        return real(conn, db_name)

    return probe


def test_env_is_staged_during_the_sql_and_renamed_only_after_the_check_passed(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    remote = tmp_path / "vm" / "app"
    remote.mkdir(parents=True)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(mysqlcheck, "probe_app", _probe_that_waits_for_the_staged_file(remote, seen))
    report, path = envcheck.run_check(
        servers.request(tmp_path), envcheck.StagedUpload(str(remote), "DB_USER='lab_app'\n")
    )
    assert report.attempts == 1
    assert ".env" not in seen["during"]  # while the app user was being checked, only the temp name existed
    assert seen["mode"] == 0o600
    assert path == str(remote / ".env")
    assert _remote_files(remote) == [".env"]  # renamed, nothing left behind
    assert (remote / ".env").read_text() == "DB_USER='lab_app'\n"
    assert stat.S_IMODE((remote / ".env").stat().st_mode) == 0o600


def test_a_failed_check_removes_the_staged_file_and_keeps_the_old_env(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    remote = tmp_path / "vm" / "app"
    remote.mkdir(parents=True)
    (remote / ".env").write_text("OLD=1\n")
    seen: dict[str, Any] = {}
    denied = pymysql.err.OperationalError(1142, "CREATE command denied to user 'lab_app'")
    monkeypatch.setattr(mysqlcheck, "probe_app", _probe_that_waits_for_the_staged_file(remote, seen, denied))
    with pytest.raises(envcheck.CheckFailed) as failed:
        envcheck.run_check(servers.request(tmp_path), envcheck.StagedUpload(str(remote), "NEW=1\n"))
    assert failed.value.diagnosis.hop == envcheck.HOP_APP and failed.value.diagnosis.cause == "privileges"
    assert seen["staged"].startswith(".env.tmp-")
    assert _remote_files(remote) == [".env"]  # the staged file is gone
    assert (remote / ".env").read_text() == "OLD=1\n"  # and the old .env untouched


def test_staging_creates_a_missing_app_directory(servers: Servers, tmp_path: Path):
    remote = tmp_path / "vm" / "deep" / "app"
    _, path = envcheck.run_check(servers.request(tmp_path), envcheck.StagedUpload(str(remote), "X='1'\n"))
    assert path == str(remote / ".env") and _remote_files(remote) == [".env"]
    assert stat.S_IMODE(remote.stat().st_mode) == 0o700


# --- the pre-opened app session -----------------------------------------------------------------------------


def _app_login_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dblab-app-login" and t.is_alive()]


def test_a_failed_admin_abandons_the_preopened_app_session_and_stages_nothing(servers: Servers, tmp_path: Path):
    remote = tmp_path / "vm" / "app"
    with pytest.raises(envcheck.CheckFailed) as failed:
        envcheck.run_check(
            servers.request(tmp_path, admin_password="Wr0ng 'pw'"), envcheck.StagedUpload(str(remote), "X='1'\n")
        )
    assert failed.value.diagnosis.hop == envcheck.HOP_ADMIN and failed.value.diagnosis.cause == "access-denied"
    assert "Wr0ng" not in str(failed.value)
    assert _app_login_threads() == []
    assert [n for n in _remote_files(remote) if n.startswith(".env")] == []


def test_a_preopened_session_that_waited_too_long_is_replaced_by_a_fresh_login(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real = mysqlcheck.ensure_app_user

    def slow_admin(conn: pymysql.Connection, acc: envcheck.Accounts) -> None:
        time.sleep(0.5)
        real(conn, acc)

    monkeypatch.setattr(envcheck, "PREOPEN_MAX_WAIT_S", 0.05)
    monkeypatch.setattr(mysqlcheck, "ensure_app_user", slow_admin)
    result: dict[str, Any] = {}

    def run() -> None:
        result["report"], _ = envcheck.run_check(servers.request(tmp_path))

    sessions = servers.general_log(run, tmp_path / "general.log")
    assert result["report"].attempts == 1
    app_logins = [c for c in sessions.values() if c and c[0][0] == "Connect" and c[0][1].startswith("lab_app@")]
    assert len(app_logins) == 1  # the stale session never logged in; the fresh one did
    assert _app_login_threads() == []


# --- delayed ACKs ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux-only")
def test_the_ssh_socket_acknowledges_at_once_after_every_read():
    listener = socket.create_server((LOOPBACK, 0))
    try:
        sock = envcheck._ssh_socket(LOOPBACK, listener.getsockname()[1], 5)
        peer, _ = listener.accept()
        try:
            assert isinstance(sock, envcheck._QuickAckSocket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            for _ in range(3):
                peer.sendall(b"x" * 10)
                assert sock.recv(10) == b"x" * 10
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
        finally:
            peer.close()
            sock.close()
    finally:
        listener.close()


def test_an_unwritable_app_directory_fails_as_sftp_after_the_sql_and_leaves_no_env(servers: Servers, tmp_path: Path):
    blocker = tmp_path / "vm"
    blocker.write_text("a file where the app directory's parent should be")
    with pytest.raises(envcheck.CheckFailed) as failed:
        envcheck.run_check(servers.request(tmp_path), envcheck.StagedUpload(str(blocker / "app"), "X='1'\n"))
    diagnosis = failed.value.diagnosis
    assert (diagnosis.hop, diagnosis.cause, diagnosis.retryable) == (envcheck.HOP_SFTP, "sftp", False)
    assert "could not write the .env" in str(failed.value)
    assert blocker.read_text().startswith("a file")  # untouched


def test_only_the_first_attempt_preopens_so_retries_leave_no_interrupted_sessions(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """An abandoned pre-opened session counts towards the DB's max_connect_errors; a retry loop must not add
    one per attempt."""
    real_admin = mysqlcheck.ensure_app_user
    calls = {"admin": 0, "preopened": 0}

    def admin_lost_once(conn: pymysql.Connection, acc: envcheck.Accounts) -> None:
        calls["admin"] += 1
        if calls["admin"] == 1:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
        real_admin(conn, acc)

    class CountedAppLogin(envcheck._AppLogin):
        def __init__(self, *args: Any) -> None:
            calls["preopened"] += 1
            super().__init__(*args)

    monkeypatch.setattr(mysqlcheck, "ensure_app_user", admin_lost_once)
    monkeypatch.setattr(envcheck, "_AppLogin", CountedAppLogin)
    result: dict[str, Any] = {}

    def run() -> None:
        result["report"], _ = envcheck.run_check(servers.request(tmp_path), sleep=lambda _s: None)

    sessions = servers.general_log(run, tmp_path / "general.log")
    assert result["report"].attempts == 2
    assert calls == {"admin": 2, "preopened": 1}
    app_logins = [c for c in sessions.values() if c and c[0][0] == "Connect" and c[0][1].startswith("lab_app@")]
    assert len(app_logins) == 1  # attempt 1's session was abandoned before its login; attempt 2 logged in after
    assert _app_login_threads() == []
