"""labctl local's PostgreSQL: the product launcher playing the DB inside the DB namespace of a real local lab.

First the whole ``labctl local up/check/down`` of a stack on OCI Database with PostgreSQL (``dbEngine:
postgresql``): the real EnvFile provider checks it through the packet filter with the PostgreSQL adapter.

The dev stack's plan gives the namespaces, addresses and nftables rules; ``_start_servers`` starts PostgreSQL (as
the ``dblab-pg`` user, TLS on, pg_hba = the app subnet only) on the DB's private IP instead of MariaDB. From the app
VM's namespace the PostgreSQL check adapter then does what the check does on the VM: the admin creates the lab
database and app user, the app user logs in and writes. ``cleanup`` must leave nothing (process, private directory,
namespaces). Needs root and the packages of ``.ci/services.sh``.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

import pytest

from components import envcheck
from engines import pgcheck
from labctl.local import command, netns, servers, topology

pytestmark = pytest.mark.real_servers

ADMIN_PASSWORD = "Local 'pg' admin #1"
APP_PASSWORD = "Local app pw $2"


def test_postgresql_plays_the_db_in_its_namespace_and_the_app_vm_reaches_it_through_the_filter(tmp_path: Path):
    run_id = secrets.token_hex(3)
    run_dir = tmp_path / f"dblab-{run_id}-run"
    key = run_dir / "keys" / "id_ed25519"
    pub = servers.make_ssh_key(key, "dblab-local-pg-test")
    resources, admin_cidr, student = command._plan(command.Options(stack="dev"), pub, None)
    topo = topology.build(resources, admin_cidr, topology.Names(run_id), "dev", student_cidr=student)
    inputs = topology.envfile_inputs(resources)
    inputs["adminPassword"] = ADMIN_PASSWORD
    hba = command._app_subnet_cidr(resources, topo)
    assert hba.endswith("/24") and hba != f"{topo.host('app').address}/32", hba  # the app subnet, not one host
    state: dict[str, Any] = {"runId": run_id, "runDir": str(run_dir), "namespaces": list(topo.namespaces), "pids": {}}
    db_ip, app = topo.host("db").address, topo.host("app")
    port = int(inputs["dbPort"])
    try:
        netns.build(topo)
        db, _sshd = command._start_servers(
            run_dir, topo, inputs, pub, lambda n, p: state["pids"].__setitem__(n, p), command.POSTGRESQL, (hba,)
        )
        assert isinstance(db, servers.PostgreSQL) and db.home is not None
        assert db.home.name.startswith(f"dblab-{run_id}-pg-")  # cleanup() finds it by the run id
        pid = state["pids"]["postgres"]
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")  # inside a namespace
        if os.geteuid() == 0:
            import pwd

            assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(servers.PG_USER).pw_uid  # not root

        target = envcheck.DbTarget(db_ip, port, str(inputs["dbHostname"]), "verify-full", str(inputs["sslCa"]))
        acc = envcheck.Accounts("lab", str(inputs["adminUser"]), ADMIN_PASSWORD, "lab_app", APP_PASSWORD)

        def from_the_app_vm() -> dict[str, object]:
            def session(user: str, password: str, database: str | None) -> Any:
                sock = socket.create_connection((db_ip, port), timeout=5, source_address=(app.address, 0))
                return pgcheck.connect(sock, target, user, password, database, 10)

            admin = session(acc.admin_user, ADMIN_PASSWORD, None)
            try:
                pgcheck.ensure_app_user(admin, acc)
            finally:
                admin.close()
            conn = session("lab_app", APP_PASSWORD, "lab")
            try:
                return pgcheck.probe_app(conn, "lab")
            finally:
                conn.close()

        report = netns.in_netns(app.ns, from_the_app_vm)
        assert report["current_user"] == "lab_app" and str(report["tls_version"]).startswith("TLS")
        assert str(report["server_version"]).startswith("PostgreSQL ")
    finally:
        left = command.cleanup(state)
    assert not left
    assert not list(Path("/tmp").glob(f"dblab-{run_id}-*"))
    assert not netns.existing(f"dblab-{run_id}-")
    assert not any(servers.alive(int(p)) for p in state["pids"].values())


# up/check/down of a postgresql and a postgresql-vm stack: tests/test_engine_acceptance.py (one lab per engine).


def test_the_plan_names_the_local_server_through_the_engine_registry(tmp_path: Path):
    plan = command._plan(command.Options(stack="dev"), None, None)[0]
    assert command.local_server(plan) == command.MARIADB  # the dev stack is MySQL HeatWave: MariaDB plays it
    assert command.local_server([]) == command.MARIADB
    # a stack on OCI Database with PostgreSQL: PostgreSQL plays it, at the private IP the (mock) service handed out
    dev = (command.REPO_ROOT / "Pulumi.dev.yaml").read_text()
    config = tmp_path / "Pulumi.pg.yaml"
    config.write_text(
        dev.replace("  oci-dblab:studentId: dev\n", "  oci-dblab:studentId: dev\n  oci-dblab:dbEngine: postgresql\n")
    )
    opts = command.Options(stack="pg", config_file=config)
    assert command._configured_server(opts) == command.POSTGRESQL
    resources, admin_cidr, student = command._plan(opts, None, None)
    assert command.local_server(resources) == command.POSTGRESQL
    topo = topology.build(resources, admin_cidr, topology.Names("000000"), "pg", student_cidr=student)
    assert topo.db_ports == (5432,) and topo.host("db").address.startswith("10.0.")
