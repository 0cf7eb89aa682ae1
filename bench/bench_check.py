"""Benchmark: the EnvFile connection check against its floor and against what an operator would do with OpenSSH.

Not a test (nothing is asserted). It starts its own MariaDB (TLS) and sshd on 127.0.0.1, as the tests do, and
measures, each on loopback and with a delay proxy adding 10 ms each way (20 ms round trip) on the SSH hop:

* ``check create``      — ``EnvFileProvider().create``: SSH, admin login + app-user SQL, app login + probe,
                          ``.env`` staged on the VM during the SQL and renamed after, local ``.env`` written;
* ``check, no upload``  — ``envcheck.run_check`` alone;
* ``ssh VM "mysql …"``  — OpenSSH runs the MariaDB client on the VM: ``mariadb --ssl … -e 'select 1'``;
* ``ssh -L + mysql``    — OpenSSH forwards a local port to the DB, the local MariaDB client logs in through it;
* ``floor: TLS login``  — straight to the DB (no SSH), prebuilt SSLContext, the check's own login (pymysql
                          without its ``SET NAMES`` round trip): TCP + TLS + login + ``SELECT 1``. With
                          delay it goes through a proxy in front of the DB, so it pays the same round trip once
                          per exchange: the cost of the SQL itself at that distance, without any SSH.

For every row it also prints what crossed the delay proxy (median per run; the floor's proxy is in front of the
DB, every other row's in front of sshd): **turns** (the client spoke again after the server had spoken: one per
round trip in a lock-step exchange), chunks and kilobytes.
``server DDL`` is the app probe's create/insert/drop run directly on the DB: server work (fsync) that no
protocol change removes. ``ssh handshake`` is paramiko's connect + auth alone.

    .venv/bin/python bench/bench_check.py [--runs 20] [--delay-ms 10]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components import envcheck  # noqa: E402
from components.envfile import PROVIDER_VERSION, EnvFileProvider  # noqa: E402
from engines import mysqlcheck  # noqa: E402
from tests.delayproxy import DelayProxy  # noqa: E402
from tests.servers import (  # noqa: E402
    ADMIN_PASSWORD,
    ADMIN_USER,
    LOOPBACK,
    SERVER_HOSTNAME,
    MariaDBServer,
    SshServer,
    free_port,
    make_ssh_key,
    make_tls_files,
)

APP_PASSWORD = "Bench-pw_1x"  # the peers put it on a command line; keep it shell- and dotenv-plain
DB_NAME = "lab"
APP_USER = "lab_app"


@dataclass
class Row:
    label: str
    ms: list[float] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    kbytes: list[float] = field(default_factory=list)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(label: str, fn: Callable[[], object], runs: int, proxy: DelayProxy | None, warmup: int = 2) -> Row:
    for _ in range(warmup):
        fn()
    row = Row(label)
    for _ in range(runs):
        if proxy is not None:
            proxy.reset()
        t0 = time.perf_counter()
        fn()
        row.ms.append((time.perf_counter() - t0) * 1000)
        if proxy is not None:
            c = proxy.reset()
            row.turns.append(c.turns)
            row.chunks.append(c.chunks_up + c.chunks_down)
            row.kbytes.append((c.bytes_up + c.bytes_down) / 1024)
    return row


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"{'measurement':<24} {'median':>8} {'p95':>8} {'min':>8}   {'turns':>5} {'chunks':>6} {'KiB':>6}")
    for r in rows:
        med = statistics.median
        counts = f"{med(r.turns):>5.0f} {med(r.chunks):>6.0f} {med(r.kbytes):>6.1f}" if r.turns else " " * 19
        print(
            f"{r.label:<24} {statistics.median(r.ms):>8.1f} {percentile(r.ms, 0.95):>8.1f} {min(r.ms):>8.1f}   {counts}"
        )


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="added each way on the SSH hop (default 10)")
    args = parser.parse_args()
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None or shutil.which("ssh") is None:
        sys.exit("needs the OpenSSH client and the MariaDB client: apt-get install openssh-client mariadb-client")

    with tempfile.TemporaryDirectory(prefix="dblab-bench-") as tmp:
        base = Path(tmp)
        tls = make_tls_files(base / "tls")
        key = base / "id_ed25519"
        pub = make_ssh_key(key)
        db = MariaDBServer(base / "db", tls).prepare()
        sshd = SshServer(base / "sshd", [pub]).prepare()
        proxies: list[DelayProxy] = []
        try:
            db.start()
            sshd.start()
            ssh_delayed = DelayProxy(sshd.port, args.delay_ms / 1000).start()
            db_delayed = DelayProxy(db.port, args.delay_ms / 1000).start()
            proxies += [ssh_delayed, db_delayed]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            known_hosts = base / "project" / envcheck.KNOWN_HOSTS_NAME

            def props(ssh_port: int, sub: str) -> dict[str, object]:
                return {
                    "appHost": LOOPBACK,
                    "sshUser": "root",
                    "sshPort": float(ssh_port),
                    "dbHost": LOOPBACK,
                    "dbPort": float(db.port),
                    "dbHostname": SERVER_HOSTNAME,
                    "dbName": DB_NAME,
                    "adminUser": ADMIN_USER,
                    "adminPassword": ADMIN_PASSWORD,
                    "appUser": APP_USER,
                    "appPassword": APP_PASSWORD,
                    "localPath": str(base / "project" / ".env"),
                    "remoteDir": str(base / "vm" / sub),
                    "sshPrivateKeyPath": str(key),
                    "sslMode": "REQUIRED",
                    "checkTimeoutSeconds": 30.0,
                    "providerVersion": PROVIDER_VERSION,
                }

            def request(ssh_port: int) -> envcheck.CheckRequest:
                return envcheck.CheckRequest(
                    ssh=envcheck.SshTarget(LOOPBACK, ssh_port, "root", (str(key),), known_hosts),
                    db=envcheck.DbTarget(LOOPBACK, db.port, SERVER_HOSTNAME, "REQUIRED"),
                    accounts=envcheck.Accounts(DB_NAME, ADMIN_USER, ADMIN_PASSWORD, APP_USER, APP_PASSWORD),
                    timeout_s=30,
                )

            ssh_opts = [
                "-F",
                "/dev/null",
                "-i",
                str(key),
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                f"UserKnownHostsFile={base / 'ssh_known_hosts'}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "LogLevel=ERROR",
            ]
            mysql_args = [  # after --no-defaults, which must come first
                "--ssl",
                f"--user={APP_USER}",
                f"--password={APP_PASSWORD}",
                "--batch",
                "--skip-column-names",
                "-e",
                "select 1",
                DB_NAME,
            ]

            def ssh_exec(port: int) -> None:
                remote = shlex.join([client, "--no-defaults", f"--host={LOOPBACK}", f"--port={db.port}", *mysql_args])
                out = subprocess.run(
                    ["ssh", *ssh_opts, "-p", str(port), f"root@{LOOPBACK}", remote],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                )
                if out.stdout.strip() != "1":
                    raise RuntimeError(f"ssh VM mysql: {out.stdout!r} {out.stderr!r}")

            def ssh_forward(port: int) -> None:
                local = free_port()
                control = base / f"cm-{local}"
                subprocess.run(
                    [
                        "ssh",
                        *ssh_opts,
                        "-p",
                        str(port),
                        "-f",
                        "-N",
                        "-o",
                        "ExitOnForwardFailure=yes",
                        "-o",
                        "ControlMaster=yes",
                        "-o",
                        f"ControlPath={control}",
                        "-L",
                        f"{LOOPBACK}:{local}:{LOOPBACK}:{db.port}",
                        f"root@{LOOPBACK}",
                    ],
                    check=True,
                    timeout=30,
                )
                try:
                    out = subprocess.run(
                        [client, "--no-defaults", f"--host={LOOPBACK}", f"--port={local}", *mysql_args],
                        capture_output=True,
                        text=True,
                        timeout=30,
                        check=True,
                    )
                    if out.stdout.strip() != "1":
                        raise RuntimeError(f"ssh -L mysql: {out.stdout!r} {out.stderr!r}")
                finally:
                    subprocess.run(
                        ["ssh", "-o", f"ControlPath={control}", "-O", "exit", "x"], capture_output=True, timeout=30
                    )

            def floor(port: int) -> None:
                sock = socket.create_connection((LOOPBACK, port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                target = envcheck.DbTarget(LOOPBACK, port, SERVER_HOSTNAME, "REQUIRED")
                conn = mysqlcheck.mysql_over(sock, target, APP_USER, APP_PASSWORD, DB_NAME, 10, ctx)
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.close()

            def ssh_handshake(port: int) -> None:
                envcheck.open_ssh(envcheck.SshTarget(LOOPBACK, port, "root", (str(key),), known_hosts), 10).close()

            provider = EnvFileProvider()
            ddl_conn = db.admin_connect()

            def server_ddl() -> None:
                table = f"`{DB_NAME}`.`_dblab_bench_{os.getpid()}`"
                with ddl_conn.cursor() as cur:
                    cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, note VARCHAR(32))")
                    cur.execute(f"INSERT INTO {table} VALUES (1, 'dblab check')")
                    cur.execute(f"DROP TABLE {table}")

            provider.create(props(sshd.port, "warm"))  # creates the app user the peers log in as
            tables = []
            for title, ssh_port, db_port, proxy in (
                ("loopback", sshd.port, db.port, None),
                (
                    f"SSH hop +{args.delay_ms:g} ms each way ({2 * args.delay_ms:g} ms RTT)",
                    ssh_delayed.port,
                    db_delayed.port,
                    ssh_delayed,
                ),
            ):
                req = request(ssh_port)
                rows = [
                    measure("check create", lambda p=ssh_port: provider.create(props(p, "app")), args.runs, proxy),
                    measure("check, no upload", lambda r=req: envcheck.run_check(r), args.runs, proxy),
                    measure('ssh VM "mysql …"', lambda p=ssh_port: ssh_exec(p), args.runs, proxy),
                    measure("ssh -L + mysql", lambda p=ssh_port: ssh_forward(p), args.runs, proxy),
                    measure("floor: TLS login", lambda p=db_port: floor(p), args.runs, db_delayed if proxy else None),
                    measure("ssh handshake", lambda p=ssh_port: ssh_handshake(p), args.runs, proxy),
                    measure("server DDL", server_ddl, args.runs, None),
                ]
                tables.append((title, rows))
            ddl_conn.close()
        finally:
            for proxy in proxies:
                proxy.stop()
            sshd.stop()
            db.stop()

    print(
        f"EnvFile check benchmark: {args.runs} runs each, times in ms; turns/chunks/KiB crossed the delay proxy "
        "(the SSH hop; for the floor, the DB connection)"
    )
    for title, rows in tables:
        print_table(title, rows)
        by = {r.label: statistics.median(r.ms) for r in rows}
        check, peer_exec, peer_fwd = by["check create"], by['ssh VM "mysql …"'], by["ssh -L + mysql"]
        print(
            f"check create / ssh VM mysql: {check / peer_exec:.2f}x   check create / ssh -L + mysql: "
            f"{check / peer_fwd:.2f}x   check create / floor: {check / by['floor: TLS login']:.1f}x\n"
            f"check create without the server's DDL time (medians): {check - by['server DDL']:.1f} ms"
        )


if __name__ == "__main__":
    main()
