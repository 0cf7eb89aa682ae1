"""Every input file labctl reads: stack files, class.yaml and rosters. Each bad one is one clear message naming the
file (and line), exit 2 from the CLI, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import COMPARTMENT, INSTRUCTOR_PUB, instructor_yaml, make_ssh_public_key

from labctl.cli import main
from labctl.inputs import InputFileError, load_yaml
from labctl.roster import ClassConfigError, RosterError, load_class_config, load_roster, parse_roster
from labctl.stackfile import StackFileError, load_stack_config

KEY = make_ssh_public_key("s1@lab")
GOOD_STACK = (
    "config:\n"
    f"  oci-dblab:compartmentId: {COMPARTMENT}\n"
    f"  oci-dblab:sshPublicKey: {KEY}\n"
    "  oci-dblab:adminCidr: 198.51.100.23/32\n"
)
GOOD_CLASS = f"compartmentId: {COMPARTMENT}\nregion: ap-singapore-1\n" + instructor_yaml()
HEADER = "student_id,name,email,ssh_public_key,admin_cidr"
GOOD_ROSTER = f"{HEADER}\na23-001,Ayu,ayu@x.example.org,{KEY},198.51.100.11/32\n"

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(5)
)


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


# --- file-level problems, the same for every kind of file ------------------------------------------------------
def _missing(tmp_path: Path, name: str) -> Path:
    return tmp_path / name


def _directory(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


def _latin1(tmp_path: Path, name: str) -> Path:
    return _write(tmp_path, name, "a: 1\nname: Jos\xe9\n".encode("latin-1"))


def _too_big(tmp_path: Path, name: str) -> Path:
    return _write(tmp_path, name, "#" * (1024 * 1024 + 10))


def _fifo(tmp_path: Path, name: str) -> Path:
    os.mkfifo(tmp_path / name)
    return tmp_path / name


FILE_CASES = [
    ("missing", _missing, "no such file"),
    ("directory", _directory, "is a directory"),
    ("not-utf8", _latin1, "is not UTF-8 text"),
    ("too-big", _too_big, "over the 1,048,576-byte limit"),
    ("fifo", _fifo, "not a regular file"),
]
LOADERS = [
    ("stack", "Pulumi.x.yaml", load_stack_config, StackFileError),
    ("class", "class.yaml", load_class_config, ClassConfigError),
    ("roster", "roster.csv", load_roster, RosterError),
]


@pytest.mark.parametrize("kind,name,load,error", LOADERS, ids=[x[0] for x in LOADERS])
@pytest.mark.parametrize("case,make,words", FILE_CASES, ids=[x[0] for x in FILE_CASES])
def test_unusable_files(tmp_path, kind, name, load, error, case, make, words):  # 15 bad inputs
    path = make(tmp_path, name)
    with pytest.raises(error) as e:
        load(path)
    assert words in str(e.value) and str(path) in str(e.value)


def test_not_utf8_names_the_line(tmp_path):
    with pytest.raises(ClassConfigError, match="line 2: is not UTF-8"):
        load_class_config(_latin1(tmp_path, "class.yaml"))


# --- YAML that would not mean what it says (stack files and class.yaml) ---------------------------------------
YAML_CASES = [
    ("duplicate top key", "a: 1\nb: 2\na: 3\n", 3, "key 'a' appears twice (lines 1 and 3)"),
    ("duplicate nested key", "config:\n  x: 1\n  x: 2\n", 3, "key 'x' appears twice"),
    ("off", "check: off\n", 1, "'off' would be read as the boolean false"),
    ("yes", "check: yes\n", 1, "'yes' would be read as the boolean true"),
    ("On capitalised", "check: On\n", 1, "'On' would be read as the boolean true"),
    ("leading zero", "days: 010\n", 1, "a leading 0 is octal"),
    ("hex", "days: 0x1F\n", 1, "0x/0b are hex/binary"),
    ("underscore", "days: 1_000\n", 1, "'_' is ignored"),
    ("sexagesimal", "days: 1:30\n", 1, "base 60"),
    ("empty value", "a: 1\nregion:\n", 2, "the value is empty"),
    ("tilde", "region: ~\n", 1, "is null in YAML"),
    ("boolean key", "on: push\n", 1, "the key 'on' would be read as bool"),
    ("integer key", "config:\n  1: x\n", 2, "the key '1' would be read as int"),
    ("list key", "? [a, b]\n: x\n", 1, "a key must be plain text"),
    ("alias loop", "a: &a [*a]\n", 1, "alias refers to the mapping or list that contains it"),
    ("yaml bomb", BOMB, 0, "expands to more than 10,000 values"),
    ("syntax", "a: [1, 2\n", 2, "is not valid YAML"),
    ("tab indentation", "config:\n\tx: 1\n", 2, "is not valid YAML"),
]


@pytest.mark.parametrize("text,line,words", [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES])
def test_strict_yaml(text, line, words):  # 18 bad inputs
    with pytest.raises(InputFileError) as e:
        load_yaml(text, "f.yaml")
    assert words in str(e.value)
    if line:
        assert e.value.line == line and str(e.value).startswith(f"f.yaml:{line}: ")


def test_quoted_values_and_plain_good_values_pass():
    doc = load_yaml('a: "off"\nb: \'010\'\nc: true\nd: 7\ne: 1.5\nf: ""\ng: |\n  yes\n<<: {h: 1}\n', "f.yaml")
    assert doc == {"a": "off", "b": "010", "c": True, "d": 7, "e": 1.5, "f": "", "g": "yes\n", "h": 1}


@pytest.mark.parametrize(
    "text,words",
    [
        ("config:\n  oci-dblab:connectionCheck: off\n", "'off' would be read as the boolean false"),
        ("config:\n  oci-dblab:dbBackupRetentionDays: 010\n", "a leading 0 is octal"),
        ("config:\n  oci-dblab:adminCidr:\n", "the value is empty"),
        ("config:\n  oci-dblab:adminCidr: 1.2.3.4/32\n  oci-dblab:adminCidr: 0.0.0.0/0\n", "appears twice"),
        ("- a\n- b\n", "expected a mapping with a 'config:' section"),
    ],
    ids=["off", "octal", "empty", "duplicate", "list"],
)
def test_bad_stack_files(tmp_path, text, words):  # 5 bad inputs
    path = _write(tmp_path, "Pulumi.x.yaml", text)
    with pytest.raises(StackFileError) as e:
        load_stack_config(path)
    assert words in str(e.value) and str(path) in str(e.value)


# --- class.yaml values ---------------------------------------------------------------------------------------
CLASS_CASES = [
    ("duplicate key", GOOD_CLASS + "region: eu-frankfurt-1\n", "line 6: key 'region' appears twice (lines 2 and 6)"),
    ("unknown region", GOOD_CLASS.replace("ap-singapore-1", "ap-singapur-1"), "did you mean ap-singapore-1?"),
    ("display name region", GOOD_CLASS.replace("ap-singapore-1", "Singapore"), "not a display name"),
    ("region not in list", GOOD_CLASS.replace("ap-singapore-1", "us-ashburn-2"), "did you mean us-ashburn-1?"),
    ("admin from anywhere", GOOD_CLASS + "adminCidr: 0.0.0.0/0\n", "adminCidr: 0.0.0.0/0 is the whole internet"),
    ("admin private", GOOD_CLASS + "adminCidr: 10.0.0.0/8\n", "private range (RFC 1918)"),
    ("admin too wide", GOOD_CLASS + "adminCidr: 81.0.0.0/12\n", "wider than /16"),
    ("instructor loopback", GOOD_CLASS.replace("198.51.100.40/32", "127.0.0.1/32"), "instructorCidr: 127.0.0.1/32"),
    ("instructor key private", GOOD_CLASS.replace(INSTRUCTOR_PUB, "-----BEGIN OPENSSH PRIVATE KEY-----"), "PRIVATE"),
    ("instructor path .pub", GOOD_CLASS.replace("course_ed25519", "course_ed25519.pub"), "is a public key"),
    ("no instructor", f"compartmentId: {COMPARTMENT}\n", "config: {connectionCheck: false}"),
    ("bad min prefix", GOOD_CLASS + "adminCidrMinPrefix: 40\n", "adminCidrMinPrefix: '40' is not a prefix length"),
    ("check off unquoted", GOOD_CLASS + "config:\n  connectionCheck: off\n", "'off' would be read as the boolean"),
]


@pytest.mark.parametrize("text,words", [c[1:] for c in CLASS_CASES], ids=[c[0] for c in CLASS_CASES])
def test_bad_class_yaml(tmp_path, text, words):  # 13 bad inputs
    path = _write(tmp_path, "class.yaml", text)
    with pytest.raises(ClassConfigError) as e:
        load_class_config(path)
    assert words in str(e.value) and str(path) in str(e.value)
    assert INSTRUCTOR_PUB.split()[1] not in str(e.value)  # a key is never echoed


def test_private_key_text_is_never_echoed(tmp_path):
    secret = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    path = _write(tmp_path, "class.yaml", GOOD_CLASS.replace(INSTRUCTOR_PUB, f'"{secret}"'))
    with pytest.raises(ClassConfigError) as e:
        load_class_config(path)
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in str(e.value)


# --- roster rows -----------------------------------------------------------------------------------------------
def _roster(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


ROSTER_CASES = [
    ("admin anywhere", _roster(f"a1,A,a@x.example.org,{KEY},0.0.0.0/0"), 2, "admin_cidr", "the whole internet"),
    ("admin half", _roster(f"a1,A,a@x.example.org,{KEY},0.0.0.0/1"), 2, "admin_cidr", "'this network'"),
    ("admin loopback", _roster(f"a1,A,a@x.example.org,{KEY},127.0.0.1/32"), 2, "admin_cidr", "loopback"),
    ("admin multicast", _roster(f"a1,A,a@x.example.org,{KEY},224.0.0.0/4"), 2, "admin_cidr", "multicast"),
    ("admin private", _roster(f"a1,A,a@x.example.org,{KEY},10.0.0.0/8"), 2, "admin_cidr", "private range"),
    (
        "unknown region",
        _roster(f"a1,A,a@x.example.org,{KEY},,ap-tokio-1", header=HEADER + ",region"),
        2,
        "region",
        "did you mean ap-tokyo-1?",
    ),
    (
        "bad profile",
        _roster(f"a1,A,a@x.example.org,{KEY},,[SITI]", header=HEADER + ",oci_profile"),
        2,
        "oci_profile",
        "is not a profile name",
    ),
]


@pytest.mark.parametrize("text,line,column,words", [c[1:] for c in ROSTER_CASES], ids=[c[0] for c in ROSTER_CASES])
def test_bad_roster_rows(tmp_path, text, line, column, words):  # 7 bad inputs
    from labctl.roster import check_students, parse_class_config

    cls = parse_class_config(GOOD_CLASS)
    with pytest.raises(RosterError) as e:
        check_students(parse_roster(text, "r.csv").students, cls, "r.csv")
    assert any(p.line == line and p.column == column and words in p.message for p in e.value.problems), str(e.value)


def test_student_id_with_trailing_newline_is_refused():
    from components.config import STUDENT_RE

    assert STUDENT_RE.match("a23-001") and not STUDENT_RE.match("a23-001\n")


# --- the CLI: exit 2, the message, no traceback ------------------------------------------------------------------
@pytest.mark.parametrize(
    "which,content,words",
    [
        ("class", GOOD_CLASS + "compartmentId: x\n", "appears twice"),
        ("class", b"\xff\xfe", "not UTF-8"),
        ("roster", b"student_id,name\n\xff", "not UTF-8"),
        ("roster", None, "is a directory"),
    ],
    ids=["class-dup", "class-utf16", "roster-binary", "roster-dir"],
)
def test_cli_exit_2_without_traceback(tmp_path, capsys, which, content, words):
    roster = _write(tmp_path, "roster.csv", GOOD_ROSTER)
    cls = _write(tmp_path, "class.yaml", GOOD_CLASS)
    target = roster if which == "roster" else cls
    if content is None:
        target.unlink()
        target.mkdir()
    else:
        _write(tmp_path, target.name, content)
    assert main(["class", "validate", str(roster), "--class-config", str(cls)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and str(target) in err


def test_plan_with_bad_stack_file_exits_2(tmp_path, capsys):
    path = _write(tmp_path, "Pulumi.x.yaml", "config:\n  oci-dblab:connectionCheck: no\n")
    assert main(["plan", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:" in err and "'no' would be read as the boolean false" in err


@pytest.mark.parametrize(
    "line,words",
    [
        ("appShape: VM.Standard.E4.Flx", "did you mean VM.Standard.E4.Flex?"),
        ("appShape: VM.Standard2.3", "is not a known OCI compute (VM) shape"),
        ("dbShape: MySQL.999", "is not a known OCI shape of engine mysql"),
        ("dbShape: MySQL.Fre", "did you mean MySQL.Free?"),
    ],
    ids=["flex-typo", "no-such-size", "mysql-999", "mysql-free-typo"],
)
def test_shapes_are_checked_against_known_names(tmp_path, line, words):  # 4 bad inputs
    path = _write(tmp_path, "class.yaml", GOOD_CLASS + line + "\n")
    with pytest.raises(ClassConfigError) as e:
        load_class_config(path)
    assert f"{line.split(':')[0]}: " in str(e.value) and words in str(e.value)


def test_nonsense_mysql_shape_is_never_priced():
    from labctl.estimate import NOT_PRICED, FreeTier, price_db_system

    lines, _ = price_db_system("db", "MySQL.999", 50, FreeTier())
    assert [ln.note for ln in lines] == [NOT_PRICED]
    lines, _ = price_db_system("db", "MySQL.2", 50, FreeTier())
    assert sum(ln.monthly for ln in lines) > 0
