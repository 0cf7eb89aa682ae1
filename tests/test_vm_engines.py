"""The DB-VM engines (mysql-vm, mariadb-vm, postgresql-vm): verifiers, cloud-init content, the admin user for real."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pymysql
import pytest
import yaml

from engines import mariadb_vm, mysql_vm, pgcheck, postgresql_vm, vmdb
from tests.servers import MariaDBServer, make_tls_files

FLAVORS = (mysql_vm.FLAVOR, mariadb_vm.FLAVOR, postgresql_vm.FLAVOR)
PASSWORDS = ("Adm1n 'q\" #h $d \\b =e!", "Lab-Admin#2026", "x$(reboot)`id`;DROP--Q9a", "pencil")
CONTEXT = "urn:pulumi:dev::oci-dblab::oci-dblab:database:Database::lab"


def settings(flavor: vmdb.Flavor, password: str, **kw: str | None) -> vmdb.DbVmSettings:
    values = {
        "app_subnet_cidr": "10.0.0.0/24",
        "vcn_cidr": "10.0.0.0/16",
        "admin_user": "admin",
        "admin_verifier": vmdb.admin_verifier(flavor.family, password, CONTEXT),
    }
    values.update(kw)
    return vmdb.DbVmSettings(**values)  # type: ignore[arg-type]


# --- verifiers --------------------------------------------------------------------------------------------------


def test_mysql_native_hash_matches_mysql_password_function() -> None:
    # MySQL 5.7's SELECT PASSWORD('mypass') (reference manual, "Password Hashing in MySQL"): this exact value.
    assert vmdb.mysql_native_password_hash("mypass") == "*6C8989366EAF75BB670AD8EA7A7FC1176A95CEF4"


def test_scram_verifier_matches_rfc7677_test_vector() -> None:
    # RFC 7677 section 3: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations; the server signature
    # there is HMAC(ServerKey, AuthMessage) = 6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = vmdb.scram_sha256_verifier("pencil", salt)
    m = re.fullmatch(r"SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)", verifier)
    assert m and m.group(1) == "W22ZaJ0SNY7soEsUEjb6gQ=="
    server_key = base64.b64decode(m.group(3))
    auth_message = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,"
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    signature = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_salt_is_stable_per_stack_and_differs_between_stacks() -> None:
    a = vmdb.admin_verifier("postgresql", "Lab-Admin#2026", CONTEXT)
    assert a == vmdb.admin_verifier("postgresql", "Lab-Admin#2026", CONTEXT)  # same user_data on every run
    assert a != vmdb.admin_verifier("postgresql", "Lab-Admin#2026", CONTEXT.replace("dev", "prod"))


def test_vm_engines_refuse_non_ascii_passwords() -> None:
    for engine in (mysql_vm.ENGINE, mariadb_vm.ENGINE, postgresql_vm.ENGINE):
        assert "outside printable ASCII" in engine.password_problem("Pässwort-123x", "admin")
        assert engine.password_problem("Lab-Pa55#2026", "admin") is None


# --- cloud-init content -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS, ids=lambda f: f.engine)
@pytest.mark.parametrize("password", PASSWORDS)
def test_user_data_never_holds_the_password(flavor: vmdb.Flavor, password: str) -> None:
    encoded = vmdb.user_data_b64(flavor, settings(flavor, password))
    text = base64.b64decode(encoded).decode()
    assert password not in text and password not in encoded
    assert vmdb.admin_verifier(flavor.family, password, CONTEXT) in text  # the verifier is what goes in
    # nor any form a reader could turn back with one step: base64 / hex of the password
    assert base64.b64encode(password.encode()).decode() not in text
    assert password.encode().hex() not in text.lower()


@pytest.mark.parametrize("flavor", FLAVORS, ids=lambda f: f.engine)
def test_document_installs_the_appstream_package_and_runs_the_setup_once(flavor: vmdb.Flavor) -> None:
    doc = yaml.safe_load(vmdb.render_cloud_init(flavor, settings(flavor, "Lab-Admin#2026")))
    assert doc["packages"][0] == flavor.package
    assert doc["package_update"] is False
    (script,) = [f for f in doc["write_files"] if f["path"] == vmdb.SETUP_SCRIPT]
    assert script["permissions"] == "0700"
    assert doc["runcmd"] == [[vmdb.SETUP_SCRIPT], ["rm", "-f", vmdb.SETUP_SCRIPT]]
    body = script["content"]
    assert "set -euo pipefail" in body
    # firewalld: the DB port from the app subnet only
    assert "APP_CIDR=10.0.0.0/24" in body and f"PORT={flavor.port}" in body
    assert 'source address=\\"${APP_CIDR}\\" port port=\\"${PORT}\\" protocol=\\"tcp\\" accept' in body
    # a certificate made at boot, for the private IP and the VM's FQDN
    assert "openssl req -x509" in body and "subjectAltName=DNS:${FQDN},IP:${IP}" in body


@pytest.mark.parametrize("flavor", FLAVORS[:2], ids=lambda f: f.engine)
def test_mysql_family_listens_on_the_private_ip_with_tls_required(flavor: vmdb.Flavor) -> None:
    body = vmdb.render_setup_script(flavor, settings(flavor, "Lab-Admin#2026"))
    cnf = body.split("<<EOF_CNF\n", 1)[1].split("EOF_CNF", 1)[0]
    assert cnf.splitlines()[0] == f"[{flavor.config_section}]"
    assert "bind-address=${IP}" in cnf and "require_secure_transport=ON" in cnf
    assert ("mysqlx=OFF" in cnf) is (flavor.engine == "mysql-vm")
    assert "'admin'@'10.0.0.0/255.255.0.0'" in body and "REQUIRE SSL" in body


def test_postgresql_hba_is_tls_and_scram_only_from_the_app_subnet_and_vcn() -> None:
    flavor = postgresql_vm.FLAVOR
    body = vmdb.render_setup_script(
        flavor, settings(flavor, "Lab-Admin#2026", vcn_cidr="10.20.0.0/16", app_subnet_cidr="10.20.0.0/24")
    )
    hba = body.split("<<'EOF_HBA'\n", 1)[1].split("EOF_HBA", 1)[0]
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules == [
        ["local", "all", "postgres", "peer"],
        # no lab database or app user name: written once at first boot, and both may be renamed later (issue 11)
        ["hostssl", "all", "all", "10.20.0.0/24", "scram-sha-256"],
        ["hostssl", "all", "admin", "10.20.0.0/16", "scram-sha-256"],
    ]
    sql = body.split("<<'EOF_SQL'\n", 1)[1].split("EOF_SQL", 1)[0]
    assert "REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC;" in sql
    assert 'GRANT CONNECT ON DATABASE postgres TO "admin";' in sql
    conf = body.split("<<EOF_CONF\n", 1)[1].split("EOF_CONF", 1)[0]
    assert "listen_addresses = '${IP}'" in conf and "ssl = on" in conf
    assert "password_encryption = 'scram-sha-256'" in conf


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"admin_user": "admin'; DROP"}, "dbAdminUser"),
        ({"vcn_cidr": "10.0.0.0/33"}, "VCN CIDR"),
        ({"app_subnet_cidr": "10.9.0.0/24"}, "not inside the VCN"),
        ({"admin_verifier": "hunter2"}, "verifier"),
    ],
)
def test_bad_values_never_reach_the_script(change: dict, needle: str) -> None:
    flavor = mysql_vm.FLAVOR
    with pytest.raises(ValueError, match=needle) as info:
        vmdb.render_cloud_init(flavor, settings(flavor, "Lab-Admin#2026", **change))
    assert "hunter2" not in str(info.value)  # a bad verifier is not echoed


# --- the verifier creates a real account (MariaDB on loopback) ---------------------------------------------------


def _admin_sql(flavor: vmdb.Flavor, s: vmdb.DbVmSettings) -> list[str]:
    body = vmdb.render_setup_script(flavor, s)
    sql = body.split("<<'EOF_SQL'\n", 1)[1].split("EOF_SQL", 1)[0]
    return [stmt.strip() for stmt in sql.split(";") if stmt.strip()]


def _login(db: MariaDBServer, user: str, password: str, tls: bool = True) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=db.port,
        user=user,
        password=password.encode(),
        ssl={"check_hostname": False, "verify_mode": False} if tls else None,
        ssl_disabled=not tls,
        connect_timeout=5,
    )


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("vmdb-mariadb")
    db = MariaDBServer(base / "db", make_tls_files(base / "tls")).prepare()
    try:
        db.start()
        yield db
    finally:
        db.stop()


mariadb.starts_real_servers = True  # type: ignore[attr-defined]


@pytest.mark.real_servers
@pytest.mark.parametrize("flavor", FLAVORS[:2], ids=lambda f: f.engine)
def test_admin_created_from_the_hash_logs_in_with_the_password(mariadb: MariaDBServer, flavor: vmdb.Flavor) -> None:
    password = "Adm1n 'q\" #h $d \\b =e!"
    user = "vm" + flavor.engine.split("-")[0][:5]
    # "VCN" = 127.0.0.0/8 here: the loopback client is inside it.
    s = settings(flavor, password, admin_user=user, vcn_cidr="127.0.0.0/8", app_subnet_cidr="127.0.0.0/24")
    with mariadb.admin_connect() as conn, conn.cursor() as cur:
        for stmt in _admin_sql(flavor, s):
            cur.execute(stmt)
    with _login(mariadb, user, password) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0] == f"{user}@127.0.0.0/255.0.0.0"
        cur.execute("SHOW GRANTS")
        assert any("WITH GRANT OPTION" in row[0] for row in cur.fetchall())
    with pytest.raises(pymysql.err.OperationalError) as wrong:
        _login(mariadb, user, password + "x")
    assert wrong.value.args[0] == 1045  # access denied
    with pytest.raises(pymysql.err.OperationalError) as plain:
        _login(mariadb, user, password, tls=False)  # REQUIRE SSL
    assert plain.value.args[0] == 1045


@pytest.mark.real_servers
def test_admin_outside_the_vcn_is_refused(mariadb: MariaDBServer) -> None:
    """The account's host netmask is the VCN: a client from elsewhere (here 127.0.0.1 vs 10.0.0.0/16) is refused."""
    flavor = mariadb_vm.FLAVOR
    password = "Lab-Admin#2026"
    s = settings(flavor, password, admin_user="vmfar")
    with mariadb.admin_connect() as conn, conn.cursor() as cur:
        for stmt in _admin_sql(flavor, s):
            cur.execute(stmt)
        cur.execute("SELECT Host FROM mysql.user WHERE User = 'vmfar'")
        assert cur.fetchall() == (("10.0.0.0/255.255.0.0",),)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _login(mariadb, "vmfar", password)
    assert refused.value.args[0] == 1045


# --- the mocked program, per engine ------------------------------------------------------------------------------

VM_ENGINES = ("mysql-vm", "mariadb-vm", "postgresql-vm")
ENGINE_PORT = {"mysql-vm": 3306, "mariadb-vm": 3306, "postgresql-vm": 5432}
PACKAGE = {"mysql-vm": "mysql-server", "mariadb-vm": "mariadb-server", "postgresql-vm": "postgresql-server"}
GIVEN_PASSWORD = "Given-Pa55word!x"


@pytest.fixture(scope="module", params=VM_ENGINES)
def vm_plan(request):
    from conftest import plan_of

    return request.param, plan_of(secret=("dbPassword",), dbEngine=request.param, dbPassword=GIVEN_PASSWORD)


def _user_data(plan) -> str:
    from conftest import named

    return base64.b64decode(named(plan, "lab-db-vm").props["metadata"]["user_data"]).decode()


def test_db_vm_is_in_the_private_subnet_without_a_public_ip(vm_plan) -> None:
    from conftest import named

    engine, plan = vm_plan
    vm = named(plan, "lab-db-vm")
    private = named(plan, "lab-private-subnet")
    vnic = vm.props["createVnicDetails"]
    assert vnic["subnetId"] == private.id and vnic["assignPublicIp"] == "false" and vnic["hostnameLabel"] == "db"
    assert private.props["prohibitPublicIpOnVnic"] is True
    assert vm.props["shape"] == "VM.Standard.E2.1.Micro" and "shapeConfig" not in vm.props
    assert vm.props["sourceDetails"]["bootVolumeSizeInGbs"] == "50"
    assert vm.outputs.get("publicIp") == ""
    assert vm.props["metadata"]["ssh_authorized_keys"].startswith("ssh-ed25519 ")
    assert vm.parent.endswith("oci-dblab:database:Database::lab")
    assert set(vm.ignore_changes) >= {"metadata", "availabilityDomain"}
    assert vm.props["instanceOptions"]["areLegacyImdsEndpointsDisabled"] is True
    assert plan.outputs["dbPort"] == ENGINE_PORT[engine]
    assert plan.outputs["dbHostname"] == "db.priv.labvcn.oraclevcn.com"
    assert not [r for r in plan.resources if r.resource_type.startswith("oci:Mysql/")]  # no HeatWave system


def test_user_data_is_secret_and_never_holds_the_given_password(vm_plan) -> None:
    from conftest import named

    engine, plan = vm_plan
    vm = named(plan, "lab-db-vm")
    assert "metadata.user_data" in vm.secret_paths or "metadata" in vm.secret_paths
    text = _user_data(plan)
    assert GIVEN_PASSWORD not in text
    doc = yaml.safe_load(text)
    assert doc["packages"][0] == PACKAGE[engine]
    family = "postgresql" if engine == "postgresql-vm" else "mysql"
    context = "oci-dblab/dev/lab"
    assert vmdb.admin_verifier(family, GIVEN_PASSWORD, context) in text
    assert "APP_CIDR=10.0.0.0/24" in text


def test_private_subnet_gets_a_service_gateway_and_https_to_oracle_services_only(vm_plan) -> None:
    from conftest import named

    engine, plan = vm_plan
    sgw = named(plan, "lab-sgw")
    label = "all-mck-services-in-oracle-services-network"
    assert sgw.props["vcnId"] == named(plan, "lab-vcn").id and sgw.props["services"][0]["serviceId"]
    [route] = named(plan, "lab-private-rt").props["routeRules"]
    assert route["destination"] == label and route["destinationType"] == "SERVICE_CIDR_BLOCK"
    assert route["networkEntityId"] == sgw.id
    sl = named(plan, "lab-private-sl").props
    [egress] = sl["egressSecurityRules"]
    assert egress["destination"] == label and egress["destinationType"] == "SERVICE_CIDR_BLOCK"
    assert egress["protocol"] == "6" and egress["tcpOptions"] == {"min": 443, "max": 443}
    [ingress] = sl["ingressSecurityRules"]
    port = ENGINE_PORT[engine]
    assert ingress["source"] == "10.0.0.0/24" and ingress["tcpOptions"] == {"min": port, "max": port}
    assert not [r for r in plan.resources if r.resource_type == "oci:Core/natGateway:NatGateway"]


def test_heatwave_keeps_a_private_subnet_without_any_route_or_egress(plan) -> None:
    from conftest import named

    assert named(plan, "lab-private-rt").props.get("routeRules", []) == []
    assert named(plan, "lab-private-sl").props.get("egressSecurityRules", []) == []
    assert not [r for r in plan.resources if r.resource_type == "oci:Core/serviceGateway:ServiceGateway"]


def test_all_oracle_services_is_picked_by_name_and_missing_one_is_explained() -> None:
    from components.netplan import all_oracle_services

    services = [
        {"id": "o", "cidrBlock": "oci-fra-objectstorage", "name": "OCI FRA Object Storage"},
        {
            "id": "a",
            "cidrBlock": "all-fra-services-in-oracle-services-network",
            "name": "All FRA Services In Oracle Services Network",
        },
    ]
    picked = all_oracle_services(services)
    assert (picked.id, picked.cidr_block) == ("a", "all-fra-services-in-oracle-services-network")
    with pytest.raises(ValueError, match="OCI FRA Object Storage"):
        all_oracle_services(services[:1])


# --- bad config, per engine ---------------------------------------------------------------------------------------

BAD_VM = [
    ("mysql-vm", {"dbShape": "MySQL.Free"}, (), "dbShape", "is not a mysql-vm shape"),
    ("mariadb-vm", {"dbShape": "VM.Standard.E4.Flex"}, (), "dbShape", "is not a mariadb-vm shape"),
    ("postgresql-vm", {"dbShape": "MySQL.2"}, (), "dbShape", "is not a postgresql-vm shape"),
    ("mysql-vm", {"dbStorageGbs": "20"}, (), "dbStorageGbs", "out of range"),
    ("mysql-vm", {"dbAdminUser": "root"}, (), "dbAdminUser", "reserved by mysql-vm"),
    ("mariadb-vm", {"dbAdminUser": "mysql"}, (), "dbAdminUser", "reserved by mariadb-vm"),
    ("postgresql-vm", {"dbAdminUser": "postgres"}, (), "dbAdminUser", "reserved by postgresql-vm"),
    ("postgresql-vm", {"dbName": "template1"}, (), "dbName", "system schema of postgresql-vm"),
    ("mariadb-vm", {"dbName": "mysql"}, (), "dbName", "system schema of mariadb-vm"),
    ("postgresql-vm", {"dbPassword": "Pässwort-123x"}, ("dbPassword",), "dbPassword", "printable ASCII"),
    ("mysql-vm", {"dbPassword": "short1!A"[:6]}, ("dbPassword",), "dbPassword", "characters"),
]


@pytest.mark.parametrize(
    ("engine", "overrides", "secret", "key", "words"), BAD_VM, ids=[f"{b[0]}-{b[3]}" for b in BAD_VM]
)
def test_bad_config_per_vm_engine(engine, overrides, secret, key, words) -> None:
    from conftest import full_keys, good_raw

    from components.config import ConfigError, parse_config
    from labctl.offline import ProgramError, run_program

    raw = good_raw(dbEngine=engine, **overrides)
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "dev", secret_keys=set(secret))
    mine = [p for p in e.value.problems if p.key == key]
    assert len(mine) == 1 and words in str(mine[0]), [str(p) for p in e.value.problems]
    if "dbPassword" in overrides:
        assert overrides["dbPassword"] not in str(e.value)
    with pytest.raises(ProgramError) as run:
        run_program(full_keys(raw), secret_keys=[f"oci-dblab:{k}" for k in secret])
    assert run.value.resources == []


# --- reachability and policy for the engine's port ------------------------------------------------------------------


def test_verdicts_for_the_engines_port_and_the_app_vm_is_not_the_db_vm(vm_plan) -> None:
    from labctl import reach

    engine, plan = vm_plan
    results = reach.verdicts(plan.resources, "198.51.100.23/32")
    assert all(v.ok for v in results), [(v.id, v.reason) for v in results if not v.ok]
    ids = {v.id: v for v in results}
    port = ENGINE_PORT[engine]
    assert set(ids) == {"internet->app:22", "internet-other->app:22", f"internet->db:{port}", f"app-subnet->db:{port}"}
    assert "lab-db-vm" in ids[f"app-subnet->db:{port}"].destination
    assert "lab-vm" in ids["internet->app:22"].destination
    assert "no public IP" in ids[f"internet->db:{port}"].reason


def test_policy_passes_the_vm_engines_and_a_service_gateway_is_no_internet_route(vm_plan) -> None:
    from policy.rules import MANDATORY, evaluate

    _, plan = vm_plan
    assert [f for f in evaluate(plan.resources) if f.level == MANDATORY] == []


def test_policy_refuses_an_internet_or_nat_route_from_the_db_subnet(vm_plan) -> None:
    from conftest import mutated, named

    from policy.rules import evaluate

    _, plan = vm_plan
    igw = named(plan, "lab-igw")

    def internet(resources):
        rt = named(resources, "lab-private-rt")
        rt.props["routeRules"] = rt.props["routeRules"] + [
            {"destination": "0.0.0.0/0", "destinationType": "CIDR_BLOCK", "networkEntityId": igw.id}
        ]
        rt.property_dependencies.setdefault("routeRules", []).append(igw.urn)

    found = {(f.rule, f.name) for f in evaluate(mutated(plan, internet))}
    assert ("db-subnet-no-internet-route", "lab-private-rt") in found


def test_policy_refuses_the_engines_port_from_the_vcn(vm_plan) -> None:
    from conftest import mutated, named

    from policy.rules import evaluate

    engine, plan = vm_plan
    port = ENGINE_PORT[engine]

    def from_vcn(resources):
        sl = named(resources, "lab-private-sl")
        sl.props["ingressSecurityRules"][0]["source"] = "10.0.0.0/16"

    found = [f for f in evaluate(mutated(plan, from_vcn)) if f.rule == "db-port-only-from-app-subnet"]
    assert found and f"database port {port}" in found[0].message


def test_policy_refuses_a_public_ip_on_the_db_vm(vm_plan) -> None:
    from conftest import mutated, named

    from policy.rules import evaluate

    _, plan = vm_plan

    def public(resources):
        named(resources, "lab-db-vm").props["createVnicDetails"]["assignPublicIp"] = "true"

    found = {(f.rule, f.name) for f in evaluate(mutated(plan, public))}
    assert ("no-public-ip-in-private-subnet", "lab-db-vm") in found


# --- the SCRAM verifier creates a real role (PostgreSQL on loopback) ----------------------------------------------


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    from tests.servers import PostgreSQLServer

    base = tmp_path_factory.mktemp("vmdb-pg")
    server = PostgreSQLServer(base / "pg", make_tls_files(base / "tls")).prepare()
    try:
        server.start()
        yield server
    finally:
        server.stop()


postgres.starts_real_servers = True  # type: ignore[attr-defined]


@pytest.mark.real_servers
def test_admin_role_created_from_the_scram_verifier_logs_in_with_the_password(postgres) -> None:
    import pg8000.native

    flavor = postgresql_vm.FLAVOR
    password = "Adm1n 'q\" #h $d \\b =e!"
    s = settings(flavor, password, admin_user="VmAdmin", vcn_cidr="127.0.0.0/8", app_subnet_cidr="127.0.0.0/24")
    body = vmdb.render_setup_script(flavor, s)
    assert password not in body
    sql = body.split("<<'EOF_SQL'\n", 1)[1].split("EOF_SQL", 1)[0]
    select = sql.split("\\gexec", 1)[0]  # psql runs each row the SELECT returns (\\gexec); so does this test
    admin = postgres.admin_connect()
    try:
        statements = [row[0] for row in admin.run(select)]
        assert len(statements) == 1 and "PASSWORD 'SCRAM-SHA-256$4096:" in statements[0]
        for statement in statements:
            admin.run(statement)
        assert admin.run(select) == []  # idempotent: a second run creates nothing
        (stored,) = admin.run("SELECT rolcanlogin, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'VmAdmin'")
        assert stored == [True, True, True]
    finally:
        admin.close()
    # the rest of the script's SQL, run by the superuser: PUBLIC loses CONNECT on postgres and template1 (the local
    # launcher did the same for its own admin), and this admin gets CONNECT on postgres back
    grants = [line.rstrip(";") for line in sql.split("\\gexec", 1)[1].splitlines() if line.strip()]
    assert grants == pgcheck.cluster_grants("VmAdmin")
    with pytest.raises(pg8000.native.DatabaseError) as closed:
        postgres.connect("VmAdmin", password)  # no CONNECT on the maintenance database yet
    assert "42501" in str(closed.value)  # insufficient_privilege
    postgres.stop()
    postgres._single_user("postgres", "".join(f"{statement};\n" for statement in grants))
    postgres.start()
    conn = postgres.connect("VmAdmin", password)
    try:
        assert conn.run("SELECT current_user")[0][0] == "VmAdmin"
        assert conn.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0][0] is True
    finally:
        conn.close()
    with pytest.raises(pg8000.native.DatabaseError) as wrong:
        postgres.connect("VmAdmin", password + "x")
    assert "28P01" in str(wrong.value)  # invalid_password


# --- preflight: a DB VM uses the tenancy's E2.1.Micro pool (two per tenancy: the app VM and the DB VM) ----------


def _class(**extra: str):
    from conftest import COMPARTMENT, instructor_yaml

    from labctl.roster import parse_class_config

    lines = [f"compartmentId: {COMPARTMENT}", "adminCidr: 198.51.100.0/24"] + [f"{k}: {v}" for k, v in extra.items()]
    return parse_class_config("\n".join(lines) + "\n" + instructor_yaml())


def _students(n: int):
    from conftest import make_ssh_public_key

    from labctl.roster import Student

    return [
        Student(
            f"a23-{i:03d}",
            f"student-a23-{i:03d}",
            f"S {i}",
            f"s{i}@x.example",
            make_ssh_public_key(),
            None,
            None,
            i + 2,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("engine", VM_ENGINES)
def test_one_student_with_a_db_vm_fills_the_micro_pool_and_fits(engine) -> None:
    from labctl.preflight import FITS, preflight

    report = preflight(_students(1), _class(dbEngine=engine))
    assert report.verdict == FITS and report.monthly_total == 0.0
    (t,) = report.tenancies
    assert (t.instances, t.db_systems) == (2, 0)
    micro = [c for c in t.checks if c.what == "VM.Standard.E2.1.Micro instances"][0]
    assert (micro.needed, micro.limit, micro.ok) == (2, 2, True)
    boot = [c for c in t.checks if c.what.startswith("boot volume")][0]
    assert boot.needed == 50 + 50  # the app VM's default boot volume + the DB VM's dbStorageGbs


def test_two_students_with_db_vms_do_not_fit_one_tenancy_and_per_student_tenancies_do() -> None:
    from labctl.preflight import DOES_NOT_FIT, FITS, preflight

    report = preflight(_students(2), _class(dbEngine="mariadb-vm"))
    assert report.verdict == DOES_NOT_FIT
    assert "4 VM.Standard.E2.1.Micro instances needed, 2 allowed" in report.summary
    paid = [o for o in report.options if o.title.startswith("paid shapes")][0]
    assert (
        "1 app VM(s) on VM.Standard.A1.Flex" in paid.detail
        and "1 DB VM(s) on VM.Standard.A1.Flex (1 OCPU, 6 GB) too" in paid.detail
    )
    assert preflight(_students(2), _class(dbEngine="mariadb-vm", tenancies="per-student")).verdict == FITS


def test_a_db_vm_on_a1_uses_the_a1_pool() -> None:
    from labctl.preflight import FITS, preflight

    report = preflight(_students(1), _class(dbEngine="postgresql-vm", dbShape="VM.Standard.A1.Flex"))
    assert report.verdict == FITS
    (t,) = report.tenancies
    a1 = [c for c in t.checks if c.what == "A1 Flex OCPUs (Always Free pool)"][0]
    assert a1.needed == 1.0 and a1.ok


def test_sizing_lines_for_a_db_vm_and_managed_only_keys_warn() -> None:
    from conftest import plan_of

    from labctl.sizing import for_property, plan_lines

    lines = plan_lines({"oci-dblab:dbEngine": "postgresql-vm", "oci-dblab:dbStorageGbs": "80"})
    assert any(line.startswith("dbStorageGbs (now 80): changes in place; grow only") for line in lines)
    assert any(line.startswith("dbShape: changes in place") for line in lines)
    assert for_property("oci:Core/instance:Instance", "shape").key == "appShape"  # the app VM's row comes first
    plan = plan_of(dbEngine="mysql-vm", dbShape="VM.Standard.A1.Flex", dbBackupRetentionDays="7")
    assert any("dbBackupRetentionDays: set for mysql-vm" in w for w in plan.warnings)
    from conftest import named

    assert named(plan, "lab-db-vm").props["shapeConfig"] == {"ocpus": 1.0, "memoryInGbs": 6.0}


# --- labctl local: each engine (the DB-VM ones too) runs in the local lab in tests/test_engine_acceptance.py --------


def test_the_local_server_follows_the_engines_family() -> None:
    from conftest import plan_of

    from labctl.local.command import local_server

    assert local_server(plan_of(dbEngine="postgresql-vm").resources) == "postgresql"
    assert local_server(plan_of(dbEngine="mariadb-vm").resources) == "mariadb"


@pytest.mark.parametrize("db_state,vm_state", [("INACTIVE", "STOPPED"), ("ACTIVE", "RUNNING")])
def test_db_state_stops_and_starts_the_db_vm(db_state, vm_state) -> None:
    from conftest import named, plan_of

    plan = plan_of(dbEngine="postgresql-vm", dbState=db_state)
    vm = named(plan, "lab-db-vm")
    assert vm.props["state"] == vm_state  # sent either way: a later start must undo a stop
    assert named(plan, "lab-vm").outputs["state"] == "RUNNING"  # the app VM is not touched


# --- the setup script runs: real bash and openssl, the system's tools stubbed, /etc and /var overlaid --------------
#
# In a private mount namespace, /etc and /var are overlays whose writes land in the test's temp dir (the host's files
# are never touched); systemctl, firewall-cmd, restorecon, ip, hostname, mysql, runuser and postgresql-setup are stubs
# that record their arguments and input. What is proved: the script runs to the end under `set -euo pipefail`, finds
# the private IP, makes a certificate for it and the FQDN, writes the server configuration, hands the admin SQL to the
# server's client and opens the port in firewalld for the app subnet only.

STUBS = {
    "ip": '[ -n "$STUB_NO_IP" ] || echo "169.254.169.254 via 10.0.1.1 dev ens3 src 10.0.1.2 uid 0"',
    "hostname": '[ "${1:-}" = -f ] && echo db.priv.labvcn.oraclevcn.com || echo db',
    "systemctl": "",
    "firewall-cmd": "",
    "restorecon": "",
    "mysql": 'cat >>"$CALLS.sql"',
    "runuser": 'cat >>"$CALLS.sql"',
    "postgresql-setup": "mkdir -p /var/lib/pgsql/data && echo 13 >/var/lib/pgsql/data/PG_VERSION && "
    "echo '# stock' >/var/lib/pgsql/data/postgresql.conf",
}


def _run_setup(flavor: vmdb.Flavor, tmp_path, no_ip: bool = False):
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare (Linux): the overlay mounts")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    calls = tmp_path / "calls"
    for name, body in STUBS.items():
        path = stubs / name
        path.write_text(f'#!/bin/bash\necho "{name} $*" >>"$CALLS"\n{body}\n')
        path.chmod(0o755)
    script = tmp_path / "setup.sh"
    script.write_text(vmdb.render_setup_script(flavor, settings(flavor, "Lab-Admin#2026")))
    for d in ("etc-up", "etc-work", "var-up", "var-work"):
        (tmp_path / d).mkdir()
    # what the server packages ship on Oracle Linux 9 (mysql-server, mariadb-server: the option file directory and
    # the data directory, made by the package and its first start)
    (tmp_path / "etc-up" / "my.cnf.d").mkdir()
    (tmp_path / "var-up" / "lib" / "mysql").mkdir(parents=True)
    mounts = " && ".join(
        f"mount -t overlay overlay -o lowerdir=/{top},upperdir={tmp_path}/{top}-up,workdir={tmp_path}/{top}-work /{top}"
        for top in ("etc", "var")
    )
    env = {"PATH": f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin", "CALLS": str(calls), "STUB_NO_IP": "1" if no_ip else ""}
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "bash", "-c", f"{mounts} && bash {script}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log_path = tmp_path / "var-up" / "log" / "oci-dblab-db-setup.log"
    log = log_path.read_text() if log_path.exists() else ""
    return proc, log, calls.read_text() if calls.exists() else "", tmp_path


@pytest.mark.real_servers
@pytest.mark.parametrize("flavor", FLAVORS, ids=lambda f: f.engine)
def test_the_setup_script_runs_to_the_end(flavor: vmdb.Flavor, tmp_path) -> None:
    import subprocess

    proc, log, calls, root = _run_setup(flavor, tmp_path)
    assert proc.returncode == 0, proc.stderr + log
    assert f"listening on 10.0.1.2:{flavor.port} (TLS only)" in log
    rich = f'rule family="ipv4" source address="10.0.0.0/24" port port="{flavor.port}" protocol="tcp" accept'
    assert f"firewall-cmd --permanent --add-rich-rule={rich}" in calls.splitlines()
    assert f"systemctl enable --now {flavor.service}" in calls
    sql = (root / "calls.sql").read_text()
    assert vmdb.admin_verifier(flavor.family, "Lab-Admin#2026", CONTEXT) in sql and "Lab-Admin#2026" not in sql
    if flavor.family == "mysql":
        cnf = (root / "etc-up" / "my.cnf.d" / "zz-oci-dblab.cnf").read_text()
        assert "bind-address=10.0.1.2" in cnf and "require_secure_transport=ON" in cnf
        cert = root / "var-up" / "lib" / "mysql" / "oci-dblab-cert.pem"
        key = root / "var-up" / "lib" / "mysql" / "oci-dblab-key.pem"
        owner = "mysql"
    else:
        data = root / "var-up" / "lib" / "pgsql" / "data"
        assert "listen_addresses = '10.0.1.2'" in (data / "oci-dblab.conf").read_text()
        assert (data / "postgresql.conf").read_text().count("include 'oci-dblab.conf'") == 1
        assert "hostssl  all  all  10.0.0.0/24  scram-sha-256" in (data / "pg_hba.conf").read_text()
        cert, key, owner = data / "server.crt", data / "server.key", "postgres"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and key.owner() == owner
    san = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName", "-subject"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:db.priv.labvcn.oraclevcn.com" in san and "IP Address:10.0.1.2" in san and "CN = db" in san


@pytest.mark.real_servers
def test_the_setup_script_stops_when_it_finds_no_private_ip(tmp_path) -> None:
    proc, log, calls, _ = _run_setup(mysql_vm.FLAVOR, tmp_path, no_ip=True)
    assert proc.returncode != 0
    assert "no private IPv4 address found on this VM" in log
    assert "firewall-cmd" not in calls and "systemctl" not in calls  # nothing was set up half-way


def test_the_critical_path_says_the_db_vms_setup_time_is_unknown(vm_plan) -> None:
    from labctl.estimate import critical_path

    _, plan = vm_plan
    report = critical_path(plan.resources)
    assert [u for u in report.unknown if u.startswith("lab-db-vm: cloud-init installs")]


def test_the_critical_path_of_heatwave_has_no_setup_entry(plan) -> None:
    from labctl.estimate import setup_unknown

    assert setup_unknown(plan.resources) == []
