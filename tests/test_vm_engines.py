"""The DB-VM engines (mysql-vm, mariadb-vm, postgresql-vm): verifiers, cloud-init content, the admin user for real."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pymysql
import pytest
import yaml

from engines import mariadb_vm, mysql_vm, postgresql_vm, vmdb
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
        "db_name": "lab",
        "app_user": "app",
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


def test_scram_refuses_non_ascii_passwords() -> None:
    with pytest.raises(ValueError):
        vmdb.scram_sha256_verifier("pässwort", b"0123456789abcdef")
    assert vmdb.password_problem("pässwort", "admin")
    assert vmdb.password_problem("Lab-Admin#2026", "admin") is None


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
        ["hostssl", "lab", "app", "10.20.0.0/24", "scram-sha-256"],
        ["hostssl", "all", "admin", "10.20.0.0/16", "scram-sha-256"],
    ]
    conf = body.split("<<EOF_CONF\n", 1)[1].split("EOF_CONF", 1)[0]
    assert "listen_addresses = '${IP}'" in conf and "ssl = on" in conf
    assert "password_encryption = 'scram-sha-256'" in conf


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"admin_user": "admin'; DROP"}, "dbAdminUser"),
        ({"db_name": "lab\nrm"}, "dbName"),
        ({"app_user": "a b"}, "dbAppUser"),
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
