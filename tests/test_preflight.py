"""Class totals against Always Free and tenancy limits (labctl.preflight)."""

from __future__ import annotations

import json

import pytest
from conftest import COMPARTMENT, instructor_yaml, make_ssh_public_key

from labctl.preflight import DOES_NOT_FIT, FITS, FITS_PAID, preflight, render_text
from labctl.roster import RosterError, Student, parse_class_config

KEYS = [make_ssh_public_key(f"s{i}@lab") for i in range(40)]


def students(n: int) -> list[Student]:
    return [
        Student(f"a23-{i:03d}", f"student-a23-{i:03d}", f"S {i}", f"s{i}@x.example", KEYS[i], None, None, i + 2)
        for i in range(n)
    ]


def cls(**extra: str):
    lines = [f"compartmentId: {COMPARTMENT}", "adminCidr: 198.51.100.0/24"] + [f"{k}: {v}" for k, v in extra.items()]
    return parse_class_config("\n".join(lines) + "\n" + instructor_yaml())


def test_one_student_fits_always_free():
    report = preflight(students(1), cls())
    assert report.verdict == FITS
    assert report.monthly_total == 0.0
    (t,) = report.tenancies
    assert (t.instances, t.db_systems, t.storage_gbs) == (1, 1, 100)
    assert all(c.ok for c in t.checks)
    assert not report.options
    assert "FITS" in render_text(report)


def test_forty_students_do_not_fit_one_tenancy():
    report = preflight(students(40), cls())
    assert report.verdict == DOES_NOT_FIT
    assert "40 MySQL.Free DB systems needed, 1 allowed per tenancy" in report.summary
    assert "40 VM.Standard.E2.1.Micro instances needed, 2 allowed" in report.summary
    (t,) = report.tenancies
    failed = {c.what for c in t.checks if not c.ok}
    assert failed == {
        "VM.Standard.E2.1.Micro instances",
        "MySQL.Free DB systems",
        "boot volume GB (Always Free block storage)",
    }
    options = {o.title: o for o in report.options}
    assert options["per-student tenancies"].monthly == 0.0
    assert options["later: one shared DB"].monthly is None
    paid = options["paid shapes in the shared tenancy (MySQL.2)"]
    # 39 DB systems on MySQL.2 (2 ECPU x 744 h x 0.0366 + 50 GB x 0.04) ...
    db = 39 * (round(2 * 744 * 0.0366, 2) + 2.0)
    assert paid.monthly > db
    assert "39 DB system(s) on MySQL.2" in paid.detail and "38 app VM(s)" in paid.detail
    text = render_text(report)
    assert "DOES NOT FIT" in text and "per-student tenancies" in text
    data = report.to_dict()
    json.dumps(data)
    assert data["verdict"] == DOES_NOT_FIT and data["tenancies"][0]["dbSystems"] == 40


def test_forty_students_in_their_own_tenancies_fit():
    report = preflight(students(40), cls(tenancies="per-student"))
    assert report.verdict == FITS
    assert len(report.tenancies) == 40
    assert "own Free Tier account" in report.grouping_note


def test_per_compartment_groups_by_compartment():
    other = COMPARTMENT[:-4] + "zzzz"
    ss = students(2)
    ss = [ss[0], Student(**{**ss[1].__dict__, "compartment_id": other})]
    report = preflight(ss, cls(tenancies="per-compartment"))
    assert sorted(t.key for t in report.tenancies) == sorted([COMPARTMENT, other])
    assert report.verdict == FITS


def test_paid_shapes_that_fit_the_limits_are_priced():
    report = preflight(students(2), cls(dbShape="MySQL.2"))
    assert report.verdict == FITS_PAID
    assert report.monthly_total == pytest.approx(2 * (round(2 * 744 * 0.0366, 2) + 2.0))


def test_a_bad_student_config_is_reported_with_its_line():
    with pytest.raises(RosterError) as e:
        preflight(students(1), cls(config="{dbStorageGbs: 10}"))  # MySQL.Free has exactly 50 GB
    assert e.value.problems[0].line == 2


def test_a_shape_missing_from_the_price_table_is_cost_unknown_never_free():
    from labctl.preflight import COST_UNKNOWN

    report = preflight(students(1), cls(appShape="VM.Standard2.24"))
    assert report.verdict == COST_UNKNOWN  # it used to say "fits Always Free, 0.00 USD"
    assert "VM.Standard2.24" in report.summary and "not in the price table" in report.summary
    assert "COST UNKNOWN" in render_text(report) and "fits Always Free" not in render_text(report)


def test_worker_reports_unknown_cost_as_none():
    from conftest import ROOT, full_keys, good_raw

    from labctl.worker import plan_doc

    doc = plan_doc({"config": full_keys(good_raw(appShape="VM.Standard2.24"))}, "dev", ROOT, summary=True)
    assert doc["monthlyCost"] is None
    doc = plan_doc({"config": full_keys(good_raw())}, "dev", ROOT, summary=True)
    assert doc["monthlyCost"] == 0.0
