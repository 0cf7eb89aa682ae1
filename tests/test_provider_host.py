"""EnvFile served the way the Pulumi engine serves it: through the SDK's own provider host, over gRPC.

``labctl.providerhost.ProviderHost`` starts ``python -m pulumi.dynamic`` in a fresh interpreter with the program
directory as cwd, hands it the provider pickled as ``pulumi.dynamic.Resource`` pickles it, and speaks Configure,
Check, Diff, Create, Read, Update and Delete with values encoded as the engine encodes them (unknowns in a
preview, secrets sent plain because the host answers ``acceptSecrets: false``, numbers as doubles, saved outputs
for Diff/Update/Read/Delete). The inputs are the ones the real ``__main__.py`` registers for ``lab-env`` (taken
from an offline run), pointed at a real MariaDB (TLS) and a real sshd on 127.0.0.1.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
from dotenv import dotenv_values

from components.envfile import PROVIDER_VERSION, SECRET_KEYS, EnvFileProvider
from labctl import offline
from labctl.providerhost import (
    UNKNOWN,
    InvalidInputs,
    ProviderError,
    ProviderHost,
    ProviderHostError,
    ResourceState,
    Secret,
    _Wire,
    annotate_secrets,
    contains_unknowns,
    redacted,
    reveal,
    secret,
)
from tests.conftest import named, plan_of
from tests.servers import (
    ADMIN_PASSWORD,
    LOOPBACK,
    SERVER_HOSTNAME,
    MariaDBServer,
    SshServer,
    loopback_lab,
    make_ssh_key,
)
from tests.wire_providers import ECHO_SECRET, EchoProvider, LeakyProvider

ROOT = Path(__file__).resolve().parent.parent
ENVFILE_TYPE = "pulumi-python:dynamic/dblab:EnvFile"
APP_PASSWORD = "Ap'p \"#1 $x \\y= z!"
NEW_APP_PASSWORD = "N3w 'pass' #2 \\ ok"


@dataclass
class Servers:
    db: MariaDBServer
    ssh: SshServer
    user_key: Path
    user_pub: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with loopback_lab(tmp_path_factory.mktemp("host-lab")) as s:
        yield Servers(s.db, s.ssh, s.user_key, s.user_pub)


@pytest.fixture(scope="module")
def program_inputs() -> dict[str, Any]:
    """The inputs the real program registers for lab-env (offline run), secret ones marked secret."""
    env = named(plan_of(), "lab-env")
    props = {k: v for k, v in env.props.items() if k != "__provider"}
    for key in env.secret_paths - {"__provider"}:
        props[key] = secret(props[key])
    assert set(SECRET_KEYS) <= set(env.secret_paths)
    return props


def lab_inputs(program: dict[str, Any], servers: Servers, tmp: Path, ssh: SshServer | None = None, **over: Any):
    """The program's inputs with the VM and the DB played by the loopback servers."""
    props = dict(program)
    props.update(
        appHost=LOOPBACK,
        sshUser="root",
        sshPort=(ssh or servers.ssh).port,
        dbHost=LOOPBACK,
        dbPort=servers.db.port,
        dbHostname=SERVER_HOSTNAME,
        adminPassword=secret(ADMIN_PASSWORD),
        appPassword=secret(APP_PASSWORD),
        localPath=str(tmp / "project" / ".env"),
        remoteDir=str(tmp / "vm" / "home" / "opc" / "app"),
        sshPrivateKeyPath=str(servers.user_key),
        checkTimeoutSeconds=30,
    )
    props.update(over)
    return props


@pytest.fixture
def host() -> Iterator[ProviderHost]:
    with ProviderHost(EnvFileProvider(), cwd=ROOT, resource_type=ENVFILE_TYPE, name="lab-env") as h:
        yield h


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def _app_users(db: MariaDBServer) -> list[str]:
    admin = db.admin_connect()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT user FROM mysql.user WHERE user LIKE 'lab%%' ORDER BY user")
            return [row[0] for row in cur.fetchall()]
    finally:
        admin.close()


def _assert_no_plain_secret(value: Any, *secrets: str) -> None:
    """Nothing outside a Secret wrapper (and no text) contains any of ``secrets``."""
    text = repr(redacted(value)) if not isinstance(value, str) else value
    for s in secrets:
        assert s not in text and repr(s)[1:-1] not in text


# --- the host and the wire ----------------------------------------------------------------------------------


def test_the_host_answers_configure_as_the_engine_expects(host: ProviderHost):
    assert host.capabilities == {
        "acceptSecrets": False,
        "supportsPreview": False,
        "acceptResources": False,
        "acceptOutputs": False,
    }
    assert host.urn == f"urn:pulumi:dev::oci-dblab::{ENVFILE_TYPE}::lab-env"


def test_values_reach_the_provider_as_the_engine_sends_them(tmp_path: Path):
    """A provider that reports the Python types it was handed: doubles, plain secrets, Unknown objects."""
    with ProviderHost(EchoProvider(), cwd=ROOT) as h:
        news = {
            "port": 3306,
            "ratio": 0.5,
            "flag": True,
            "password": secret(ECHO_SECRET),
            "later": UNKNOWN,
            "nested": {"ip": UNKNOWN, "tags": ["a", UNKNOWN]},
            "empty": None,
        }
        checked = h.check({}, news)
        seen = checked.inputs["seen"]
        assert seen["port"] == "float:3306.0" and seen["ratio"] == "float:0.5" and seen["flag"] == "bool:True"
        assert seen["password"] == "str:[the secret]"  # plain, not a {sig: secret} wrapper
        assert seen["later"] == "Unknown" and seen["nested"] == {"ip": "Unknown", "tags": ["str:a", "Unknown"]}
        assert "empty" not in seen  # nulls are dropped by the host's deserializer
        assert checked.inputs["password"] == Secret(ECHO_SECRET)  # re-marked secret (engine's annotateSecrets)
        assert checked.inputs["later"] is UNKNOWN and checked.inputs["nested"]["tags"][1] is UNKNOWN
        assert repr(checked.inputs["password"]) == "Secret([secret])"


def test_create_and_update_in_a_preview_never_reach_a_provider_without_preview_support(tmp_path: Path):
    marker = tmp_path / "created"
    with ProviderHost(EchoProvider(), cwd=ROOT) as h:
        inputs = {"marker": str(marker), "later": UNKNOWN}
        assert h.create(inputs, preview=True) == ("", inputs)
        assert h.update("id-1", {"marker": str(marker)}, inputs, preview=True) == inputs
        assert not marker.exists()
        new_id, outs = h.create({"marker": str(marker)})
        assert marker.exists() and new_id == "echo-1" and outs["created"] is True


def test_errors_come_back_as_one_clear_exception_without_secrets(tmp_path: Path):
    with ProviderHost(LeakyProvider(), cwd=ROOT) as h:
        with pytest.raises(ProviderError) as err:
            h.create({"password": secret("Hunter2-'quoted' \\ $x"), "other": "visible"})
    e = err.value
    assert e.method == "Create" and e.code == "UNKNOWN"
    assert str(e).startswith("Create failed in the dynamic provider host (UNKNOWN): RuntimeError: cannot log in")
    assert "visible" in str(e)
    for text in (str(e), e.details, repr(e)):
        _assert_no_plain_secret(text, "Hunter2-'quoted' \\ $x")
    assert "[secret]" in str(e)


def test_the_host_process_is_killed_on_exit_even_after_a_failure():
    with pytest.raises(ProviderError):
        with ProviderHost(LeakyProvider(), cwd=ROOT) as h:
            pid = h.pid
            assert pid is not None
            os.kill(pid, 0)  # running
            h.create({"password": secret("x1"), "other": "y"})
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_host_started_outside_the_program_directory_says_so(tmp_path: Path):
    with ProviderHost(EchoProvider(), cwd=tmp_path) as h:
        with pytest.raises(ProviderError) as err:
            h.check({}, {"x": 1})
    assert "No module named 'tests'" in str(err.value) and f"cwd {tmp_path}" in str(err.value)


def test_a_host_that_cannot_start_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ProviderHostError) as err:
        with ProviderHost(EchoProvider(), cwd=ROOT, python="/bin/false", timeout=10):
            pass
    assert "exited with 1 before printing its port" in str(err.value)
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho no-port-here\nsleep 30\n")
    broken.chmod(0o755)
    with pytest.raises(ProviderHostError) as err:
        with ProviderHost(EchoProvider(), cwd=ROOT, python=str(broken), timeout=10):
            pass
    assert "instead of a port" in str(err.value)


# --- EnvFile through the host: preview, up, no-change up, update, refresh, destroy ---------------------------


@pytest.fixture(scope="module")
def fresh_preview_inputs() -> dict[str, Any]:
    """What the real program registers for lab-env in a preview of a fresh stack: the OCI mocks answer every
    resource as the engine answers a create in a preview (no id, the inputs back, computed outputs unknown), so
    the VM's IPs, the DB system's endpoint and the RandomPasswords' results are unknown, as in `pulumi preview`."""
    original = offline.OciMocks.new_resource

    def as_in_a_preview(self: offline.OciMocks, args: Any) -> tuple[str, dict]:
        original(self, args)  # keep the mocks' bookkeeping (subnets, labels)
        return "", dict(args.inputs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(offline.OciMocks, "new_resource", as_in_a_preview)
        env = named(plan_of(), "lab-env")
    props = {k: v for k, v in env.props.items() if k != "__provider"}
    for key in env.secret_paths - {"__provider"}:
        props[key] = secret(props[key])
    return props


def test_preview_of_a_fresh_stack_passes_check_with_unknowns(fresh_preview_inputs: dict[str, Any], tmp_path: Path):
    """Issue 8 item 1: the host turns unknowns into pulumi.output.Unknown before check(); any failure here stops
    the engine, preview or not. The student's default key (~/.ssh/id_ed25519) exists, as on their machine."""
    news = fresh_preview_inputs
    unknown = {k for k, v in news.items() if reveal(v) is not None and contains_unknowns(v)}
    assert {"appHost", "dbHost", "dbHostname", "adminPassword", "appPassword"} <= unknown
    local_env = ROOT / str(reveal(news["localPath"]))
    before = local_env.stat().st_mtime_ns if local_env.exists() else None
    home = tmp_path / "home"
    make_ssh_key(home / ".ssh" / "id_ed25519")
    with ProviderHost(
        EnvFileProvider(), cwd=ROOT, env={"HOME": str(home)}, resource_type=ENVFILE_TYPE, name="lab-env"
    ) as host:
        checked = host.check({}, news)
        assert checked.failures == []
        for key in unknown:
            assert reveal(checked.inputs[key]) is UNKNOWN, key
        assert checked.inputs["sshPort"] == 22 and checked.inputs["providerVersion"] == PROVIDER_VERSION
        assert isinstance(checked.inputs["adminPassword"], Secret)
        op, state = host.up(news, preview=True)
    assert op == "create" and state.id == ""
    assert (local_env.stat().st_mtime_ns if local_env.exists() else None) == before  # a preview writes nothing


def test_preview_of_an_existing_stack_with_unknown_inputs_diffs_as_an_update(
    host: ProviderHost, program_inputs: dict[str, Any], servers: Servers, tmp_path: Path
):
    op, state = host.up(lab_inputs(program_inputs, servers, tmp_path))
    assert op == "create"
    env = Path(state.outputs["path"])
    before = (env.read_bytes(), env.stat().st_mtime_ns)
    # e.g. the VM is being replaced: its public IP and the new app password are not known in the preview
    news = lab_inputs(program_inputs, servers, tmp_path, appHost=UNKNOWN, appPassword=secret(UNKNOWN))
    checked = host.check(state.inputs, news)
    assert checked.failures == []
    diff = host.diff(state.id, state.outputs, checked.inputs, old_inputs=state.inputs)
    assert diff.changes is True and diff.replaces == [] and diff.delete_before_replace is False
    op, planned = host.up(news, state, preview=True)
    assert op == "update" and planned.outputs["appHost"] is UNKNOWN
    assert (env.read_bytes(), env.stat().st_mtime_ns) == before  # a preview changed nothing
    host.destroy(state)


def test_a_stacks_life_up_same_update_refresh_destroy(
    host: ProviderHost, program_inputs: dict[str, Any], servers: Servers, tmp_path: Path
):
    news = lab_inputs(program_inputs, servers, tmp_path)

    # up: Check (olds = {}), then Create with the checked inputs
    checked = host.check({}, news)
    assert checked.failures == []
    rid, outs = host.create(checked.inputs)
    assert rid.startswith("envfile-")
    local, remote = Path(outs["path"]), Path(outs["remotePath"])
    assert local == (tmp_path / "project" / ".env").resolve()
    assert remote == tmp_path / "vm" / "home" / "opc" / "app" / ".env"
    for f in (local, remote):
        values = dotenv_values(f)
        assert values["DB_USER"] == "lab_app" and values["DB_PASSWORD"] == APP_PASSWORD
        assert values["DB_PORT"] == str(servers.db.port) and values["DB_ENGINE"] == "mysql"
        assert _mode(f) == 0o600
        assert ADMIN_PASSWORD not in f.read_text()
    assert _app_users(servers.db) == ["lab_app"]
    servers.db.connect("lab_app", APP_PASSWORD, "lab").close()
    assert outs["check"]["ok"] is True and outs["check"]["currentUser"] == "lab_app@%"
    assert outs["dbPort"] == servers.db.port and isinstance(outs["dbPort"], float)  # a double on the wire
    assert all(isinstance(outs[k], Secret) for k in SECRET_KEYS)  # re-marked secret by the engine's rule
    _assert_no_plain_secret(outs, ADMIN_PASSWORD, APP_PASSWORD)
    state = ResourceState(rid, checked.inputs, outs)

    # a no-change up: Check (olds = saved inputs), Diff (olds = saved outputs) says no changes
    mtime = local.stat().st_mtime_ns
    checked = host.check(state.inputs, news)
    diff = host.diff(state.id, state.outputs, checked.inputs, old_inputs=state.inputs)
    assert diff.changes is False
    assert host.up(news, state)[0] == "same"
    assert local.stat().st_mtime_ns == mtime

    # an update: a new app password -> Diff says changes -> Update rewrites both files and resets the password
    news2 = lab_inputs(program_inputs, servers, tmp_path, appPassword=secret(NEW_APP_PASSWORD))
    checked = host.check(state.inputs, news2)
    diff = host.diff(state.id, state.outputs, checked.inputs, old_inputs=state.inputs)
    assert diff.changes is True and diff.replaces == []
    outs2 = host.update(state.id, state.outputs, checked.inputs, old_inputs=state.inputs)
    for f in (local, remote):
        assert dotenv_values(f)["DB_PASSWORD"] == NEW_APP_PASSWORD and _mode(f) == 0o600
    servers.db.connect("lab_app", NEW_APP_PASSWORD, "lab").close()
    with pytest.raises(pymysql.err.OperationalError):
        servers.db.connect("lab_app", APP_PASSWORD, "lab")
    _assert_no_plain_secret(outs2, ADMIN_PASSWORD, APP_PASSWORD, NEW_APP_PASSWORD)
    state = ResourceState(state.id, checked.inputs, outs2)

    # refresh: Read with the saved outputs and inputs keeps the state
    read_id, read_outs = host.read(state.id, state.outputs, inputs=state.inputs)
    assert read_id == state.id and reveal(read_outs) == reveal(state.outputs)
    assert host.refresh(state).outputs["check"] == state.outputs["check"]

    # destroy: Delete with the saved outputs removes both files and forgets the VM's host key
    known_hosts = Path(state.outputs["knownHostsPath"])
    assert f"[{LOOPBACK}]:{servers.ssh.port}" in known_hosts.read_text()
    host.delete(state.id, state.outputs, old_inputs=state.inputs)
    assert not local.exists() and not remote.exists()
    assert f"[{LOOPBACK}]:{servers.ssh.port}" not in known_hosts.read_text()


def test_bad_inputs_stop_the_up_with_the_property_and_no_secret(
    host: ProviderHost, program_inputs: dict[str, Any], servers: Servers, tmp_path: Path
):
    bad = "pa${HOME}ss-Secret"
    with pytest.raises(InvalidInputs) as err:
        host.up(lab_inputs(program_inputs, servers, tmp_path, appPassword=secret(bad), dbName="lab-db"))
    props = [prop for prop, _ in err.value.failures]
    assert props == ["appPassword", "dbName"]
    _assert_no_plain_secret(str(err.value), bad)
    assert not (tmp_path / "project" / ".env").exists()


def test_a_failed_check_at_create_is_a_clear_error_without_secrets(
    host: ProviderHost, program_inputs: dict[str, Any], servers: Servers, tmp_path: Path
):
    wrong = "Wr0ng 'admin' #$ \\ ="
    with pytest.raises(ProviderError) as err:
        host.up(lab_inputs(program_inputs, servers, tmp_path, adminPassword=secret(wrong)))
    message = str(err.value)
    assert message.startswith("Create failed in the dynamic provider host")
    assert "EnvFileError: EnvFile connection check failed: MySQL hop" in message and "access denied" in message
    for text in (message, err.value.details):
        _assert_no_plain_secret(text, wrong, APP_PASSWORD)
    assert not (tmp_path / "project" / ".env").exists()


# --- issue 8 item 3: a re-imaged VM presents a new SSH host key ---------------------------------------------


def test_a_new_host_key_is_explained_and_the_command_it_gives_re_trusts_the_vm(
    host: ProviderHost, program_inputs: dict[str, Any], servers: Servers, tmp_path: Path
):
    vm = SshServer(tmp_path / "vm-sshd", [servers.user_pub]).prepare()
    try:
        vm.start()
        op, state = host.up(lab_inputs(program_inputs, servers, tmp_path, ssh=vm))
        assert op == "create"
        # the VM is re-imaged: same address, a fresh sshd with new host keys
        vm.stop()
        for f in (vm.host_key, Path(f"{vm.host_key}.pub")):
            f.unlink()
        make_ssh_key(vm.host_key, "host")
        vm.start()
        news = lab_inputs(program_inputs, servers, tmp_path, ssh=vm, appPassword=secret(NEW_APP_PASSWORD))
        t0 = time.monotonic()
        with pytest.raises(ProviderError) as err:
            host.up(news, state)
        assert time.monotonic() - t0 < 10  # not retried until checkTimeoutSeconds
        message = str(err.value)
        known_hosts = Path(state.outputs["knownHostsPath"])
        assert known_hosts.name == ".dblab_known_hosts"
        assert "Update failed in the dynamic provider host" in message
        assert "the VM's SSH host key changed" in message and "re-imaged" in message
        assert "SHA256:" in message and str(known_hosts) in message
        command = f"ssh-keygen -R '[{LOOPBACK}]:{vm.port}' -f {known_hosts}"
        assert command in message
        _assert_no_plain_secret(message, ADMIN_PASSWORD, APP_PASSWORD, NEW_APP_PASSWORD)
        assert dotenv_values(state.outputs["path"])["DB_PASSWORD"] == APP_PASSWORD  # nothing was changed

        # the command from the message, run as given, makes the next up trust the new key and succeed
        subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=30)
        op, state = host.up(news, state)
        assert op == "update" and dotenv_values(state.outputs["path"])["DB_PASSWORD"] == NEW_APP_PASSWORD
        host.destroy(state)
    finally:
        vm.stop()


# --- the wire, without a host ---------------------------------------------------------------------------------


def test_a_host_that_accepted_secrets_would_get_them_wrapped_and_they_come_back_marked():
    wire = _Wire()
    plain = wire.encode({"pw": secret("s3cret"), "n": 1}, keep_unknowns=False)
    assert plain.fields["pw"].string_value == "s3cret" and plain.fields["n"].number_value == 1.0
    wire.accept_secrets = True
    wrapped = wire.encode({"pw": secret("s3cret"), "later": UNKNOWN}, keep_unknowns=True)
    sig = wrapped.fields["pw"].struct_value.fields
    assert sig["4dabf18193072939515e22adb298388d"].string_value == "1b47061264138c4ac30d75fd1eb44270"
    assert sig["value"].string_value == "s3cret"
    decoded = wire.decode(wrapped, keep_unknowns=True)
    assert decoded == {"pw": Secret("s3cret"), "later": UNKNOWN}
    assert wire.decode(wrapped, keep_unknowns=False) == {"pw": Secret("s3cret")}  # unknowns dropped, as the engine
    with pytest.raises(ValueError, match="'later' is unknown outside a preview"):
        wire.encode({"later": UNKNOWN}, keep_unknowns=False)
    assert wire.scrub("login with 's3cret' failed") == "login with '[secret]' failed"


def test_results_are_re_marked_secret_like_the_engine_does():
    outs = {"pw": "x", "nested": {"a": "1", "b": "2"}, "other": "y", "list": ["p"]}
    ins = {"pw": secret("x"), "nested": {"a": secret("1")}, "list": [secret("p")], "absent": secret("z")}
    assert annotate_secrets(outs, ins) == {
        "pw": Secret("x"),
        "nested": {"a": Secret("1"), "b": "2"},
        "other": "y",
        "list": Secret(["p"]),
    }


def test_up_compares_inputs_itself_when_the_provider_does_not_diff(tmp_path: Path):
    """EchoProvider keeps ResourceProvider.diff (no answer: DIFF_UNKNOWN); the engine then diffs the inputs."""
    marker = tmp_path / "marker"
    with ProviderHost(EchoProvider(), cwd=ROOT) as h:
        op, state = h.up({"marker": str(marker), "v": 1})
        assert op == "create" and marker.read_text() == "created"
        assert h.diff(state.id, state.outputs, state.inputs).changes is None
        assert h.up({"marker": str(marker), "v": 1}, state)[0] == "same"
        op, state = h.up({"marker": str(marker), "v": 2}, state)
        assert op == "update" and marker.read_text() == "updated" and state.outputs["v"] == 2
