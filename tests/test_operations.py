"""The operations tier: the MQL grammar (pure), the alarm table, and the program's alarms/topic/subscription."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import good_raw, named, plan_of

from components.config import ConfigError, parse_config
from components.operations import (
    Query,
    QueryError,
    db_alarm_specs,
    parse_query,
    render_query,
    topic_name,
    vm_alarm_specs,
)
from engines import ENGINES

ALARM = "oci:Monitoring/alarm:Alarm"
TOPIC = "oci:Ons/notificationTopic:NotificationTopic"
SUBSCRIPTION = "oci:Ons/subscription:Subscription"
OPS = "oci-dblab:operations:Operations"


# --- the MQL grammar -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        # the landing zone's high-cpu-alarm and the provider example, verbatim
        ("CpuUtilization[1m].mean() > 80", Query("CpuUtilization", "1m", (), "mean", None, ">", 80.0)),
        (
            "CpuUtilization[10m].percentile(0.9) < 85",
            Query("CpuUtilization", "10m", (), "percentile", 0.9, "<", 85.0),
        ),
        # the OCI absence example
        (
            'CpuUtilization[1m]{resourceId = "ocid1.instance.oc1..x"}.groupBy(resourceId).absent()',
            Query("CpuUtilization", "1m", (("resourceId", "ocid1.instance.oc1..x"),), "absent", group_by="resourceId"),
        ),
        (
            'DbVolumeUtilization[1h]{resourceId="a", resourceName = "b"}.max() >= 80.5',
            Query("DbVolumeUtilization", "1h", (("resourceId", "a"), ("resourceName", "b")), "max", None, ">=", 80.5),
        ),
        ("BackupFailure[1d].max() != 0", Query("BackupFailure", "1d", (), "max", None, "!=", 0.0)),
    ],
)
def test_parses_the_grammar(text: str, expected: Query) -> None:
    assert parse_query(text) == expected
    assert parse_query(render_query(expected)) == expected


@pytest.mark.parametrize(
    "text, why",
    [
        ("CpuUtilization.mean() > 80", "is not metric"),
        ("CpuUtilization[0m].mean() > 80", "out of range"),
        ("CpuUtilization[61m].mean() > 80", "out of range"),
        ("CpuUtilization[25h].mean() > 80", "out of range"),
        ("CpuUtilization[2d].mean() > 80", "out of range"),
        ("CpuUtilization[1m].average() > 80", "not one of"),
        ("CpuUtilization[1m].mean()", "is not a comparison"),
        ("CpuUtilization[1m].mean() => 80", "is not a comparison"),
        ("CpuUtilization[1m].mean() > eighty", "is not a comparison"),
        ("CpuUtilization[1m].mean(5) > 80", "takes no argument"),
        ("CpuUtilization[1m].percentile(90) > 80", "between 0 and 1"),
        ("CpuUtilization[1m].absent() > 0", "takes no argument here"),
        ("CpuUtilization[1m]{resourceId}.mean() > 80", "is not name"),
        ("CpuUtilization[1m]{resourceId = ocid1}.mean() > 80", "is not name"),
        ('CpuUtilization[1m]{resourceId = ""}.mean() > 80', "empty value"),
    ],
)
def test_refuses_what_the_grammar_does_not_allow(text: str, why: str) -> None:
    with pytest.raises(QueryError, match=why):
        parse_query(text)


# --- the alarm table -------------------------------------------------------------------------------------------
def test_every_spec_renders_a_valid_query_filtered_to_its_resource() -> None:
    specs = db_alarm_specs(ENGINES["mysql"], "MySQL.Free", 50).specs + vm_alarm_specs("VM.Standard.E2.1.Micro").specs
    for spec in specs:
        q = parse_query(spec.query_for("ocid1.thing.oc1..abc"))
        assert q.dimensions == (("resourceId", "ocid1.thing.oc1..abc"),)
        assert q.metric == spec.metric
        assert spec.severity in ("CRITICAL", "ERROR", "WARNING", "INFO")
        assert spec.pending_duration.startswith("PT") and spec.pending_duration[-1] in "MH"


def test_storage_message_follows_the_shape() -> None:
    free = {s.key: s for s in db_alarm_specs(ENGINES["mysql"], "MySQL.Free", 50).specs}["db-storage"]
    paid = {s.key: s for s in db_alarm_specs(ENGINES["mysql"], "MySQL.2", 200).specs}["db-storage"]
    assert "10 GB of 50 GB" in free.body and "fixed 50 GB" in free.body
    assert "40 GB of 200 GB" in paid.body and "raise dbStorageGbs" in paid.body


def test_connections_alarm_comes_from_the_shape_limit_or_a_warning() -> None:
    mysql = ENGINES["mysql"]
    plan = db_alarm_specs(mysql, "MySQL.Free", 50)
    assert "db-connections" not in {s.key for s in plan.specs}
    assert any("max_connections" in w and "MySQL.Free" in w for w in plan.warnings)
    # An engine row that records the shape's limit gets an alarm at 80 % of it.
    known = dataclasses.replace(mysql, max_connections={"MySQL.2": 1000})
    [conn] = [s for s in db_alarm_specs(known, "MySQL.2", 50).specs if s.key == "db-connections"]
    assert (conn.metric, conn.statistic, conn.operator, conn.threshold) == ("CurrentConnections", "max", ">", 800)


def test_engine_without_metrics_gets_no_db_alarms() -> None:
    bare = dataclasses.replace(ENGINES["mysql"], monitoring_namespace=None)
    plan = db_alarm_specs(bare, "MySQL.Free", 50)
    assert plan.specs == [] and plan.warnings


def test_topic_name_is_per_student_and_oci_safe() -> None:
    assert topic_name("dblab-a23-042") == "dblab-a23-042-alerts"
    with pytest.raises(ValueError, match="letters, digits"):
        topic_name("dblab-bad name")


# --- config -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["student", "a@b", "a b@c.edu", "a@b.edu, c@d.edu", "<a@b.edu>", "x" * 250 + "@b.edu"])
def test_bad_alert_email_is_a_clear_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(alertEmail=bad), "dev")
    text = str(e.value)
    assert "oci-dblab:alertEmail:" in text and "is not one e-mail address" in text and "you@example.edu" in text


def test_alert_email_is_optional() -> None:
    assert parse_config(good_raw(), "dev").alert_email is None
    assert parse_config(good_raw(alertEmail=" me@uni.ac.id "), "dev").alert_email == "me@uni.ac.id"


# --- the program --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def with_email():
    return plan_of(alertEmail="lecturer@uni.example.edu")


def _alarms(plan) -> dict[str, object]:
    return {r.name: r for r in plan.by_type(ALARM)}


def test_alarms_watch_the_db_and_the_vm_and_go_to_the_topic(plan) -> None:
    topic = named(plan, "lab-ops-topic")
    db, vm = named(plan, "lab-mysql"), named(plan, "lab-vm")
    alarms = _alarms(plan)
    assert set(alarms) == {
        "lab-ops-db-cpu",
        "lab-ops-db-memory",
        "lab-ops-db-storage",
        "lab-ops-db-backup-failure",
        "lab-ops-vm-cpu",
        "lab-ops-vm-memory",
        "lab-ops-vm-down",
    }
    for name, a in alarms.items():
        props = a.props
        target = db if "-db-" in name else vm
        q = parse_query(props["query"])
        assert q.dimensions == (("resourceId", target.id),), name
        assert props["namespace"] == ("oci_mysql_database" if target is db else "oci_computeagent")
        assert props["destinations"] == [topic.id]
        assert props["isEnabled"] is True
        assert props["compartmentId"] == props["metricCompartmentId"] == topic.props["compartmentId"]
        assert props["freeformTags"] == {"project": "oci-dblab", "stack": "dev", "student": "a23-042"}
        assert a.parent and a.parent.endswith(f"{OPS}::lab-ops")
    assert parse_query(alarms["lab-ops-vm-down"].props["query"]).is_absence
    assert alarms["lab-ops-vm-down"].props["severity"] == "CRITICAL"
    assert alarms["lab-ops-db-cpu"].props["query"].endswith(".mean() > 80")
    assert alarms["lab-ops-db-cpu"].props["pendingDuration"] == "PT5M"


def test_without_alert_email_no_subscription_and_a_warning(plan) -> None:
    assert plan.by_type(SUBSCRIPTION) == []
    assert named(plan, "lab-ops-topic").props["name"] == "dblab-a23-042-alerts"
    assert any("alertEmail is not set" in w and "dblab-a23-042-alerts" in w for w in plan.warnings)
    assert any("no connections alarm for MySQL.Free" in w for w in plan.warnings)


def test_with_alert_email_an_email_subscription_to_the_topic(with_email) -> None:
    [sub] = with_email.by_type(SUBSCRIPTION)
    topic = named(with_email, "lab-ops-topic")
    assert (sub.props["protocol"], sub.props["endpoint"], sub.props["topicId"]) == (
        "EMAIL",
        "lecturer@uni.example.edu",
        topic.id,
    )
    assert sub.props["freeformTags"]["student"] == "a23-042"
    assert not any("alertEmail is not set" in w for w in with_email.warnings)
    assert set(_alarms(with_email)) == set(_alarms(plan_of()))


def test_topic_name_follows_the_stack_without_student() -> None:
    plan = plan_of(studentId=None, stack="lab7")
    assert named(plan, "lab-ops-topic").props["name"] == "dblab-lab7-alerts"


ROLE_ALARMS = {
    "cpu": "db-cpu",
    "memory": "db-memory",
    "storage": "db-storage",
    "connections": "db-connections",
    "backup_failure": "db-backup-failure",
}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_s_db_is_watched_in_its_own_namespace_and_every_missing_alarm_is_said(engine: str) -> None:
    """A DB VM publishes compute-agent metrics, the PostgreSQL service its own namespace; a role without a metric
    (storage, connections, backup failure) is a warning with the engine's reason, never silently left out."""
    eng = ENGINES[engine]
    plan = plan_of(dbEngine=engine)
    topic = named(plan, "lab-ops-topic")
    db_ids = {r.id for r in plan.by_type(eng.endpoint_type) if r.name != "lab-vm"}
    db_alarms = {n: a for n, a in _alarms(plan).items() if "-db-" in n}
    assert {"lab-ops-db-cpu", "lab-ops-db-memory"} <= set(db_alarms), engine
    expected_ns = "oci_computeagent" if eng.endpoint_type == "oci:Core/instance:Instance" else eng.monitoring_namespace
    assert expected_ns != "oci_mysql_database" or engine == "mysql"
    for name, a in db_alarms.items():
        q = parse_query(a.props["query"])
        assert a.props["namespace"] == expected_ns, name
        assert q.dimensions[0][0] == "resourceId" and q.dimensions[0][1] in db_ids, name
        role = "down" if name.endswith("db-down") else next(r for r, k in ROLE_ALARMS.items() if name.endswith(k))
        assert q.metric == eng.metrics[role] and (role == "down") == q.is_absence
        assert a.props["destinations"] == [topic.id]
    for role, key in ROLE_ALARMS.items():
        if f"lab-ops-{key}" in db_alarms:
            continue
        said = [w for w in plan.warnings if key in w or (role == "connections" and "max_connections" in w)]
        assert said, f"{engine}: no {key} alarm and no warning saying why"
        if role in eng.alarm_gaps:
            assert eng.alarm_gaps[role] in said[0]


@pytest.mark.parametrize("engine", sorted(e for e in ENGINES if "down" in ENGINES[e].metrics))
def test_a_db_vm_has_a_down_alarm_while_it_is_meant_to_run(engine: str) -> None:
    """A DB VM is a machine like the app VM: its agent's metric gone silent means the database is down. Stopped on
    purpose (dbState INACTIVE, labctl class stop) it has no such alarm, and a warning says so."""
    running = plan_of(dbEngine=engine)
    [down] = [a for n, a in _alarms(running).items() if n == "lab-ops-db-down"]
    q = parse_query(down.props["query"])
    assert q.is_absence and q.group_by == "resourceId" and down.props["severity"] == "CRITICAL"
    assert q.dimensions == (("resourceId", named(running, "lab-db-vm").id),)
    stopped = plan_of(dbEngine=engine, dbState="INACTIVE")
    assert "lab-ops-db-down" not in _alarms(stopped)
    assert any("dbState is INACTIVE: no db-down alarm" in w for w in stopped.warnings)
    assert {"lab-ops-db-cpu", "lab-ops-db-memory"} <= set(_alarms(stopped))
