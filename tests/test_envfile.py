"""EnvFileProvider against real servers on 127.0.0.1: MariaDB with a generated TLS certificate, and sshd.

The provider methods are called directly (``EnvFileProvider().create(props)`` ...), exactly as the dynamic
provider host would call them. sshd plays the app VM (its "public IP" is 127.0.0.1) and forwards to MariaDB,
which plays the DB on its "private IP" (also 127.0.0.1, another port). Every fault test bounds its own run time
with a small checkTimeoutSeconds and asserts that bound.
"""

from __future__ import annotations

import base64
import io
import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paramiko
import pymysql
import pytest
from dotenv import dotenv_values
from pulumi.output import Unknown

from components import envcheck
from components.envfile import (
    PROVIDER_VERSION,
    UNKNOWN,
    EnvFileError,
    EnvFileProvider,
    is_unknown,
)
from tests.servers import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    LOOPBACK,
    OTHER_DB,
    SERVER_HOSTNAME,
    MariaDBServer,
    SilentListener,
    SshServer,
    TlsFiles,
    free_port,
    loopback_lab,
    make_ssh_key,
    start_later,
)

ROOT = Path(__file__).resolve().parent.parent
# What a RandomPassword could plausibly produce, plus the characters that break naive .env writers.
APP_PASSWORD = "Ap'p \"#1 $x \\y= z!"
FAULT_TIMEOUT_S = 4


@dataclass
class Lab:
    base: Path
    tls: TlsFiles
    db: MariaDBServer
    ssh: SshServer
    user_key: Path
    user_pub: str

    def props(self, tmp: Path, **over: Any) -> dict[str, Any]:
        """Provider properties as the engine sends them (numbers as floats), for a project dir under tmp."""
        props: dict[str, Any] = {
            "appHost": LOOPBACK,
            "sshUser": "root",
            "sshPort": float(self.ssh.port),
            "dbHost": LOOPBACK,
            "dbPort": float(self.db.port),
            "dbHostname": SERVER_HOSTNAME,
            "dbName": "lab",
            "adminUser": ADMIN_USER,
            "adminPassword": ADMIN_PASSWORD,
            "appUser": "lab_app",
            "appPassword": APP_PASSWORD,
            "localPath": str(tmp / "project" / ".env"),
            "remoteDir": str(tmp / "vm" / "home" / "app"),
            "sshPrivateKeyPath": str(self.user_key),
            "sslMode": "REQUIRED",
            "checkTimeoutSeconds": 30.0,
            "providerVersion": PROVIDER_VERSION,
        }
        props.update(over)
        return props


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with loopback_lab(tmp_path_factory.mktemp("lab")) as s:
        yield Lab(s.base, s.tls, s.db, s.ssh, s.user_key, s.user_pub)


def _env(path: str | Path) -> dict[str, str | None]:
    return dotenv_values(path)


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def _fails(props: dict[str, Any], bound_s: float) -> tuple[str, float]:
    """Run create, expect EnvFileError within bound_s; return (message, elapsed)."""
    t0 = time.monotonic()
    with pytest.raises(EnvFileError) as err:
        EnvFileProvider().create(props)
    elapsed = time.monotonic() - t0
    assert elapsed < bound_s, f"took {elapsed:.1f}s, bound {bound_s}s"
    message = str(err.value)
    for secret in (ADMIN_PASSWORD, APP_PASSWORD, props["adminPassword"], props["appPassword"]):
        assert secret not in message
    return message, elapsed


# --- create / update / delete -------------------------------------------------------------------------------


def test_create_writes_both_env_files_0600_and_the_check_passes(lab: Lab, tmp_path: Path):
    props = lab.props(tmp_path)
    result = EnvFileProvider().create(props)
    outs = result.outs
    assert result.id.startswith("envfile-")

    expected = {
        "DB_ENGINE": "mysql",
        "DB_HOST": LOOPBACK,
        "DB_PORT": str(lab.db.port),
        "DB_NAME": "lab",
        "DB_USER": "lab_app",
        "DB_PASSWORD": APP_PASSWORD,
        "DB_SSL_MODE": "REQUIRED",
        "DATABASE_URL": f"mysql://lab_app:{quote(APP_PASSWORD, safe='')}@{LOOPBACK}:{lab.db.port}/lab"
        "?ssl-mode=REQUIRED",
    }
    local, remote = Path(outs["path"]), Path(outs["remotePath"])
    assert local == (tmp_path / "project" / ".env").resolve()
    assert remote == tmp_path / "vm" / "home" / "app" / ".env"
    for f in (local, remote):
        assert _env(f) == expected
        assert _mode(f) == 0o600
    assert ADMIN_PASSWORD not in local.read_text()

    check = outs["check"]
    assert check["ok"] is True
    assert "MariaDB" in check["serverVersion"]
    assert check["currentUser"] == "lab_app@%"
    assert check["tls"]["cipher"] and check["tls"]["version"].startswith("TLS")
    assert 0 < check["latencyMs"] < 1000 and check["attempts"] == 1
    assert APP_PASSWORD not in json.dumps(check) and ADMIN_PASSWORD not in json.dumps(check)
    # inputs are carried through (numbers normalised), and the host key was recorded on first use
    assert outs["dbPort"] == lab.db.port and outs["sshPort"] == lab.ssh.port
    assert f"[{LOOPBACK}]:{lab.ssh.port} ssh-ed25519" in Path(outs["knownHostsPath"]).read_text()


def test_app_user_is_confined_to_its_database_and_needs_tls(lab: Lab, tmp_path: Path):
    EnvFileProvider().create(lab.props(tmp_path))
    app = lab.db.connect("lab_app", APP_PASSWORD, "lab")
    try:
        with app.cursor() as cur:
            cur.execute("CREATE TABLE t_ok (id INT)")
            cur.execute("DROP TABLE t_ok")
            for statement in (
                f"SELECT * FROM `{OTHER_DB}`.secrets",
                f"INSERT INTO `{OTHER_DB}`.secrets VALUES (2, 'x')",
                f"CREATE TABLE `{OTHER_DB}`.mine (id INT)",
                "CREATE DATABASE sneaky",
                "SELECT user FROM mysql.user",
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cur.execute(statement)
                assert denied.value.args[0] in (1044, 1142), statement
            cur.execute("SHOW GRANTS")
            grants = " ".join(row[0] for row in cur.fetchall())
    finally:
        app.close()
    assert "ALL PRIVILEGES" not in grants and "GRANT OPTION" not in grants and "ON `lab`.*" in grants
    with pytest.raises(pymysql.err.OperationalError) as plaintext:
        pymysql.connect(
            host=LOOPBACK,
            port=lab.db.port,
            user="lab_app",
            password=APP_PASSWORD.encode(),
            ssl_disabled=True,
            connect_timeout=5,
        )
    assert plaintext.value.args[0] == 1045  # REQUIRE SSL on the account


def test_update_rewrites_env_resets_password_and_moves_files(lab: Lab, tmp_path: Path):
    provider = EnvFileProvider()
    olds = provider.create(lab.props(tmp_path)).outs
    news = lab.props(tmp_path, appPassword="N3w 'pass' #2 \\", localPath=str(tmp_path / "moved" / "app.env"))
    diff = provider.diff("id", olds, news)
    assert diff.changes is True and diff.replaces == []
    outs = provider.update("id", olds, news).outs
    assert _env(outs["path"])["DB_PASSWORD"] == "N3w 'pass' #2 \\"
    assert _env(outs["remotePath"])["DB_PASSWORD"] == "N3w 'pass' #2 \\"
    assert _mode(outs["path"]) == 0o600
    assert not Path(olds["path"]).exists()  # the old local .env went away
    lab.db.connect("lab_app", "N3w 'pass' #2 \\", "lab").close()
    with pytest.raises(pymysql.err.OperationalError):
        lab.db.connect("lab_app", APP_PASSWORD, "lab")


def test_update_renaming_the_app_user_drops_the_old_one(lab: Lab, tmp_path: Path):
    provider = EnvFileProvider()
    olds = provider.create(lab.props(tmp_path, appUser="first_app")).outs
    outs = provider.update("id", olds, lab.props(tmp_path, appUser="second_app")).outs
    assert _env(outs["path"])["DB_USER"] == "second_app"
    admin = lab.db.admin_connect()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT user FROM mysql.user WHERE user IN ('first_app', 'second_app')")
            assert [r[0] for r in cur.fetchall()] == ["second_app"]
    finally:
        admin.close()


def test_delete_removes_local_and_remote_env_and_forgets_the_host_key(lab: Lab, tmp_path: Path):
    provider = EnvFileProvider()
    outs = provider.create(lab.props(tmp_path)).outs
    provider.delete("id", outs)
    assert not Path(outs["path"]).exists()
    assert not Path(outs["remotePath"]).exists()
    assert f"[{LOOPBACK}]:{lab.ssh.port}" not in Path(outs["knownHostsPath"]).read_text()
    provider.delete("id", outs)  # deleting twice is harmless


def test_delete_never_fails_for_an_unreachable_vm(lab: Lab, tmp_path: Path):
    provider = EnvFileProvider()
    outs = provider.create(lab.props(tmp_path)).outs
    gone = dict(outs, sshPort=float(free_port()))  # nothing listens there any more
    t0 = time.monotonic()
    provider.delete("id", gone)
    assert time.monotonic() - t0 < 5
    assert not Path(outs["path"]).exists()
    assert Path(outs["remotePath"]).exists()  # unreachable: left as it was, and no error


def test_verify_identity_against_the_generated_ca(lab: Lab, tmp_path: Path):
    props = lab.props(tmp_path, sslMode="VERIFY_IDENTITY", sslCa=str(lab.tls.ca_cert))
    outs = EnvFileProvider().create(props).outs
    assert outs["check"]["ok"] is True
    assert _env(outs["path"])["DB_SSL_MODE"] == "VERIFY_IDENTITY"


# --- faults -------------------------------------------------------------------------------------------------


def test_sshd_started_late_is_retried_then_passes(lab: Lab, tmp_path: Path):
    late = SshServer(tmp_path / "late-sshd", [lab.user_pub]).prepare()
    try:
        starter = start_later(1.5, late.start)
        outs = EnvFileProvider().create(lab.props(tmp_path, sshPort=float(late.port), checkTimeoutSeconds=20.0)).outs
        starter.join(timeout=20)
    finally:
        late.stop()
    assert outs["check"]["ok"] is True and outs["check"]["attempts"] > 1


def test_db_started_late_is_retried_then_passes(lab: Lab, tmp_path: Path):
    late = MariaDBServer(tmp_path / "late-db", lab.tls).prepare()
    try:
        starter = start_later(1.5, lambda: late.start(wait=0))
        outs = EnvFileProvider().create(lab.props(tmp_path, dbPort=float(late.port), checkTimeoutSeconds=25.0)).outs
        starter.join(timeout=20)
    finally:
        late.stop()
    assert outs["check"]["ok"] is True and outs["check"]["attempts"] > 1
    assert _env(outs["path"])["DB_PORT"] == str(late.port)


def test_forward_to_a_closed_port_names_the_private_security_list(lab: Lab, tmp_path: Path):
    closed = free_port()
    message, elapsed = _fails(
        lab.props(tmp_path, dbPort=float(closed), checkTimeoutSeconds=FAULT_TIMEOUT_S), FAULT_TIMEOUT_S + 3
    )
    assert "forward hop" in message and f"{LOOPBACK}:{closed}" in message
    assert f"private subnet's security list must allow TCP {closed} from the app (public) subnet CIDR" in message
    assert "gave up after" in message and elapsed >= FAULT_TIMEOUT_S - 0.5
    assert not (tmp_path / "project" / ".env").exists()  # nothing written when the check fails


def test_wrong_admin_password_fails_fast_as_credentials_without_the_password(lab: Lab, tmp_path: Path):
    wrong = "Wr0ng 'pw' #$ \\ ="
    message, _ = _fails(lab.props(tmp_path, adminPassword=wrong), 5)
    assert wrong not in message and repr(wrong)[1:-1] not in message
    assert "MySQL hop" in message and "access denied" in message and "credentials" in message
    assert "dbAdminUser and dbPassword" in message and "not retried" in message


def test_tls_required_but_server_without_tls(lab: Lab, tmp_path: Path):
    plain = MariaDBServer(tmp_path / "plain-db", tls=None).prepare()
    try:
        plain.start()
        message, _ = _fails(lab.props(tmp_path, dbPort=float(plain.port)), 5)
    finally:
        plain.stop()
    assert "does not offer TLS" in message and "TLS settings" in message and "not retried" in message


def test_verify_identity_with_the_wrong_name_is_a_tls_error(lab: Lab, tmp_path: Path):
    props = lab.props(tmp_path, sslMode="VERIFY_IDENTITY", sslCa=str(lab.tls.ca_cert), dbHostname="wrong.lab.test")
    message, _ = _fails(props, 5)
    assert "TLS handshake failed" in message and "wrong.lab.test" in message


def test_timeout_reached_against_an_sshd_that_never_answers(lab: Lab, tmp_path: Path):
    silent = SilentListener()
    try:
        message, elapsed = _fails(
            lab.props(tmp_path, sshPort=float(silent.port), checkTimeoutSeconds=FAULT_TIMEOUT_S), FAULT_TIMEOUT_S + 3
        )
    finally:
        silent.close()
    assert "SSH hop" in message and "timed out" in message and "adminCidr" in message
    assert "gave up after" in message and elapsed >= FAULT_TIMEOUT_S - 0.5


def test_nothing_listening_for_ssh_is_retried_until_the_deadline(lab: Lab, tmp_path: Path):
    message, _ = _fails(lab.props(tmp_path, sshPort=float(free_port()), checkTimeoutSeconds=2.0), 6)
    assert "SSH hop" in message and "connection refused" in message and "gave up after" in message


def test_wrong_ssh_key_fails_fast(lab: Lab, tmp_path: Path):
    other_key = tmp_path / "other_key"
    make_ssh_key(other_key)
    message, _ = _fails(lab.props(tmp_path, sshPrivateKeyPath=str(other_key)), 5)
    assert "rejected the key" in message and str(other_key) in message and "not retried" in message


def test_changed_host_key_is_refused(lab: Lab, tmp_path: Path):
    impostor = paramiko.Ed25519Key.from_private_key(io.StringIO(_openssh_key()))
    kh = envcheck.known_hosts_path(tmp_path / "project" / ".env")
    kh.parent.mkdir(parents=True)
    kh.write_text(f"[{LOOPBACK}]:{lab.ssh.port} ssh-ed25519 {impostor.get_base64()}\n")
    message, _ = _fails(lab.props(tmp_path), 5)
    assert "host key changed" in message and str(kh) in message
    assert f"ssh-keygen -R '[{LOOPBACK}]:{lab.ssh.port}' -f {kh}" in message
    assert impostor.fingerprint in message  # the recorded key, so the student can compare


def test_sshd_without_forwarding_is_reported(lab: Lab, tmp_path: Path):
    locked = SshServer(tmp_path / "noforward", [lab.user_pub], allow_tcp_forwarding=False).prepare()
    try:
        locked.start()
        message, _ = _fails(lab.props(tmp_path, sshPort=float(locked.port)), 5)
    finally:
        locked.stop()
    assert "AllowTcpForwarding" in message


def _openssh_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )


# --- check / diff (no servers needed, but the same provider) ------------------------------------------------


def _valid(tmp_path: Path, **over: Any) -> dict[str, Any]:
    key = tmp_path / "id_ed25519"
    if not key.exists():
        key.write_text("placeholder; check() only needs the file to exist")
    props: dict[str, Any] = {
        "appHost": "129.146.10.20",
        "sshUser": "opc",
        "dbHost": "10.0.2.15",
        "dbPort": 3306.0,
        "dbHostname": "labdb.private.labvcn.oraclevcn.com",
        "dbName": "lab",
        "adminUser": "admin",
        "adminPassword": "Adm1n#Secret",
        "appUser": "lab_app",
        "appPassword": "App#Secret1",
        "localPath": ".env",
        "remoteDir": "/home/opc/app",
        "sshPrivateKeyPath": str(key),
        "__provider": "serialized",
    }
    props.update(over)
    return props


def test_check_fills_defaults_and_normalises_numbers(tmp_path: Path):
    result = EnvFileProvider().check({}, _valid(tmp_path, sshPort=None, checkTimeoutSeconds="90"))
    assert result.failures == []
    inputs = result.inputs
    assert inputs["sshPort"] == 22 and inputs["dbPort"] == 3306 and inputs["checkTimeoutSeconds"] == 90
    assert inputs["sslMode"] == "REQUIRED" and inputs["providerVersion"] == PROVIDER_VERSION
    assert inputs["__provider"] == "serialized"


@pytest.mark.parametrize(
    ("over", "prop", "words"),
    [
        ({"appHost": ""}, "appHost", "public IP"),
        ({"dbPort": 70000.0}, "dbPort", "1 to 65535"),
        ({"dbName": "lab-db"}, "dbName", "letters, digits and _"),
        ({"appUser": "admin"}, "appUser", "must differ from adminUser"),
        ({"appUser": "x'; DROP"}, "appUser", "letters, digits and _"),
        ({"appPassword": "pa${HOME}ss"}, "appPassword", "'${"),
        ({"adminPassword": ""}, "adminPassword", "never shown"),
        ({"sslMode": "PREFERRED"}, "sslMode", "REQUIRED"),
        ({"sslMode": "VERIFY_CA", "sslCa": "/nope/ca.pem"}, "sslCa", "/nope/ca.pem"),
        ({"checkTimeoutSeconds": 0.0}, "checkTimeoutSeconds", "1 to 3600"),
        ({"sshPrivateKeyPath": "/nope/id_ed25519"}, "sshPrivateKeyPath", "no private key file at /nope/id_ed25519"),
    ],
)
def test_check_rejects_bad_inputs_clearly(tmp_path: Path, over: dict[str, Any], prop: str, words: str):
    failures = EnvFileProvider().check({}, _valid(tmp_path, **over)).failures
    assert [f.property for f in failures] == [prop]
    assert words in failures[0].reason
    assert "pa${HOME}ss" not in failures[0].reason and "Adm1n#Secret" not in failures[0].reason


def test_check_without_any_default_key_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    failures = EnvFileProvider().check({}, _valid(tmp_path, sshPrivateKeyPath="")).failures
    assert [f.property for f in failures] == ["sshPrivateKeyPath"] and "~/.ssh/id_ed25519" in failures[0].reason
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    (tmp_path / "home" / ".ssh" / "id_ecdsa").write_text("k")
    assert EnvFileProvider().check({}, _valid(tmp_path, sshPrivateKeyPath="")).failures == []


def test_check_in_preview_accepts_unknown_values(tmp_path: Path):
    news = _valid(tmp_path, appHost=UNKNOWN, dbHost=UNKNOWN, dbPort=UNKNOWN, adminPassword=UNKNOWN, dbHostname=UNKNOWN)
    result = EnvFileProvider().check({}, news)
    assert result.failures == []
    assert result.inputs["appHost"] == UNKNOWN and result.inputs["dbPort"] == UNKNOWN


@pytest.mark.parametrize(
    "unknown",
    [
        Unknown(),  # what the SDK's provider host hands check()/diff() (keep_unknowns=True)
        UNKNOWN,  # the engine's string sentinel
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # the engine's number sentinel (rpc.go UnknownNumberValue)
        ["x", Unknown()],  # nested
        {"a": {"b": UNKNOWN}},
    ],
    ids=["Unknown-object", "string-sentinel", "number-sentinel", "in-list", "in-dict"],
)
def test_every_form_of_unknown_passes_check_and_diffs_as_a_change(tmp_path: Path, unknown: Any):
    assert is_unknown(unknown)
    provider = EnvFileProvider()
    keys = ("appHost", "dbHost", "dbHostname", "dbPort", "adminPassword", "appPassword", "sslCa", "sshPort")
    news = _valid(tmp_path, **{k: unknown for k in keys})
    result = provider.check({}, news)
    assert result.failures == []
    assert all(result.inputs[k] is unknown for k in keys)
    olds = provider.check({}, _valid(tmp_path)).inputs
    assert provider.diff("id", olds, news).changes is True


def test_known_values_are_not_mistaken_for_unknowns():
    for value in ("", "04da6b54", "x", 3306, 0.0, None, [], {}, ["a"], {"k": "v"}):
        assert not is_unknown(value), value


def test_diff_never_replaces_and_updates_on_any_input_or_provider_version(tmp_path: Path):
    provider = EnvFileProvider()
    olds = provider.check({}, _valid(tmp_path)).inputs
    olds.update({"path": "/x/.env", "remotePath": "/home/opc/app/.env", "check": {"ok": True}})
    same = provider.diff("id", olds, _valid(tmp_path))
    assert same.changes is False and same.replaces == []
    for key, value in [
        ("appPassword", "Other#Secret2"),
        ("dbHost", "10.0.2.16"),
        ("sslMode", "VERIFY_CA"),
        ("providerVersion", PROVIDER_VERSION + ".1"),
        ("appHost", UNKNOWN),
        ("dbPort", 3307.0),
    ]:
        result = provider.diff("id", olds, _valid(tmp_path, **{key: value}))
        assert result.changes is True, key
        assert result.replaces == [] and result.delete_before_replace is False
    before_versioning = {k: v for k, v in olds.items() if k != "providerVersion"}
    assert provider.diff("id", before_versioning, _valid(tmp_path)).changes is True


# --- Pulumi wiring ------------------------------------------------------------------------------------------

_PREVIEW_PROGRAM = r"""
import asyncio, json, sys
import pulumi
from pulumi.output import Unknown

seen = {}

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        seen[args.typ] = {
            "unknown": sorted(k for k, v in args.inputs.items() if isinstance(v, Unknown)),
            "keys": sorted(args.inputs),
        }
        return (args.name + "-id", {} if args.typ == "test:index:Vm" else dict(args.inputs))

    def call(self, args):
        return {}

pulumi.runtime.set_mocks(Mocks(), preview=True)
from components.envfile import EnvFile, EnvFileArgs

vm = pulumi.CustomResource("test:index:Vm", "vm", {"publicIp": None, "privateIp": None})
ef = EnvFile("lab", EnvFileArgs(
    app_host=vm.publicIp, ssh_user="opc", db_host=vm.privateIp, db_port=3306, db_hostname="db.example",
    db_name="lab", admin_user="admin", admin_password=pulumi.Output.secret("Adm1n#pw"), app_user="lab_app",
    app_password=pulumi.Output.secret("App#pw1"), local_path=".env", remote_dir="/home/opc/app",
    ssh_private_key_path=""))

async def probe():
    await asyncio.sleep(0.5)
    return {
        "admin_secret": await ef.admin_password.is_secret(),
        "app_secret": await ef.app_password.is_secret(),
        "app_host_known": await ef.app_host.is_known(),
        "db_name": await ef.db_name.future(),
        "has_outputs": all(hasattr(ef, a) for a in ("path", "remote_path", "check", "known_hosts_path")),
    }

result = asyncio.get_event_loop().run_until_complete(probe())
result["seen"] = seen
print(json.dumps(result))
"""


def test_constructing_envfile_in_preview_with_unknown_inputs_does_not_crash():
    proc = subprocess.run(
        [sys.executable, "-c", _PREVIEW_PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    registered = result["seen"]["pulumi-python:dynamic/dblab:EnvFile"]
    assert registered["unknown"] == ["appHost", "dbHost"]
    assert {"appHost", "adminPassword", "appPassword", "providerVersion", "__provider"} <= set(registered["keys"])
    assert result["admin_secret"] and result["app_secret"] and not result["app_host_known"]
    assert result["db_name"] == "lab" and result["has_outputs"]


def test_provider_is_pickled_by_reference_and_loads_in_a_fresh_process():
    from pulumi.dynamic.dynamic import serialize_provider

    blob = serialize_provider(EnvFileProvider())
    raw = base64.b64decode(blob)
    assert b"components.envfile" in raw and b"EnvFileProvider" in raw
    assert len(raw) < 400  # a reference, not the class's code
    program = (
        "import base64, sys, dill; p = dill.loads(base64.b64decode(sys.argv[1])); "
        "print(type(p).__module__, type(p).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", program, blob], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["components.envfile", "EnvFileProvider"]
