"""Benchmark: what the EnvFile connection check costs over the SSH tunnel, against a direct pymysql connect.

Not a test (nothing is asserted): it starts its own MariaDB (TLS) and sshd on 127.0.0.1, exactly as the tests
do, and prints median and p95 over N runs of

* ``full check (tunnel)``  — ``envcheck.run_check``: SSH handshake + auth, forward, admin login + app-user SQL,
  app login, probe (SELECT 1 x3, version, TLS status, create/insert/drop table);
* ``tunnel login + SELECT 1`` — SSH + forward + one TLS login as the app user + ``SELECT 1``;
* ``raw login + SELECT 1`` — pymysql straight to the server's port, TLS, same user + ``SELECT 1``;
* ``SELECT 1 round trip`` over an open tunnelled session vs an open direct session.

Loopback numbers measure the protocol overhead (SSH key exchange, extra TLS and SQL round trips), not a real
network: over the Internet each round trip adds the RTT to the VM.

    .venv/bin/python bench/bench_check.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components import envcheck  # noqa: E402
from tests.servers import (  # noqa: E402
    ADMIN_PASSWORD,
    ADMIN_USER,
    LOOPBACK,
    SERVER_HOSTNAME,
    MariaDBServer,
    SshServer,
    make_ssh_key,
    make_tls_files,
)

APP_PASSWORD = "Bench 'pw' #1 $ \\ ="


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dblab-bench-") as tmp:
        base = Path(tmp)
        tls = make_tls_files(base / "tls")
        key = base / "id_ed25519"
        pub = make_ssh_key(key)
        db = MariaDBServer(base / "db", tls).prepare()
        ssh = SshServer(base / "sshd", [pub]).prepare()
        try:
            db.start()
            ssh.start()
            ssh_target = envcheck.SshTarget(LOOPBACK, ssh.port, "root", (str(key),), base / "known_hosts")
            db_target = envcheck.DbTarget(LOOPBACK, db.port, SERVER_HOSTNAME, "REQUIRED")
            request = envcheck.CheckRequest(
                ssh=ssh_target,
                db=db_target,
                accounts=envcheck.Accounts("lab", ADMIN_USER, ADMIN_PASSWORD, "lab_app", APP_PASSWORD),
                timeout_s=30,
            )

            def full_check() -> None:
                envcheck.run_check(request)

            def tunnel_login() -> None:
                client = envcheck.open_ssh(ssh_target, 10)
                tunnel = envcheck.Tunnel(client)
                try:
                    sock = tunnel.connect(db_target.host, db_target.port, 10)
                    conn = envcheck.mysql_over(sock, db_target, "lab_app", APP_PASSWORD, "lab", 10)
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                    conn.close()
                finally:
                    tunnel.close()
                    client.close()

            def raw_login() -> None:
                conn = db.connect("lab_app", APP_PASSWORD, "lab")
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.close()

            results = {
                "full check (tunnel)": timed(full_check, args.runs),
                "tunnel login + SELECT 1": timed(tunnel_login, args.runs),
                "raw login + SELECT 1": timed(raw_login, args.runs),
            }

            client = envcheck.open_ssh(ssh_target, 10)
            tunnel = envcheck.Tunnel(client)
            tunnelled = envcheck.mysql_over(
                tunnel.connect(db_target.host, db_target.port, 10), db_target, "lab_app", APP_PASSWORD, "lab", 10
            )
            direct = db.connect("lab_app", APP_PASSWORD, "lab")
            try:
                for label, conn in (("SELECT 1 round trip, tunnel", tunnelled), ("SELECT 1 round trip, raw", direct)):
                    cursor = conn.cursor()
                    results[label] = timed(lambda c=cursor: c.execute("SELECT 1"), args.runs * 10, warmup=10)
            finally:
                tunnelled.close()
                direct.close()
                tunnel.close()
                client.close()
        finally:
            ssh.stop()
            db.stop()

    print(f"EnvFile check benchmark, loopback, {args.runs} runs (x10 for round trips); times in ms")
    print(f"{'measurement':<30} {'median':>9} {'p95':>9} {'min':>9} {'max':>9}")
    for label, samples in results.items():
        print(
            f"{label:<30} {statistics.median(samples):>9.2f} {percentile(samples, 0.95):>9.2f} "
            f"{min(samples):>9.2f} {max(samples):>9.2f}"
        )
    ratio = statistics.median(results["tunnel login + SELECT 1"]) / statistics.median(results["raw login + SELECT 1"])
    print(f"tunnel login / raw login (median): {ratio:.1f}x")


if __name__ == "__main__":
    main()
