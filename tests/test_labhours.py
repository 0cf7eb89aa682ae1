"""labHours: parsing and validation (pure), and the VM's Resource Scheduler schedules in the program."""

from __future__ import annotations

import pytest
from conftest import good_raw, named, plan_of

from components.config import ConfigError, parse_config
from components.labhours import LabHours, LabHoursError, check_cron, parse_lab_hours

SCHEDULE = "oci:ResourceScheduler/schedule:Schedule"
POLICY = "oci:Identity/policy:Policy"


@pytest.mark.parametrize(
    "text, days, start, end, tz, start_cron, stop_cron, weekly",
    [
        (
            "Mon-Fri 07:00-17:00 Asia/Jakarta",
            (0, 1, 2, 3, 4),
            (7, 0),
            (17, 0),
            "Asia/Jakarta",
            "0 7 * * 1,2,3,4,5",
            "0 17 * * 1,2,3,4,5",
            50.0,
        ),
        (
            "mon,wed,Sat 8:30-12:15 Europe/Berlin",
            (0, 2, 5),
            (8, 30),
            (12, 15),
            "Europe/Berlin",
            "30 8 * * 1,3,6",
            "15 12 * * 1,3,6",
            11.25,
        ),
        ("Sun 00:00-23:59 UTC", (6,), (0, 0), (23, 59), "UTC", "0 0 * * 0", "59 23 * * 0", 23 + 59 / 60),
    ],
)
def test_parses(text, days, start, end, tz, start_cron, stop_cron, weekly):
    h = parse_lab_hours(text)
    assert h == LabHours(days, start, end, tz)
    assert (h.start_cron, h.stop_cron) == (start_cron, stop_cron)
    assert h.hours_per_week == pytest.approx(weekly)


@pytest.mark.parametrize(
    "text, why",
    [
        ("Mon-Fri 07:00-17:00", "is not '<days>"),
        ("weekdays 07:00-17:00 Asia/Jakarta", "are not like Mon-Fri"),
        ("Fri-Mon 07:00-17:00 Asia/Jakarta", "runs backwards"),
        ("Mon-Fri 17:00-07:00 Asia/Jakarta", "end before they start"),
        ("Mon-Fri 07:00-07:00 Asia/Jakarta", "end before they start"),
        ("Mon-Fri 07:00-24:30 Asia/Jakarta", "not a time of day"),
        ("Mon-Fri 07:61-17:00 Asia/Jakarta", "not a time of day"),
        ("Mon-Fri 07:00-17:00 Asia/Jakarta_City", "not an IANA time zone"),
        ("Mon-Fri 07:00-17:00 ../etc/passwd", "not an IANA time zone"),
        ("Mon-Fri 07:00-17:00 WIB", "not an IANA time zone"),
    ],
)
def test_refuses(text, why):
    with pytest.raises(LabHoursError, match=why):
        parse_lab_hours(text)


def test_a_bad_value_is_a_config_error_naming_the_key_and_an_example():
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(labHours="Mon-Fri 07:00-17:00 Mars/Olympus"), "dev")
    text = str(e.value)
    assert "oci-dblab:labHours:" in text and "not an IANA time zone" in text
    assert "Example: Mon-Fri 07:00-17:00 Asia/Jakarta" in text


def test_without_lab_hours_no_schedules(plan):
    assert plan.by_type(SCHEDULE) == [] and plan.by_type(POLICY) == []
    assert "lab-ops-vm-down" in {r.name for r in plan.resources}


def test_lab_hours_start_and_stop_the_vm_with_a_policy_for_exactly_those_schedules():
    p = plan_of(labHours="Mon-Fri 07:00-17:00 Asia/Jakarta")
    vm = named(p, "lab-vm")
    start, stop = named(p, "lab-ops-vm-start"), named(p, "lab-ops-vm-stop")
    for s, action, cron in (
        (start, "START_RESOURCE", "0 7 * * 1,2,3,4,5"),
        (stop, "STOP_RESOURCE", "0 17 * * 1,2,3,4,5"),
    ):
        assert (s.props["action"], s.props["recurrenceType"], s.props["recurrenceDetails"]) == (action, "CRON", cron)
        assert s.props["localTimeZone"] == "Asia/Jakarta"
        assert s.props["resources"] == [{"id": vm.id}]
        assert s.props["freeformTags"]["student"] == "a23-042"
    policy = named(p, "lab-ops-schedules-policy")
    comp = policy.props["compartmentId"]
    assert policy.props["statements"] == [
        f"Allow any-user to manage instances in compartment id {comp} where all "
        f"{{request.principal.type='resourceschedule', request.principal.id='{s.id}'}}"
        for s in (start, stop)
    ]
    # the VM is stopped on purpose at night: no absence alarm, and a warning says why
    assert "lab-ops-vm-down" not in {r.name for r in p.resources}
    assert any("no vm-down alarm" in w for w in p.warnings)


def test_in_the_tenancy_root_the_policy_says_tenancy():
    root = "ocid1.tenancy.oc1..aaaaaaaa7kq2m4n6p8r2s4t6v8x2z4b6d8f2h4j6l8n2p4r6t8v2x4z6b8d2"
    p = plan_of(compartmentId=root, labHours="Sat 09:00-12:00 UTC")
    statements = named(p, "lab-ops-schedules-policy").props["statements"]
    assert len(statements) == 2 and all(
        s.startswith("Allow any-user to manage instances in tenancy where") for s in statements
    )


def test_a_secret_value_is_not_echoed():
    value = "Mon-Fri 07:00-17:00 Mars/Olympus"
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(labHours=value), "dev", secret_keys={"labHours"})
    assert "oci-dblab:labHours: the secret value" in str(e.value) and "Mars" not in str(e.value)


@pytest.mark.parametrize(
    "expr",
    ["0 7 * * 1,2,3,4,5", "30 23 * * 0", "15 10 * * 1-5", "*/15 * * * *", "0 0 1 1 7", "59 23 31 12 6"],
)
def test_cron_expressions_in_the_grammar_pass(expr):
    assert check_cron(expr) == expr


@pytest.mark.parametrize(
    "expr, why",
    [
        ("0 7 * *", "5 fields"),
        ("0 7 * * 1 2", "5 fields"),
        ("0  7 * * 1", "single spaces"),
        ("60 7 * * 1", "minute '60' is outside 0-59"),
        ("0 24 * * 1", "hour '24' is outside 0-23"),
        ("0 7 0 * 1", "day of month '0' is outside 1-31"),
        ("0 7 * 13 1", "month '13' is outside 1-12"),
        ("0 7 * * 8", "day of week '8' is outside 0-7"),
        ("0 7 * * 5-1", "day of week '5-1' is outside 0-7"),
        ("0 7 * * MON", "day of week 'MON' is not a number"),
        ("0 7 * * 1,,2", "day of week '' is not a number"),
        ("0 7 * * */0", "day of week '*/0' is not a number"),
    ],
)
def test_cron_expressions_outside_the_grammar_are_refused(expr, why):
    with pytest.raises(LabHoursError) as e:
        check_cron(expr)
    assert why in str(e.value)


def test_every_schedule_the_program_can_send_is_a_valid_cron():
    for days in ("Mon-Fri", "Sun", "Sat-Sun", "Mon,Wed,Fri", "Mon-Sun"):
        for hours in ("00:00-00:01", "07:00-17:00", "08:30-23:59"):
            h = parse_lab_hours(f"{days} {hours} UTC")
            for cron in (h.start_cron, h.stop_cron):
                assert check_cron(cron) == cron
                minute, hour, _, _, dow = cron.split()
                assert {int(x) for x in dow.split(",")} == {(d + 1) % 7 for d in h.days}
