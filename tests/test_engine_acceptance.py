"""Issue 11 from the outside, for EVERY engine of the registry (a new engine is covered by adding it to engines/):

- the mocked program's user_data, decoded, never holds a password (admin or app, generated or given as a secret),
  and every rendered cloud-init document passes `cloud-init schema`;
- the offline plan (`labctl plan`'s report) is clean by default, judges the engine's own port and leaks no password;
- a bad value of an engine-dependent key names the key and shows an example that is good for THAT engine;
- `labctl local` runs the engine: its server in the DB namespace, the check through the packet filter, and both
  `.env` files hold exactly the eight keys. One lab per engine.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, plan_of
from dotenv import dotenv_values

import engines
from components.config import ConfigError
from engines.base import DOTENV_KEYS
from labctl.offline import Plan, ProgramError
from labctl.plan import build_report

ENGINE_NAMES = list(engines.ENGINES)
GIVEN = "Giv3n-Pw_q#7'x"  # a student's dbPassword, set with --secret


def _plan(engine: str, given: bool) -> Plan:
    if given:
        return plan_of(secret=("dbPassword",), dbEngine=engine, dbPassword=GIVEN)
    return plan_of(dbEngine=engine)


def _passwords(plan: Plan, given: bool) -> list[str]:
    """Every password of the plan: the generated ones (RandomPassword results) and the given one."""
    found = [
        r.outputs["result"]
        for r in plan.resources
        if r.resource_type == "random:index/randomPassword:RandomPassword" and isinstance(r.outputs.get("result"), str)
    ]
    return found + ([GIVEN] if given else [])


def _user_data(plan: Plan) -> dict[str, str]:
    """Every instance's user_data, base64-decoded, by resource name."""
    out = {}
    for r in plan.resources:
        meta = r.props.get("metadata")
        if isinstance(meta, dict) and "user_data" in meta:
            out[r.name] = base64.b64decode(meta["user_data"]).decode()
    return out


@pytest.mark.parametrize("given", [False, True], ids=["generated", "given"])
@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_no_password_in_any_user_data_of_any_instance(engine: str, given: bool) -> None:
    plan = _plan(engine, given)
    passwords = _passwords(plan, given)
    assert len(passwords) == 2  # the app user's and the admin's (generated, or the student's own)
    docs = _user_data(plan)
    assert "lab-vm" in docs  # the app VM always has one; a DB-VM engine adds its own
    assert ("lab-db-vm" in docs) is engine.endswith("-vm")
    for name, text in docs.items():
        assert text.startswith("#cloud-config"), name
        for pw in passwords:
            for form in {pw, urllib.parse.quote(pw, safe=""), base64.b64encode(pw.encode()).decode()}:
                assert form not in text, f"a password is in {name}'s user_data"


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_the_offline_plan_of_each_engine_is_clean_judges_its_port_and_leaks_no_password(engine: str) -> None:
    plan = _plan(engine, given=True)
    config = {"oci-dblab:dbEngine": engine, "oci-dblab:adminCidr": "198.51.100.23/32"}
    report = build_report(plan, config)
    assert report["ok"] and report["summary"]["mandatoryFindings"] == 0, report["findings"]
    port = engines.get(engine).port
    verdicts = {v["id"]: v for v in report["verdicts"]}
    assert verdicts[f"internet->db:{port}"]["actual"] == "DENIED", verdicts
    assert verdicts[f"app-subnet->db:{port}"]["actual"] == "ALLOWED", verdicts
    assert report["sizing"]  # the engine's sizing facts are found
    text = json.dumps(report)
    for pw in _passwords(plan, given=True):
        assert pw not in text


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_the_policy_refuses_the_engines_port_from_the_internet_and_plan_verdicts_follow(engine: str) -> None:
    from conftest import mutated, named

    from labctl import reach
    from policy.rules import evaluate

    plan = _plan(engine, given=False)
    port = engines.get(engine).port

    def from_anywhere(resources: list[Any]) -> None:
        sl = named(resources, "lab-private-sl")
        sl.props["ingressSecurityRules"] = [{**r, "source": "0.0.0.0/0"} for r in sl.props["ingressSecurityRules"]]

    resources = mutated(plan, from_anywhere)
    found = [f for f in evaluate(resources) if f.rule == "db-port-only-from-app-subnet"]
    assert found and found[0].level.lower() == "mandatory" and str(port) in found[0].message, found
    # the DB still has no public IP, so the internet verdict stays DENIED; the app subnet still reaches it
    verdicts = {v.id: v for v in reach.verdicts(resources, "198.51.100.23/32")}
    assert (
        verdicts[f"internet->db:{port}"].actual == "DENIED" and verdicts[f"app-subnet->db:{port}"].actual == "ALLOWED"
    )


@pytest.fixture(scope="module")
def pack() -> Any:
    from labctl.analyzerhost import PolicyPackHost

    with PolicyPackHost() as host:
        host.configure()
        yield host


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_the_real_policy_pack_passes_each_engine_and_refuses_its_port_from_anywhere(pack: Any, engine: str) -> None:
    """The pack as the engine runs it (Analyzer protocol, preview and after up), per engine."""
    from conftest import mutated, named

    from labctl.analyzerhost import FORMS, encode

    plan = _plan(engine, given=True)

    def from_anywhere(resources: list[Any]) -> None:
        sl = named(resources, "lab-private-sl")
        sl.props["ingressSecurityRules"] = [{**r, "source": "0.0.0.0/0"} for r in sl.props["ingressSecurityRules"]]

    open_port = {("db-port-only-from-app-subnet", "mandatory")}
    for change, expected in ((lambda _r: None, set()), (from_anywhere, open_port)):
        resources = mutated(plan, change)
        for form in FORMS:
            request = encode(
                resources, form, stack=plan.stack, stack_outputs=plan.outputs, secret_outputs=plan.secret_outputs
            )
            found = {(d.policy, d.level) for d in pack.analyze_stack(request)}
            assert found == expected, (engine, form, found)


def test_db_engine_is_read_in_any_case_by_every_consumer() -> None:
    plan = plan_of(dbEngine=" PostgreSQL-VM ")
    report = build_report(plan, {"oci-dblab:dbEngine": " PostgreSQL-VM ", "oci-dblab:adminCidr": "198.51.100.23/32"})
    assert report["ok"]
    assert any("DB VM" in line for line in report["sizing"]), report["sizing"]  # the engine's own sizing facts
    assert engines.find(" MySQL ") is engines.get("mysql") and engines.find("") is engines.get(engines.DEFAULT)
    assert engines.find("nosql") is None


def _problems(secret: tuple[str, ...] = (), **raw: str) -> str:
    with pytest.raises((ProgramError, ConfigError)) as err:
        plan_of(secret=secret, **raw)
    return str(err.value)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_a_wrong_shape_names_the_key_and_an_example_good_for_the_engine(engine: str) -> None:
    e = engines.get(engine)
    other = next(o for o in engines.ENGINES.values() if not e.shape_ok(o.default_shape))
    message = _problems(dbEngine=engine, dbShape=other.default_shape)
    [line] = [ln for ln in message.splitlines() if "oci-dblab:dbShape" in ln]
    assert f"Example: {e.example_shape}" in line and e.shape_ok(e.example_shape), line
    assert "Traceback" not in message


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_a_bad_password_is_refused_with_the_engines_own_rule_and_never_echoed(engine: str) -> None:
    e = engines.get(engine)
    bad = "abcdefgh-no-digit-q"
    message = _problems(secret=("dbPassword",), dbEngine=engine, dbPassword=bad)
    [line] = [ln for ln in message.splitlines() if "oci-dblab:dbPassword" in ln]
    assert bad not in message and "has no digit" in line
    example = re.search(r"Example: --secret '([^']+)'  \((\d+)-(\d+) chars", line)
    assert example, line
    assert e.password_problem(example.group(1), e.default_admin_user) is None  # the example is good for the engine
    too_long = "Ab1!" * (int(example.group(3)) // 4 + 1)  # one past the range the example states
    assert e.password_problem(too_long, e.default_admin_user) is not None
    assert e.password_problem(too_long[: int(example.group(3))], e.default_admin_user) is None


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_backup_retention_on_the_free_shape_is_refused_only_where_the_service_refuses_it(engine: str) -> None:
    e = engines.get(engine)
    if e.always_free_shape is None:
        assert _plan_or_problems(engine, dbBackupRetentionDays="7") == ""
        return
    result = _plan_or_problems(engine, dbShape=e.always_free_shape, dbBackupRetentionDays="7")
    if e.free_shape_refuses_backup_policy:
        assert "oci-dblab:dbBackupRetentionDays" in result and "Always Free DB system" in result
    else:  # a DB VM has no backup policy to refuse: no false "OCI refuses" error, at most a warning
        assert result == "", result


def _plan_or_problems(engine: str, **raw: str) -> str:
    try:
        plan_of(dbEngine=engine, **raw)
    except (ProgramError, ConfigError) as err:
        return str(err)
    return ""


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_the_engines_reserved_names_are_refused_with_the_key(engine: str) -> None:
    e = engines.get(engine)
    names = sorted(u for u in e.reserved_users if re.fullmatch(r"[A-Za-z]\w*", u))  # not 'mysql.sys', 'pg_*'
    if e.family == "postgresql":  # the server refuses these roles (CREATE ROLE at boot or in the check would fail)
        names += ["pg_admin", "none", "current_user"]
    assert names
    for user in names:
        message = _problems(dbEngine=engine, dbAdminUser=user)
        assert "oci-dblab:dbAdminUser" in message and "reserved" in message, (user, message)
        message = _problems(dbEngine=engine, dbAppUser=user)
        assert "oci-dblab:dbAppUser" in message, (user, message)
    if e.reserved_db_names:
        message = _problems(dbEngine=engine, dbName=sorted(e.reserved_db_names)[0])
        assert "oci-dblab:dbName" in message


def _cloud_init() -> str:
    path = shutil.which("cloud-init")
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("cloud-init is not installed: .ci/services.sh must install Debian's cloud-init package in CI")
    pytest.skip("cloud-init is not installed (sudo apt-get install cloud-init)")


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_cloud_init_schema_accepts_the_user_data_of_every_instance(engine: str, tmp_path: Path) -> None:
    tool = _cloud_init()
    for name, text in _user_data(_plan(engine, given=False)).items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        proc = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{engine} {name}: {proc.stdout}{proc.stderr}"


# --- labctl local, one lab per engine -------------------------------------------------------------------------


def _stack_file(tmp_path: Path, engine: str) -> Path:
    path = tmp_path / "Pulumi.acc.yaml"
    path.write_text((ROOT / "Pulumi.dev.yaml").read_text() + f"  oci-dblab:dbEngine: {engine}\n")
    return path


def _netns_of(pid: int) -> str:
    out = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=True).stdout
    return out.strip()


def _app_user_is_confined_to_the_lab_database(family: str, env: dict[str, Any], app_ns: str) -> None:
    """From the app VM's namespace, with the .env's settings: the app user works in its database over TLS, and is
    refused what only an admin may do (read the user table, create a database or a user)."""
    import ssl

    from labctl.local import netns

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # DB_SSL_MODE require(d): encrypted, not verified
    host, port, user, password, name = (env[k] for k in ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"))

    def as_the_app() -> list[str]:
        refused = []
        if family == "mysql":
            import pymysql

            conn = pymysql.connect(
                host=host, port=int(port), user=user, password=password, database=name, ssl=ctx, connect_timeout=10
            )
            try:
                with conn.cursor() as cur:
                    cur.execute("CREATE TABLE acc_probe (id INT PRIMARY KEY)")
                    cur.execute("DROP TABLE acc_probe")
                    for sql in ("SELECT COUNT(*) FROM mysql.user", "CREATE DATABASE acc_other", "CREATE USER acc_x"):
                        try:
                            cur.execute(sql)
                        except pymysql.MySQLError as e:  # access denied: table, database, global privilege
                            if e.args and e.args[0] in (1142, 1044, 1227):
                                refused.append(sql)
            finally:
                conn.close()
        else:
            import pg8000.native

            conn = pg8000.native.Connection(
                user, host=host, port=int(port), database=name, password=password, ssl_context=ctx, timeout=10
            )
            try:
                conn.run("CREATE TABLE acc_probe (id INT PRIMARY KEY)")
                conn.run("DROP TABLE acc_probe")
                for sql in ("SELECT COUNT(*) FROM pg_authid", "CREATE DATABASE acc_other", "CREATE ROLE acc_x"):
                    try:
                        conn.run(sql)
                    except pg8000.native.DatabaseError as e:  # 42501 insufficient_privilege
                        if e.args and isinstance(e.args[0], dict) and e.args[0].get("C") == "42501":
                            refused.append(sql)
            finally:
                conn.close()
        return refused

    refused = netns.in_netns(app_ns, as_the_app)
    assert len(refused) == 3, f"the app user may do more than its database: only {refused} refused"


@pytest.mark.real_servers
@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_each_engine_runs_in_the_local_lab(engine: str, tmp_path: Path) -> None:
    from labctl.local import command, netns, servers

    e = engines.get(engine)
    lines: list[str] = []
    (tmp_path / "state").mkdir()
    opts = command.Options(
        stack="acc", config_file=_stack_file(tmp_path, engine), state_dir=tmp_path / "state", out=lines.append
    )
    outcome = command.up(opts)
    state: dict[str, Any] | None = command._read_state(command._state_path(opts))
    try:
        assert outcome.ok, outcome.message
        check = outcome.check
        assert check and check["ok"] is True and check["currentUser"].split("@")[0] == "lab_app"
        family_server = "PostgreSQL" if e.family == "postgresql" else "MariaDB"
        assert family_server in check["serverVersion"], check["serverVersion"]
        assert check["tls"]["version"].startswith("TLS")
        # the certificate's SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it, for every family
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", check["tls"].get("fingerprintSha256", "")), check["tls"]
        # the packets agree with the model for the engine's own port
        by_id = {r.case.id: r for r in outcome.rows}
        assert outcome.rows and all(r.agree for r in outcome.rows), command.verdicts.disagreements(outcome.rows)
        assert by_id[f"app-subnet->db:{e.port}"].packet == "ALLOWED"
        assert by_id[f"internet->db:{e.port}"].packet == "DENIED"
        assert by_id[f"vcn-other->db:{e.port}"].packet == "DENIED"
        assert by_id["db->internet:443"].packet == "DENIED"
        # the family's server runs inside the DB namespace
        assert state is not None
        db_pid = state["pids"]["postgres" if e.family == "postgresql" else "mariadbd"]
        assert _netns_of(int(db_pid)) == f"dblab-{state['runId']}-db"
        # both .env files: exactly the eight keys, the engine's values, mode 0600
        run_dir = Path(state["runDir"])
        for env in (run_dir / "project" / ".env", run_dir / "vm" / "home" / "opc" / "app" / ".env"):
            assert stat.S_IMODE(env.stat().st_mode) == 0o600
            values = dotenv_values(env)
            assert tuple(values) == DOTENV_KEYS
            assert values["DB_ENGINE"] == engine and values["DB_PORT"] == str(e.port)
            assert values["DB_USER"] == "lab_app" and values["DB_SSL_MODE"] == e.ssl_mode
            assert str(values["DATABASE_URL"]).startswith(f"{e.url_scheme}://lab_app:")
        again = command.check(opts)
        assert again.ok, again.message
        # least privilege: the app user, with the .env's settings from the app VM, on the lab database only
        _app_user_is_confined_to_the_lab_database(e.family, dict(values), f"dblab-{state['runId']}-app")
    finally:
        assert command.down(opts) or not outcome.ok
    assert state is not None
    assert not netns.existing(f"dblab-{state['runId']}-")
    assert not Path(state["runDir"]).exists()
    assert not any(servers.alive(int(pid)) for pid in state["pids"].values())


# --- README: the engine table ---------------------------------------------------------------------------------


def test_the_readme_engine_table_has_one_full_row_per_engine() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Database engines (`dbEngine`)")
    section = text[start : text.index("\n### ", start + 4)]
    header = "| engine | what is created | port | Always Free or price | TLS | what the check proves |"
    assert header in section
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    named = [re.match(r"\| `([a-z0-9-]+)`", ln).group(1) for ln in rows]  # type: ignore[union-attr]
    assert named == list(engines.ENGINES), named  # one row each, in the registry's order
    for row, name in zip(rows, named, strict=True):
        e = engines.get(name)
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 6 and all(cells), (name, len(cells))
        assert str(e.port) in cells[2], name
        assert e.ssl_mode in cells[4] and f"{e.url_scheme}://" in cells[4], name
        free = cells[3].startswith("Always Free") or bool(e.always_free_shape and e.always_free_shape in cells[3])
        assert free is (e.always_free_shape is not None), name
        assert free or "$" in cells[3], name  # a paid engine names its price


def test_each_engines_create_durations_live_in_its_module_and_cite_known_sources() -> None:
    from labctl import estimate

    table = estimate.duration_table()
    for e in engines.ENGINES.values():
        assert not set(e.resource_types) & set(table["types"]), f"{e.name}'s types belong in its module's durations"
        for spec in e.durations.values():
            assert set(spec.get("sources", ())) <= set(table["sources"]), e.name
    # the default stack's critical path still counts HeatWave's 12.5 min and cites where that figure comes from
    path = estimate.critical_path(plan_of().resources)
    assert path.seconds >= 750 and any("steampipe" in line or "mysql" in line.lower() for line in path.sources)
