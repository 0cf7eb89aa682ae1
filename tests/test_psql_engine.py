"""The ``postgresql`` engine (OCI Database with PostgreSQL): its spec and rules as plain functions, the real program
under the OCI mocks with dbEngine=postgresql, its bad-config table, cost lines and the README row."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, good_raw, mutated, plan_of

import engines
from components.config import ConfigError, parse_config
from engines import postgresql as pg
from labctl.offline import REDACTED, Plan, PlannedResource

ENGINE = engines.get("postgresql")
DBSYS = pg.DB_SYSTEM
SHAPE = "PostgreSQL.VM.Standard.E5.Flex.2.32GB"
PRIVATE_SUBNET_CIDR = "10.0.1.0/24"
APP_SUBNET_CIDR = "10.0.0.0/24"


def db_args(**over):
    base = dict(
        engine="postgresql",
        compartment_id="ocid1.compartment.oc1..x",
        subnet_id="ocid1.subnet.oc1..private",
        subnet_domain="private.lab.oraclevcn.com",
        availability_domain="Uocm:PHX-AD-1",
        shape=SHAPE,
        storage_gbs=50,
        admin_user="admin",
        name_prefix="dblab-s1",
        tags={"project": "oci-dblab"},
        admin_password="<secret>",
        app_user="app",
        backup_retention_days=None,
        deletion_protection=False,
    )
    base.update(over)
    return SimpleNamespace(**base)


# --- spec ----------------------------------------------------------------------------------------------------
def test_the_check_uses_the_postgresql_family_adapter():
    from engines import pgcheck

    assert ENGINE.adapter() is pgcheck.ADAPTER and pgcheck.FAMILY == ENGINE.family


def test_registered_with_its_port_family_and_no_always_free_shape():
    assert engines.engine_of_type(DBSYS) is ENGINE and "postgresql" not in engines.PLANNED
    assert (ENGINE.family, ENGINE.port, ENGINE.extra_ports, ENGINE.url_scheme) == ("postgresql", 5432, (), "postgresql")
    assert ENGINE.always_free_shape is None and ENGINE.free_pools == {}
    assert ENGINE.ssl_mode == "require"  # the service takes hostssl connections only
    assert ENGINE.ssl_modes == ("require", "verify-ca", "verify-full")


@pytest.mark.parametrize(
    ("shape", "parsed"),
    [
        ("PostgreSQL.VM.Standard.E5.Flex.2.32GB", ("PostgreSQL.VM.Standard.E5.Flex", 2, 32)),
        ("PostgreSQL.VM.Standard.E4.Flex.4.64GB", ("PostgreSQL.VM.Standard.E4.Flex", 4, 64)),
        ("PostgreSQL.VM.Standard3.Flex.1.16GB", ("PostgreSQL.VM.Standard3.Flex", 1, 16)),
        ("PostgreSQL.VM.Standard.E6.Flex.3.12GB", ("PostgreSQL.VM.Standard.E6.Flex", 3, 12)),
        ("PostgreSQL.VM.Standard.E5.Flex", None),  # the series alone: no size
        ("VM.Standard.E5.Flex.2.32GB", None),  # the compute shape, not the service's
        ("PostgreSQL.VM.Standard.E5.Flex.0.32GB", None),
        ("PostgreSQL.VM.Standard.E5.Flex.2.0GB", None),
        ("PostgreSQL.VM.Standard.E5.Flex.2.32GBx", None),
        ("PostgreSQL.VM.Standard.A1.Flex.2.32GB", None),
        ("MySQL.Free", None),
    ],
)
def test_shapes_are_a_series_plus_ocpus_and_memory(shape, parsed):
    assert pg.parse_shape(shape) == parsed
    assert ENGINE.shape_ok(shape) is (parsed is not None)


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("Sh0rt!", "has 6 characters (needs 8-32)"),
        ("A" * 30 + "a1#", "has 33 characters"),
        ("alllowercase1!", "no uppercase"),
        ("NoDigitsHere!!", "no digit"),
        ("NoSpecial1234", "no special"),
        ("Adm1n#admin2026", "contains the admin user name"),
        ("Gr\u00fcn-Passw0rt", "outside printable ASCII"),
    ],
)
def test_password_rule_names_what_is_wrong_and_never_the_password(password, words):
    why = ENGINE.password_problem(password, "admin")
    assert why is not None and words in why and password not in why


def test_passwords_public_configs_create_this_service_with_pass_the_rule():
    for password in ("BEstrO0ng_#11", "Welcome123###"):  # provider acceptance test; a public tfvars
        assert ENGINE.password_problem(password, "admin") is None


@pytest.mark.parametrize("user", ["postgres", "PUBLIC", "none", "current_user", "oci_admin_role", "pg_monitor", "pg_x"])
def test_reserved_role_names_and_the_pg_prefix_are_refused(user):
    assert user.lower() in ENGINE.reserved_users


@pytest.mark.parametrize("user", ["admin", "labadmin", "app", "pgadmin", "student_pg"])
def test_ordinary_role_names_are_not_reserved(user):
    assert user.lower() not in ENGINE.reserved_users


# --- the DB system's arguments (pure) ------------------------------------------------------------------------
def test_db_system_arguments_private_endpoint_sized_shape_and_ad_local_storage():
    kw = pg.db_system_args(db_args(), "pw", secret=lambda v: ("SECRET", v))
    assert kw["shape"] == "PostgreSQL.VM.Standard.E5.Flex"
    assert (kw["instance_ocpu_count"], kw["instance_memory_size_in_gbs"], kw["instance_count"]) == (2, 32, 1)
    assert kw["db_version"] == pg.DB_VERSION
    # private only: the subnet, no NSG, no address of its own choosing (the service picks one in the subnet)
    assert kw["network_details"] == {"subnet_id": "ocid1.subnet.oc1..private"}
    assert kw["storage_details"] == {
        "system_type": "OCI_OPTIMIZED_STORAGE",
        "is_regionally_durable": False,
        "availability_domain": "Uocm:PHX-AD-1",
    }
    assert kw["credentials"] == {
        "username": "admin",
        "password_details": {"password_type": ("SECRET", "PLAIN_TEXT"), "password": ("SECRET", "pw")},
    }
    assert kw["freeform_tags"] == {"project": "oci-dblab", pg.DATA_GB_TAG: "50"}
    assert "management_policy" not in kw  # the service's default backup policy applies
    assert kw["state"] == "ACTIVE"


def test_backup_retention_becomes_a_daily_backup_policy():
    kw = pg.db_system_args(db_args(backup_retention_days=7), "pw")
    assert kw["management_policy"] == {"backup_policy": {"kind": "DAILY", "retention_days": 7, "backup_start": "02:00"}}


def test_db_state_stops_and_starts_the_system_in_place():
    assert pg.db_system_args(db_args(state="INACTIVE"), "pw")["state"] == "INACTIVE"
    assert ENGINE.stop_via and "StopDbSystem" in ENGINE.stop_via
    cfg = parse_config(good_raw(dbEngine="postgresql", dbState="INACTIVE"), "dev")
    assert cfg.db_state == "INACTIVE"
    assert pg.mock_outputs(DBSYS, {"state": "INACTIVE"})["state"] == "INACTIVE"


def test_a_bad_shape_never_reaches_the_provider():
    with pytest.raises(ValueError, match="not a postgresql shape"):
        pg.db_system_args(db_args(shape="MySQL.Free"), "pw")


def test_options_ignore_credentials_and_the_ad_and_protect_on_request():
    opts = pg.resource_options_fields(db_args())
    assert opts["ignore_changes"] == ["credentials", "storageDetails.availabilityDomain"]
    assert opts["additional_secret_outputs"] == ["credentials"] and opts["protect"] is False
    assert pg.resource_options_fields(db_args(deletion_protection=True))["protect"] is True


# --- the program under the mocks -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pgplan() -> Plan:
    return plan_of(dbEngine="postgresql")


def the(plan: Plan, rtype: str) -> PlannedResource:
    [r] = [r for r in plan.resources if r.resource_type == rtype and r.custom]
    return r


def test_program_declares_the_db_system_and_no_mysql(pgplan):
    types = {r.resource_type for r in pgplan.resources}
    assert DBSYS in types and not any(t.startswith("oci:Mysql/") for t in types)
    db = the(pgplan, DBSYS)
    assert db.name == "lab-postgresql" and db.parent and db.parent.endswith("oci-dblab:database:Database::lab")
    assert db.props["shape"] == "PostgreSQL.VM.Standard.E5.Flex" and db.props["instanceOcpuCount"] == 2


def test_the_lab_gets_the_private_ip_in_the_private_subnet_and_the_service_fqdn(pgplan):
    import ipaddress

    assert ipaddress.ip_address(pgplan.outputs["dbPrivateIp"]) in ipaddress.ip_network(PRIVATE_SUBNET_CIDR)
    assert pgplan.outputs["dbPort"] == 5432
    assert pgplan.outputs["dbHostname"].endswith(".postgresql.mock-1.oci.oraclecloud.com")
    [ep] = pg.endpoints(pgplan.resources)
    assert ep.private_ip == pgplan.outputs["dbPrivateIp"]


def test_the_env_file_gets_the_engine_and_its_tls_mode(pgplan):
    [env] = [r for r in pgplan.resources if r.resource_type.startswith("pulumi-python:dynamic")]
    assert env.props["dbEngine"] == "postgresql" and env.props["dbPort"] == 5432
    assert env.props["sslMode"] in ("", "require")  # "": the engine's default, require
    url = ENGINE.database_url("10.0.1.2", 5432, "lab", "lab_app", "p@ss:w/rd")
    assert url == "postgresql://lab_app:p%40ss%3Aw%2Frd@10.0.1.2:5432/lab?sslmode=require"


def test_password_is_secret_in_inputs_and_state(pgplan):
    db = the(pgplan, DBSYS)
    assert {"credentials.passwordDetails.password", "credentials.passwordDetails.passwordType"} <= db.secret_paths
    assert db.additional_secret_outputs == ["credentials"]
    assert db.ignore_changes == ["credentials", "storageDetails.availabilityDomain"]
    [shown] = [r for r in pgplan.to_dict()["resources"] if r["type"] == DBSYS]
    assert shown["inputs"]["credentials"]["passwordDetails"] == {"password": REDACTED, "passwordType": REDACTED}
    password = db.props["credentials"]["passwordDetails"]["password"]
    assert len(password) >= 8 and password not in json.dumps(pgplan.to_dict())


def test_no_public_endpoint_and_the_db_sits_in_the_private_subnet(pgplan):
    db = the(pgplan, DBSYS)
    [private] = [r for r in pgplan.resources if r.name == "lab-private-subnet" and r.custom]
    assert private.props["prohibitPublicIpOnVnic"] is True
    assert db.props["networkDetails"]["subnetId"] == private.id
    assert set(db.props["networkDetails"]) == {"subnetId"}


def _ingress(plan: Plan, name: str) -> list[tuple]:
    [sl] = [r for r in plan.resources if r.name == name and r.custom]
    return [
        (x["protocol"], x["source"], x["tcpOptions"]["min"], x["tcpOptions"]["max"])
        for x in sl.props.get("ingressSecurityRules", [])
    ]


def test_port_5432_is_open_only_from_the_app_subnet(pgplan):
    assert _ingress(pgplan, "lab-private-sl") == [("6", APP_SUBNET_CIDR, 5432, 5432)]
    assert all(rule[2] != 5432 for rule in _ingress(pgplan, "lab-public-sl"))


def test_policy_rules_pass(pgplan):
    from test_policy import as_policy_resources

    from policy.rules import evaluate

    assert evaluate(pgplan.resources) == []
    # the same rules on pulumi-policy's own resource objects (what the real pack is handed)
    assert evaluate(as_policy_resources(pgplan.resources)) == []


def test_plan_verdicts_for_5432(pgplan):
    from labctl.reach import ALLOWED, DENIED, failing, verdicts

    results = verdicts(pgplan.resources, "198.51.100.23/32")
    got = {v.id: v for v in results}
    assert failing(results) == []
    assert {k: v.actual for k, v in got.items() if k.endswith(":5432")} == {
        "internet->db:5432": DENIED,
        "app-subnet->db:5432": ALLOWED,
    }
    assert not any(k.endswith((":3306", ":33060")) for k in got)
    assert "lab-private-sl" in got["app-subnet->db:5432"].reason
    assert got["app-subnet->db:5432"].destination.startswith("database lab-postgresql")
    assert "prohibits public IPs" in got["internet->db:5432"].reason


def _private_sl(rs):
    [sl] = [r for r in rs if r.name == "lab-private-sl" and r.custom]
    return sl


def test_5432_open_to_the_world_is_a_policy_finding(pgplan):
    from policy.rules import evaluate

    def open_db(rs):
        _private_sl(rs).props["ingressSecurityRules"][0]["source"] = "0.0.0.0/0"

    found = {(f.rule, f.name) for f in evaluate(mutated(pgplan, open_db))}
    assert found == {("db-port-only-from-app-subnet", "lab-private-sl")}, found


def test_5432_closed_fails_the_app_subnet_verdict(pgplan):
    from labctl.reach import failing, verdicts

    def close_db(rs):
        _private_sl(rs).props["ingressSecurityRules"] = []

    assert [v.id for v in failing(verdicts(mutated(pgplan, close_db), "198.51.100.23/32"))] == ["app-subnet->db:5432"]


def test_endpoints_model_the_db_for_reach_and_policy(pgplan):
    [ep] = pg.endpoints(pgplan.resources)
    db = the(pgplan, DBSYS)
    assert (ep.name, ep.urn, ep.ports, ep.engine, ep.resource) == ("lab-postgresql", db.urn, (5432,), "postgresql", db)
    assert ep.subnet_id == db.props["networkDetails"]["subnetId"] and ep.nsg_ids == ()
    assert "only a private endpoint" in ep.note


def test_backups_fail_the_rule_only_when_switched_off():
    def r(props):
        return SimpleNamespace(props=props)

    assert pg.backup_problem(r({})) is None  # the service's default policy
    assert pg.backup_problem(r({"managementPolicy": {"backupPolicy": {"kind": "DAILY", "retentionDays": 7}}})) is None
    why = pg.backup_problem(r({"managementPolicy": {"backupPolicy": {"kind": "NONE"}}}))
    assert why and "switched off" in why


def test_db_alarms_use_the_service_namespace_and_resource_id(pgplan):
    alarms = {r.name: r for r in pgplan.resources if r.resource_type == "oci:Monitoring/alarm:Alarm"}
    assert {"lab-ops-db-cpu", "lab-ops-db-memory"} <= set(alarms)
    for name in ("lab-ops-db-cpu", "lab-ops-db-memory"):
        assert alarms[name].props["namespace"] == "oci_postgresql"
    db_id = the(pgplan, DBSYS).id
    assert alarms["lab-ops-db-cpu"].props["query"].startswith(f'CpuUtilization[1m]{{resourceId = "{db_id}"}}')
    assert alarms["lab-ops-db-memory"].props["query"].startswith(f'MemoryUtilization[1m]{{resourceId = "{db_id}"}}')
    assert any("no connections alarm" in w for w in pgplan.warnings)


# --- bad config ----------------------------------------------------------------------------------------------
BAD = [
    ({"dbShape": "MySQL.Free"}, (), "dbShape", "not a postgresql shape"),
    ({"dbShape": "PostgreSQL.VM.Standard.E5.Flex"}, (), "dbShape", "not a postgresql shape"),
    ({"dbShape": "PostgreSQL.VM.Standard.E5.Flex.0.16GB"}, (), "dbShape", "not a postgresql shape"),
    ({"dbStorageGbs": "40000"}, (), "dbStorageGbs", "out of range; allowed 1..32768"),
    ({"dbPassword": "Sh0rt!"}, ("dbPassword",), "dbPassword", "6 characters (needs 8-32)"),
    ({"dbPassword": "NoSpecial1234"}, ("dbPassword",), "dbPassword", "no special"),
    ({"dbAdminUser": "postgres"}, (), "dbAdminUser", "is reserved by postgresql"),
    ({"dbAdminUser": "pg_admin"}, (), "dbAdminUser", "is reserved by postgresql"),
    ({"dbName": "template1"}, (), "dbName", "system schema of postgresql"),
]


@pytest.mark.parametrize(("overrides", "secret", "key", "words"), BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_postgresql_config_names_the_key_and_the_rule(overrides, secret, key, words):
    raw = good_raw(dbEngine="postgresql", **overrides)
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "dev", secret_keys=set(secret))
    mine = [p for p in e.value.problems if p.key == key]
    assert len(mine) == 1, [str(p) for p in e.value.problems]
    assert words in str(mine[0])
    if "dbPassword" in overrides:
        assert overrides["dbPassword"] not in str(e.value)


def test_good_postgresql_config_parses():
    cfg = parse_config(good_raw(dbEngine="postgresql", dbStorageGbs="20"), "dev")
    assert cfg.engine is ENGINE and cfg.db_shape == pg.DEFAULT_SHAPE and cfg.db_storage_gbs == 20


# --- cost ----------------------------------------------------------------------------------------------------
def _price_table() -> dict:
    return json.loads((ROOT / "labctl" / "data" / "prices.json").read_text())


def test_cost_lines_of_the_default_shape():
    lines, ids = pg.monthly_lines("db", SHAPE, 50, 744, _price_table())
    by_item = {ln["item"]: ln for ln in lines}
    assert by_item["PostgreSQL.VM.Standard.E5.Flex OCPU (compute)"]["monthly"] == round(2 * 744 * 0.03, 2)
    assert by_item["PostgreSQL.VM.Standard.E5.Flex memory (compute)"]["monthly"] == round(32 * 744 * 0.002, 2)
    assert by_item["PostgreSQL service OCPU fee"]["monthly"] == round(2 * 744 * 0.098, 2)
    assert by_item["database optimized storage"]["monthly"] == round(50 * 0.072, 2)
    vpu = by_item["storage performance (VPUs)"]
    assert vpu["monthly"] is None and vpu["note"].startswith("cost unknown")
    assert ids == ["psql-price-list", "psql-billing", "oci-pricing-mcp-bundle", "sku-e5"]
    assert all(sid in _price_table()["sources"] for sid in ids)
    known = sum(ln["monthly"] for ln in lines if ln["monthly"] is not None)
    assert 230 < known < 250  # about $242 a month: not a free lab


def test_price_lines_of_the_declared_db_system(pgplan):
    from labctl.estimate import CostLine

    db = the(pgplan, DBSYS)
    assert pg.sized_shape(db) == SHAPE
    lines, ids = ENGINE.price_lines(db, None)
    assert "psql-price-list" in ids
    assert lines and all(isinstance(ln, CostLine) and ln.resource_type == DBSYS and not ln.free for ln in lines)
    unknown = [ln for ln in lines if ln.note.startswith("cost unknown")]
    assert [ln.item for ln in unknown] == ["storage performance (VPUs)"] and unknown[0].monthly == 0.0
    assert round(sum(ln.monthly for ln in lines), 2) == round(
        2 * 744 * (0.03 + 0.098) + 32 * 744 * 0.002 + 50 * 0.072, 2
    )


def test_the_plan_cost_report_counts_the_db_system_and_names_what_is_unknown(pgplan):
    from labctl.estimate import monthly_cost, price_db_system

    report = monthly_cost(pgplan.resources)
    db_lines = [ln for ln in report.lines if ln.resource_type == DBSYS]
    assert db_lines and round(sum(ln.monthly for ln in db_lines), 2) > 230
    assert any("lab-postgresql" in u for u in report.unpriced)  # the VPU line: cost unknown
    assert any("Database with PostgreSQL - X86" in src for src in report.sources)
    lines, ids = price_db_system("db", SHAPE, 50, None, engine="postgresql")
    assert [ln.item for ln in lines] == [ln.item for ln in db_lines] and "psql-billing" in ids


def test_an_unsourced_series_is_cost_unknown_never_zero():
    lines, _ = pg.monthly_lines("db", "PostgreSQL.VM.Standard.E6.Flex.2.32GB", 10, 744, _price_table())
    [compute] = [ln for ln in lines if "compute" in ln["item"]]
    assert compute["monthly"] is None and "cost unknown" in compute["note"]
    assert any(ln["item"] == "PostgreSQL service OCPU fee" and ln["monthly"] for ln in lines)


def test_expected_data_travels_as_a_tag(pgplan):
    assert pg.data_gbs_of(the(pgplan, DBSYS)) == 50.0
    assert pg.data_gbs_of(SimpleNamespace(props={"freeformTags": {pg.DATA_GB_TAG: "oops"}})) == 50.0


def test_create_duration_is_marked_unknown():
    assert pg.DURATIONS[DBSYS]["seconds"] is None and "unknown" in pg.DURATIONS[DBSYS]["note"]


def test_the_critical_path_says_the_db_duration_is_unknown_and_the_plan_prints_lower_bounds(pgplan):
    from conftest import full_keys

    from labctl.estimate import critical_path, duration_unknown
    from labctl.plan import build_report, render_markdown, render_text

    assert duration_unknown(DBSYS) and duration_unknown("oci:Core/vcn:Vcn") is None
    path = critical_path(pgplan.resources)
    assert [u.split(":")[0] for u in path.unknown] == ["lab-postgresql"]
    report = build_report(pgplan, full_keys(good_raw(dbEngine="postgresql")))
    text = render_text(report)
    assert (
        "Critical path of `pulumi up`: at least " in text
        and "create duration unknown (counted as 0): lab-postgresql" in text
    )
    [vpu] = [ln for ln in text.splitlines() if "storage performance (VPUs)" in ln]
    assert vpu.rstrip().endswith("unknown")
    assert "≥ $" in render_markdown(report) and "critical path ≥ " in render_markdown(report)


def test_sizing_facts_say_a_resize_is_in_place_and_cite_the_provider():
    props = {(f["key"], f["prop"]) for f in pg.SIZING}
    assert {("dbShape", "shape"), ("dbShape", "instanceOcpuCount"), ("dbShape", "instanceMemorySizeInGbs")} <= props
    for f in pg.SIZING:
        assert f["in_place"] is True and f["resource_type"] == DBSYS and f["source"]


# --- mocks ---------------------------------------------------------------------------------------------------
def test_mock_outputs_look_like_what_oci_answers():
    inputs = {"networkDetails": {"subnetId": "s"}, "credentials": {"username": "admin"}, "shape": "x"}
    out = pg.mock_outputs(DBSYS, inputs, private_ip="10.0.1.7")
    assert out["networkDetails"]["primaryDbEndpointPrivateIp"] == "10.0.1.7"
    assert out["adminUsername"] == "admin" and out["state"] == "ACTIVE" and out["systemType"] == "OCI_OPTIMIZED_STORAGE"
    assert pg.mock_outputs("oci:Mysql/mysqlDbSystem:MysqlDbSystem", inputs) is None


def test_mock_invokes_answer_shapes_and_connection_details():
    shapes = pg.mock_invoke(pg.SHAPES_TOKEN, {"compartmentId": "c"})
    assert {i["shape"] for i in shapes["shapeCollections"][0]["items"]} == set(pg.SERIES)
    detail = pg.mock_invoke(pg.CONNECTION_DETAIL_TOKEN, {"dbSystemId": "ocid1.postgresqldbsystem.oc1..abc123"})
    assert detail["primaryDbEndpoints"][0]["port"] == 5432 and detail["caCertificate"].startswith("-----BEGIN")
    assert re.fullmatch(
        r"primary\.[a-z0-9]{30}\.postgresql\.mock-1\.oci\.oraclecloud\.com", detail["primaryDbEndpoints"][0]["fqdn"]
    )
    assert pg.mock_invoke("oci:Core/getShapes:getShapes", {}) is None


# --- README --------------------------------------------------------------------------------------------------
def test_readme_engine_table_has_the_postgresql_row():
    text = (Path(ROOT) / "README.md").read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if ln.startswith("| `postgresql` |")]
    assert len(rows) == 1
    row = rows[0]
    for words in ("oci.psql.DbSystem", "5432", "require", "not Always Free"):
        assert words in row, words


# --- the real policy pack over the Analyzer protocol, preview and up -----------------------------------------
def _pg_password_unmarked(rs):
    db = next(r for r in rs if r.resource_type == DBSYS)
    db.secret_paths.clear()
    db.additional_secret_outputs.clear()


def _pg_db_in_public_subnet(rs):
    db = next(r for r in rs if r.resource_type == DBSYS)
    [public] = [r for r in rs if r.name == "lab-public-subnet" and r.custom]
    old = db.props["networkDetails"]["subnetId"]
    db.props["networkDetails"]["subnetId"] = public.id
    old_urn = next(x.urn for x in rs if x.id == old)
    db.property_dependencies["networkDetails"] = [
        public.urn if u == old_urn else u for u in db.property_dependencies["networkDetails"]
    ]
    db.dependencies = [public.urn if u == old_urn else u for u in db.dependencies]


def _pg_backups_off(rs):
    db = next(r for r in rs if r.resource_type == DBSYS)
    db.props["managementPolicy"] = {"backupPolicy": {"kind": "NONE"}}


def _pg_db_alarms_removed(rs):
    rs[:] = [r for r in rs if not (r.resource_type == "oci:Monitoring/alarm:Alarm" and "-db-" in r.name)]


def _pg_db_port_open(rs):
    _private_sl(rs).props["ingressSecurityRules"][0]["source"] = "0.0.0.0/0"


PACK_CASES = [
    ("default", lambda rs: None, set()),
    ("db-port-open", _pg_db_port_open, {("db-port-only-from-app-subnet", "lab-private-sl", "mandatory")}),
    ("password-unmarked", _pg_password_unmarked, {("password-inputs-secret", "lab-postgresql", "mandatory")}),
    (
        "db-in-public-subnet",
        _pg_db_in_public_subnet,
        {
            ("no-public-ip-in-private-subnet", "lab-postgresql", "mandatory"),
            ("db-subnet-no-internet-route", "lab-public-rt", "mandatory"),
        },
    ),
    ("backups-off", _pg_backups_off, {("db-backups-enabled", "lab-postgresql", "advisory")}),
    ("db-without-alarm", _pg_db_alarms_removed, {("db-alarm-to-topic", "lab-postgresql", "advisory")}),
]


@pytest.fixture(scope="module")
def pack():
    from labctl.analyzerhost import PolicyPackHost

    with PolicyPackHost() as host:
        host.configure()
        yield host


@pytest.mark.parametrize(("case", "change", "expected"), PACK_CASES, ids=[c[0] for c in PACK_CASES])
def test_the_real_pack_judges_a_postgresql_stack_in_preview_and_after_up(pack, pgplan, case, change, expected):
    import copy

    from labctl.analyzerhost import FORMS, encode
    from policy.rules import evaluate

    resources = copy.deepcopy(pgplan.resources)
    change(resources)
    names = {r.urn: r.name for r in resources}
    assert {(f.rule, f.name, f.level) for f in evaluate(resources)} == expected
    for form in FORMS:
        request = encode(
            resources, form, stack=pgplan.stack, stack_outputs=pgplan.outputs, secret_outputs=pgplan.secret_outputs
        )
        found = {(d.policy, names.get(d.urn, d.urn), d.level) for d in pack.analyze_stack(request)}
        assert found == expected, form
