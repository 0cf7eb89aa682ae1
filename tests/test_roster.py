"""Roster CSV and class.yaml parsing and validation (labctl.roster)."""

from __future__ import annotations

import pytest
from conftest import COMPARTMENT, make_ssh_public_key

from labctl.roster import (
    ClassConfigError,
    RosterError,
    check_students,
    load_class_config,
    load_roster,
    parse_class_config,
    parse_roster,
    student_config,
)

HEADER = "student_id,name,email,ssh_public_key,compartment_id,admin_cidr"
KEYS = [make_ssh_public_key(f"s{i}@lab") for i in range(45)]


def row(i: int, **over: str) -> str:
    rec = {
        "student_id": f"a23-{i:03d}",
        "name": f"Student {i}",
        "email": f"s{i}@student.example.ac.id",
        "ssh_public_key": KEYS[i],
        "compartment_id": "",
        "admin_cidr": "",
    }
    rec.update(over)
    return ",".join(rec.values())


def roster(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_good_roster_of_forty_students():
    text = roster(*(row(i) for i in range(40)))
    r = parse_roster(text)
    assert len(r.students) == 40
    assert r.students[0].stack == "student-a23-000" and r.students[0].line == 2
    assert r.students[-1].line == 41
    assert len({s.stack for s in r.students}) == 40


def test_bom_crlf_blank_rows_quotes_and_column_order_are_tolerated(tmp_path):
    text = "\ufeff" + "\r\n".join(
        [
            "email,student_id,ssh_public_key,name",
            f'a@x.example.org,A23_001,{KEYS[1]},"Rahma, Siti"',
            ",,,",
            "",
            f"b@x.example.org,Budi Santoso,{KEYS[2]},Budi",
        ]
    )
    path = tmp_path / "roster.csv"
    path.write_bytes(text.encode("utf-8"))
    r = load_roster(path)
    assert [(s.student_id, s.name, s.line) for s in r.students] == [
        ("a23-001", "Rahma, Siti", 2),
        ("budi-santoso", "Budi", 5),
    ]
    assert r.students[0].compartment_id is None


BAD = [
    ("empty file", "", 1, "", "the roster is empty"),
    ("header only", HEADER + "\n", 1, "", "header but no students"),
    ("no header", row(1) + "\n", 1, "", "the first line is a student, not the header"),
    ("unknown column", roster(row(1) + ",x", header=HEADER + ",studentid"), 1, "studentid", "did you mean student_id?"),
    ("missing column", "student_id,name,email\na,b,c@d.example\n", 1, "ssh_public_key", "required column"),
    ("duplicate column", roster(header="student_id,name,email,email,ssh_public_key"), 1, "email", "appears twice"),
    ("field count", roster(row(1), "a23-9,x,y@z.example"), 3, "", "has 3 fields but the header has 6"),
    ("empty name", roster(row(1, name="")), 2, "name", "name is empty. Example: Siti Rahma"),
    ("bad id", roster(row(1, student_id="a23/042")), 2, "student_id", "'a23/042' is not a usable student id"),
    ("id too long", roster(row(1, student_id="x" * 40)), 2, "student_id", "1-32 lowercase letters"),
    ("id ends with hyphen", roster(row(1, student_id="a23-")), 2, "student_id", "Example: a23-042"),
    ("duplicate id", roster(row(1), row(2, student_id="a23-001")), 3, "student_id", "the same id as line 2"),
    (
        "ids that normalise alike",
        roster(row(1, student_id="A23_007"), row(2, student_id="a23-007")),
        3,
        "student_id",
        "'A23_007' on line 2; both would be stack student-a23-007",
    ),
    ("bad email", roster(row(1, email="siti.rahma")), 2, "email", "'siti.rahma' is not an email address"),
    ("email with space", roster(row(1, email="siti rahma@x.example")), 2, "email", "Example: siti.rahma@"),
    ("not a key", roster(row(1, ssh_public_key="hello world")), 2, "ssh_public_key", "starts with 'hello'"),
    (
        "private key",
        roster(row(1, ssh_public_key="-----BEGIN OPENSSH PRIVATE KEY-----")),
        2,
        "ssh_public_key",
        "PRIVATE",
    ),
    ("damaged key", roster(row(1, ssh_public_key="ssh-ed25519 AAAAnotbase64!!")), 2, "ssh_public_key", "damaged"),
    (
        "shared key",
        roster(row(1), row(2, ssh_public_key=KEYS[1])),
        3,
        "ssh_public_key",
        "same SSH key as line 2 (student a23-001)",
    ),
    ("bad compartment", roster(row(1, compartment_id="ocid1.compartment")), 2, "compartment_id", "is not an OCID"),
    (
        "vcn ocid as compartment",
        roster(row(1, compartment_id=COMPARTMENT.replace("compartment", "vcn", 1))),
        2,
        "compartment_id",
        "the OCID of a vcn",
    ),
    (
        "cidr host bits",
        roster(row(1, admin_cidr="203.0.113.7/24")),
        2,
        "admin_cidr",
        "host bits set; write the network 203.0.113.0/24",
    ),
    ("cidr no prefix", roster(row(1, admin_cidr="203.0.113.7")), 2, "admin_cidr", "write 203.0.113.7/32"),
    ("cidr ipv6", roster(row(1, admin_cidr="2001:db8::/32")), 2, "admin_cidr", "IPv6"),
    ("cidr garbage", roster(row(1, admin_cidr="my-ip")), 2, "admin_cidr", "is not an IPv4 network"),
]


@pytest.mark.parametrize(("case", "text", "line", "column", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_roster(case, text, line, column, fragment):
    with pytest.raises(RosterError) as e:
        parse_roster(text, "class-a.csv")
    hits = [p for p in e.value.problems if fragment in p.message]
    assert hits, f"{case}: {fragment!r} not in {[str(p) for p in e.value.problems]}"
    assert (hits[0].line, hits[0].column) == (line, column)
    assert f"class-a.csv:line {line}" in str(e.value) or f"class-a.csv:{hits[0]}" in str(e.value)


def test_every_problem_is_listed_at_once_and_keys_are_not_echoed():
    private = "-----BEGIN OPENSSH PRIVATE KEY-----"
    text = roster(row(1, email="x"), row(2, ssh_public_key=private), row(3, admin_cidr="1.2.3.4/8"))
    with pytest.raises(RosterError) as e:
        parse_roster(text)
    assert [(p.line, p.column) for p in e.value.problems] == [(2, "email"), (3, "ssh_public_key"), (4, "admin_cidr")]
    assert private not in str(e.value)


def test_weak_rsa_key_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    key = weak.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    with pytest.raises(RosterError, match="RSA key of 1024 bits"):
        parse_roster(roster(row(1, ssh_public_key=key)))


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(RosterError, match="no such file"):
        load_roster(tmp_path / "nope.csv")


# --- class.yaml -------------------------------------------------------------------------------------------
CLASS_YAML = f"""
compartmentId: {COMPARTMENT}
region: ap-singapore-1
adminCidr: 198.51.100.0/24
config:
  dbDeletionProtection: true
  connectionCheck: false
"""


def test_class_config_and_student_config(tmp_path):
    path = tmp_path / "class.yaml"
    path.write_text(CLASS_YAML)
    cls = load_class_config(path)
    assert cls.tenancies == "shared" and cls.config == {"dbDeletionProtection": "true", "connectionCheck": "false"}
    r = parse_roster(roster(row(1), row(2, admin_cidr="198.51.100.77/32")))
    full, secrets = student_config(cls, r.students[1])
    assert full["oci:region"] == "ap-singapore-1"
    assert full["oci-dblab:adminCidr"] == "198.51.100.77/32"  # the row wins over the class default
    assert full["oci-dblab:compartmentId"] == COMPARTMENT
    assert full["oci-dblab:studentId"] == "a23-002"
    assert full["oci-dblab:dbDeletionProtection"] == "true"
    assert secrets == []
    check_students(r.students, cls)  # every student's config passes components.config.parse_config


BAD_CLASS = [
    ("compartmentID: x\n", "did you mean compartmentId?"),
    ("dbName: lab\n", "program settings go under 'config:'"),
    ("compartmentId: ocid1.compartment\n", "compartmentId: 'ocid1.compartment' is not an OCID"),
    ("region: Singapore\n", "is not an OCI region identifier"),
    ("adminCidr: 10.0.0.1/8\n", "host bits set"),
    ("tenancies: many\n", "is not one of shared, per-compartment, per-student"),
    ("config: {dbPassword: 'Lab-2026-db!'}\n", "plain text in class.yaml"),
    ("config: {sshPublicKey: x}\n", "set per student (roster column ssh_public_key)"),
    ("config: {dbNmae: x}\n", "did you mean dbName?"),
    ("config: [1, 2]\n", "must be a mapping"),
    ("region: [a, b]\n", "must be a single value"),
    ("- a\n- b\n", "must be a mapping of keys"),
    ("a: [\n", "is not valid YAML"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_CLASS)
def test_bad_class_config(text, fragment):
    with pytest.raises(ClassConfigError) as e:
        parse_class_config(text)
    assert fragment in str(e.value)


def test_per_student_config_problems_carry_the_student_line():
    cls = parse_class_config("config: {connectionCheck: false, dbStorageGbs: 10}\n")  # no compartmentId
    r = parse_roster(roster(row(1, compartment_id=COMPARTMENT, admin_cidr="198.51.100.9/32"), row(2)))
    with pytest.raises(RosterError) as e:
        check_students(r.students, cls, "class-a.csv")
    found = {(p.line, p.column) for p in e.value.problems}
    assert (2, "class.yaml:dbStorageGbs") in found
    assert (3, "compartment_id") in found and (3, "admin_cidr") in found
    msg = str(e.value)
    assert "compartment_id is empty and class.yaml has no compartmentId" in msg
    assert "stack student-a23-002" in msg


def test_a_class_file_key_s_problem_names_its_line():
    text = (
        "config:\n  connectionCheck: false\n  # labHours: Mon-Fri 07:00-17:00 UTC\n"
        "  labHours: Mon-Fri 07:00-17:00 Moon/Base\n"
    )
    cls = parse_class_config("compartmentId: " + COMPARTMENT + "\n" + text)
    r = parse_roster(roster(row(1, admin_cidr="198.51.100.9/32")))
    with pytest.raises(RosterError) as e:
        check_students(r.students, cls, "class-a.csv")
    assert {(p.line, p.column) for p in e.value.problems} == {(2, "class.yaml:5:labHours")}
    assert "'Moon/Base' is not an IANA time zone" in str(e.value)
