"""A class of students: the roster CSV, the class config (``class.yaml``) and each student's stack config.

Pure: text in, a ``Roster`` / ``ClassConfig`` or an error listing every problem out. The roster's checks reuse
the lab's own validators (``components.config``), so a row that passes here is a config the program accepts, and
``check_students`` runs ``components.config.parse_config`` on every student's full config to prove it.

Roster header: ``student_id,name,email,ssh_public_key[,compartment_id][,admin_cidr][,oci_profile][,region]`` (any
order).
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engines
from components.config import (
    DEFAULTS,
    EXAMPLES,
    OCID_RE,
    PROJECT,
    SECRET_KEYS,
    STUDENT_RE,
    ConfigError,
    check_ssh_public_key,
    parse_config,
)
from engines import vmdb
from labctl.inputs import InputFileError, load_yaml, read_input_file
from policy.rules import ADMIN_SOURCE_MIN_PREFIX, judge_admin_source

REQUIRED_COLUMNS = ("student_id", "name", "email", "ssh_public_key")
OPTIONAL_COLUMNS = ("compartment_id", "admin_cidr", "oci_profile", "region")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
EXAMPLE_HEADER = "student_id,name,email,ssh_public_key,compartment_id,admin_cidr"
STACK_PREFIX = "student-"
STACK_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}\Z")
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\Z"
)
REGION_RE = re.compile(r"[a-z]{2,}(?:-[a-z]+)+-[0-9]+\Z")
COLUMN_EXAMPLES = {
    "student_id": "a23-042  (letters, digits, hyphens; becomes stack student-a23-042)",
    "name": "Siti Rahma",
    "email": "siti.rahma@student.example.ac.id",
    "ssh_public_key": "ssh-ed25519 AAAAC3Nza... siti@laptop  (the one line of the student's .pub file)",
    "compartment_id": EXAMPLES["compartmentId"],
    "admin_cidr": "198.51.100.23/32  (the student's public IP, see https://ifconfig.me)",
    "oci_profile": "SITI  (a [SITI] profile in ~/.oci/config holding the student's own tenancy's API key)",
    "region": "ap-singapore-1  (the student's home region)",
}
PROFILE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
# class.yaml top-level keys; everything else of the program goes under `config:`
CLASS_KEYS = (
    "compartmentId",
    "region",
    "adminCidr",
    "adminCidrMinPrefix",
    "instructorSshPublicKey",
    "instructorSshPrivateKeyPath",
    "instructorCidr",
    "appShape",
    "dbShape",
    "dbEngine",
    "tenancies",
    "config",
    "classLayer",  # the class layer's own section (labctl class setup, components/tenancy.py parse_layer)
)
CLASS_EXAMPLES = {
    "instructorSshPublicKey": "ssh-ed25519 AAAAC3Nza... instructor@course  (the instructor's .pub file)",
    "instructorSshPrivateKeyPath": "~/.ssh/course_ed25519  (the private key beside that .pub file)",
    "instructorCidr": "198.51.100.40/32  (the public IP the instructor runs labctl from)",
    "adminCidrMinPrefix": "16  (SSH sources may be no wider than a /16)",
}
TENANCY_MODES = ("shared", "per-compartment", "per-student")
PER_STUDENT_KEYS = ("sshPublicKey", "studentId", "compartmentId", "adminCidr")
# which roster column or class.yaml key a config key comes from, to point a per-student problem at its source
KEY_SOURCE = {
    "compartmentId": "compartment_id",
    "sshPublicKey": "ssh_public_key",
    "adminCidr": "admin_cidr",
    "studentId": "student_id",
}


# --- the roster --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RosterProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        col = f", {self.column}" if self.column else ""
        return f"{where}{col}: {self.message}"


class RosterError(ValueError):
    """Every problem of a roster (or of its students' configs), reported at once."""

    def __init__(self, problems: list[RosterProblem], source: str = "roster.csv") -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        self.source = source
        lines = [f"{len(problems)} problem(s) in {source}; no stack was created or changed:"]
        lines += [f"  - {source}:{p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Student:
    student_id: str  # normalised: lowercase, spaces/underscores -> hyphens
    stack: str  # student-<student_id>
    name: str
    email: str
    ssh_public_key: str
    compartment_id: str | None
    admin_cidr: str | None
    line: int
    oci_profile: str | None = None
    region: str | None = None


@dataclass
class Roster:
    source: str
    columns: list[str]
    students: list[Student] = field(default_factory=list)


def normalise_id(raw: str) -> str:
    """The student id as a stack and config value: trimmed, lowercase, spaces and underscores to hyphens."""
    return re.sub(r"[\s_]+", "-", raw.strip().lower())


def _ex(column: str) -> str:
    return f" Example: {COLUMN_EXAMPLES[column]}"


def _key_fingerprint(text: str) -> str:
    """Type and base64 of an OpenSSH public key line: the part that identifies the key (not its comment)."""
    return " ".join(text.split()[:2])


def _check_cidr(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            loose = ipaddress.ip_network(value, strict=False)
            return f"'{value}' has host bits set; write the network {loose} or the single host {value.split('/')[0]}/32"
        return f"'{value}' is not an IPv4 network like 203.0.113.7/32"
    if not isinstance(net, ipaddress.IPv4Network):
        return f"'{value}' is IPv6; the lab's security lists take IPv4"
    if "/" not in value:
        return f"'{value}' has no prefix length; write {value}/32 for a single address"
    return None


@functools.lru_cache(maxsize=1)
def oci_regions() -> tuple[str, ...]:
    """OCI's region identifiers (``labctl/data/regions.json``, with its source)."""
    doc = json.loads((Path(__file__).resolve().parent / "data" / "regions.json").read_text(encoding="utf-8"))
    return tuple(doc["regions"])


def check_region(value: str) -> str | None:
    """Why ``value`` is not an OCI region identifier, or None."""
    if value in oci_regions():
        return None
    near = difflib.get_close_matches(value.lower(), oci_regions(), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    shape = "" if REGION_RE.match(value) else " (identifiers look like ap-singapore-1, not a display name)"
    return (
        f"'{value}' is not an OCI region identifier{shape}{hint} (known regions: labctl/data/regions.json, from the "
        "OCI SDK)"
    )


@functools.lru_cache(maxsize=1)
def known_shapes() -> dict[str, Any]:
    """OCI shape names the class flow accepts (``labctl/data/shapes.json``, with its sources)."""
    return json.loads((Path(__file__).resolve().parent / "data" / "shapes.json").read_text(encoding="utf-8"))


def check_shape(kind: str, value: str) -> str | None:
    """Why ``value`` is not a known OCI shape of ``kind`` (``compute``, or an engine's name: the shapes.json table of
    that engine), with "did you mean", or None. An engine without a table is left to its config validation."""
    table = known_shapes()
    names = table.get(kind)
    if names is None or value in names:
        return None
    legacy = table.get(f"{kind}_legacy_pattern")
    if legacy and re.match(legacy, value):
        return None
    near = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else f"; known: {', '.join(names[:6])}, …"
    what = "compute (VM) shape" if kind == "compute" else f"shape of engine {kind}"
    return f"'{value}' is not a known OCI {what}{hint} (labctl/data/shapes.json)"


def _check_ocid(value: str) -> str | None:
    m = OCID_RE.match(value)
    if not m:
        return f"'{value}' is not an OCID; expected ocid1.compartment.… or ocid1.tenancy.… (copy it from the console)"
    if m["type"] not in ("compartment", "tenancy"):
        return f"'{value}' is the OCID of a {m['type']}, not of a compartment or tenancy"
    return None


def parse_roster(text: str, source: str = "roster.csv") -> Roster:
    """Parse and validate roster CSV text. Raises ``RosterError`` listing every problem with its line."""
    problems: list[RosterProblem] = []
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    prev_end = 0
    try:
        for row in reader:
            start = prev_end + 1
            prev_end = reader.line_num
            rows.append((start, row))
    except csv.Error as e:
        problems.append(
            RosterProblem(reader.line_num, "", f"is not valid CSV ({e}); put a field with commas in quotes")
        )
    rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]
    if not rows:
        problems.append(
            RosterProblem(
                1,
                "",
                "the roster is empty; it needs a header line and one line per student. "
                f"Example header: {EXAMPLE_HEADER}",
            )
        )
        raise RosterError(problems, source)

    header_line, header = rows[0]
    columns = [c.strip().lower() for c in header]
    header_ok = True
    if "student_id" not in columns and any(c.startswith("ssh-") or "@" in c for c in columns):
        problems.append(
            RosterProblem(
                header_line, "", f"the first line is a student, not the header; start the file with: {EXAMPLE_HEADER}"
            )
        )
        raise RosterError(problems, source)
    seen_cols: set[str] = set()
    for c in columns:
        if c in seen_cols:
            problems.append(RosterProblem(header_line, c, f"column '{c}' appears twice in the header"))
            header_ok = False
        seen_cols.add(c)
        if c not in COLUMNS:
            near = difflib.get_close_matches(c, COLUMNS, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"known columns: {', '.join(COLUMNS)}"
            problems.append(RosterProblem(header_line, c or "(empty)", f"unknown column '{c}'; {hint}"))
            header_ok = False
    for c in REQUIRED_COLUMNS:
        if c not in columns:
            problems.append(
                RosterProblem(
                    header_line,
                    c,
                    f"required column '{c}' is missing from the header. Example header: {EXAMPLE_HEADER}",
                )
            )
            header_ok = False
    if not header_ok:
        raise RosterError(problems, source)
    if len(rows) == 1:
        problems.append(
            RosterProblem(header_line, "", "the roster has a header but no students; add one line per student")
        )
        raise RosterError(problems, source)

    students: list[Student] = []
    by_stack: dict[str, tuple[int, str]] = {}
    by_key: dict[str, tuple[int, str]] = {}
    for line, row in rows[1:]:
        if len(row) != len(columns):
            problems.append(
                RosterProblem(
                    line,
                    "",
                    f"has {len(row)} fields but the header has {len(columns)}; put a field containing commas in "
                    "double quotes, and leave an empty field (,,) for a missing optional value",
                )
            )
            continue
        rec = {c: v.strip() for c, v in zip(columns, row, strict=True)}
        before = len(problems)
        for c in REQUIRED_COLUMNS:
            if not rec[c]:
                problems.append(RosterProblem(line, c, f"{c} is empty.{_ex(c)}"))
        raw_id = rec["student_id"]
        sid = normalise_id(raw_id)
        stack = STACK_PREFIX + sid
        if raw_id:
            if not STUDENT_RE.match(sid) or not STACK_RE.match(stack):
                shown = f" (normalised '{sid}')" if sid != raw_id else ""
                problems.append(
                    RosterProblem(
                        line,
                        "student_id",
                        f"'{raw_id}'{shown} is not a usable student id: 1-32 lowercase letters, digits and hyphens, "
                        f"starting and ending with a letter or digit (it names the stack {STACK_PREFIX}<id>)."
                        f"{_ex('student_id')}",
                    )
                )
            elif stack in by_stack:
                other_line, other_raw = by_stack[stack]
                same = "the same id as" if other_raw == raw_id else f"'{other_raw}' on"
                problems.append(
                    RosterProblem(
                        line,
                        "student_id",
                        f"'{raw_id}' is {same} line {other_line}; both would be stack {stack}. Give each student "
                        "a distinct id.",
                    )
                )
            else:
                by_stack[stack] = (line, raw_id)
        if rec["email"] and not EMAIL_RE.match(rec["email"]):
            problems.append(RosterProblem(line, "email", f"'{rec['email']}' is not an email address.{_ex('email')}"))
        key = rec["ssh_public_key"]
        if key:
            why = check_ssh_public_key(key)
            if why:  # never echo the key: it might be a private one pasted by mistake
                problems.append(RosterProblem(line, "ssh_public_key", f"the key {why}.{_ex('ssh_public_key')}"))
            else:
                fp = _key_fingerprint(key)
                if fp in by_key:
                    other_line, other_id = by_key[fp]
                    problems.append(
                        RosterProblem(
                            line,
                            "ssh_public_key",
                            f"the same SSH key as line {other_line} (student {other_id}); each student logs in "
                            "with their own key pair (ssh-keygen -t ed25519)",
                        )
                    )
                else:
                    by_key[fp] = (line, raw_id)
        comp = rec.get("compartment_id") or None
        if comp:
            why = _check_ocid(comp)
            if why:
                problems.append(RosterProblem(line, "compartment_id", f"{why}.{_ex('compartment_id')}"))
        cidr = rec.get("admin_cidr") or None
        if cidr:
            why = _check_cidr(cidr)
            if why:
                problems.append(RosterProblem(line, "admin_cidr", f"{why}.{_ex('admin_cidr')}"))
        profile = rec.get("oci_profile") or None
        if profile and not PROFILE_RE.match(profile):
            problems.append(
                RosterProblem(
                    line,
                    "oci_profile",
                    f"'{profile}' is not a profile name of an OCI config file (letters, digits, '.', '_', '-')."
                    f"{_ex('oci_profile')}",
                )
            )
        region = rec.get("region") or None
        if region:
            why = check_region(region)
            if why:
                problems.append(RosterProblem(line, "region", f"{why}.{_ex('region')}"))
        if len(problems) == before:
            students.append(Student(sid, stack, rec["name"], rec["email"], key, comp, cidr, line, profile, region))
    if problems:
        raise RosterError(problems, source)
    return Roster(source=source, columns=columns, students=students)


def load_roster(path: str | Path) -> Roster:
    """Read and validate a roster CSV file (UTF-8, with or without BOM, LF or CRLF)."""
    p = Path(path)
    try:
        text = read_input_file(p, "roster", f"create it with the header {EXAMPLE_HEADER}")
    except InputFileError as e:
        raise RosterError([RosterProblem(e.line, "", e.problem)], str(p)) from None
    return parse_roster(text, str(p))


# --- the class config --------------------------------------------------------------------------------------
class ClassConfigError(ValueError):
    """Every problem of a class.yaml, reported at once."""

    def __init__(self, problems: list[str], source: str = "class.yaml") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{len(problems)} problem(s) in {source}:"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ClassConfig:
    source: str
    compartment_id: str | None = None
    region: str | None = None
    admin_cidr: str | None = None
    app_shape: str | None = None
    db_shape: str | None = None
    db_engine: str | None = None
    tenancies: str = "shared"
    config: dict[str, str] = field(default_factory=dict)  # other oci-dblab keys, short names
    admin_cidr_min_prefix: int = ADMIN_SOURCE_MIN_PREFIX
    instructor_ssh_public_key: str | None = None
    instructor_ssh_private_key_path: str | None = None
    instructor_cidr: str | None = None
    warnings: tuple[str, ...] = ()
    # the line of each key's first block-style `key:` in the file (top level or under config:), for problem messages
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def connection_check(self) -> bool:
        return self.config.get("connectionCheck", "true").strip().lower() not in ("false", "no", "0")


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def parse_class_config(text: str, source: str = "class.yaml") -> ClassConfig:
    """Parse and check class.yaml text. Raises ``ClassConfigError`` listing every problem."""
    try:
        data = load_yaml(text, source)
    except InputFileError as e:
        raise ClassConfigError([f"line {e.line}: {e.problem}" if e.line else e.problem], source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ClassConfigError(["must be a mapping of keys, e.g. 'compartmentId: ocid1.compartment.oc1..…'"], source)
    problems: list[str] = []
    values: dict[str, str | None] = {}
    for key, raw in data.items():
        key = str(key)
        if key not in CLASS_KEYS:
            near = difflib.get_close_matches(key, CLASS_KEYS + tuple(DEFAULTS), n=1)
            if near and near[0] in DEFAULTS and near[0] not in CLASS_KEYS:
                hint = f"; program settings go under 'config:' (config: {{{near[0]}: …}})"
            elif near:
                hint = f"; did you mean {near[0]}?"
            else:
                hint = f"; known keys: {', '.join(CLASS_KEYS)}"
            problems.append(f"{key}: is not a class setting{hint}")
            continue
        if key in ("config", "classLayer"):
            continue
        v = _scalar(raw)
        if raw is not None and v is None:
            problems.append(f"{key}: must be a single value, not {type(raw).__name__}")
        values[key] = v.strip() if v else None

    comp = values.get("compartmentId")
    if comp:
        why = _check_ocid(comp)
        if why:
            problems.append(f"compartmentId: {why}. Example: {EXAMPLES['compartmentId']}")
    region = values.get("region")
    if region:
        why = check_region(region)
        if why:
            problems.append(f"region: {why}. Example: ap-singapore-1")
    min_prefix = ADMIN_SOURCE_MIN_PREFIX
    raw_min = values.get("adminCidrMinPrefix")
    if raw_min is not None:
        if not re.fullmatch(r"/?[0-9]{1,2}", raw_min) or not 8 <= int(raw_min.lstrip("/")) <= 32:
            problems.append(
                f"adminCidrMinPrefix: '{raw_min}' is not a prefix length 8..32. "
                f"Example: {CLASS_EXAMPLES['adminCidrMinPrefix']}"
            )
        else:
            min_prefix = int(raw_min.lstrip("/"))
    warnings: list[str] = []
    cidr = values.get("adminCidr")
    icidr = values.get("instructorCidr")
    for key, value, example in (
        ("adminCidr", cidr, "203.0.113.0/24  (the lab room's public network)"),
        ("instructorCidr", icidr, CLASS_EXAMPLES["instructorCidr"]),
    ):
        if value:
            why = _check_cidr(value)
            if why:
                problems.append(f"{key}: {why}. Example: {example}")
                continue
            judged = judge_admin_source(value, min_prefix)
            if judged.error:
                problems.append(f"{key}: {judged.error}; SSH must come from a public address. Example: {example}")
            elif judged.warning:
                warnings.append(f"{source}: {key}: {judged.warning}")
    ikey = values.get("instructorSshPublicKey")
    if ikey:
        why = check_ssh_public_key(ikey)
        if why:  # never echo it: it might be a private key pasted by mistake
            problems.append(
                f"instructorSshPublicKey: the key {why}. Example: {CLASS_EXAMPLES['instructorSshPublicKey']}"
            )
    ipath = values.get("instructorSshPrivateKeyPath")
    if ipath and ipath.endswith(".pub"):
        problems.append(
            f"instructorSshPrivateKeyPath: '{ipath}' is a public key; give the private key beside it. "
            f"Example: {CLASS_EXAMPLES['instructorSshPrivateKeyPath']}"
        )
    tenancies = values.get("tenancies") or "shared"
    if tenancies not in TENANCY_MODES:
        problems.append(
            f"tenancies: '{tenancies}' is not one of {', '.join(TENANCY_MODES)} (shared: one tenancy for the class; "
            "per-compartment: each compartment_id is its own tenancy; per-student: every student has their own "
            "Free Tier account)"
        )

    extra: dict[str, str] = {}
    cfg = data.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        problems.append("config: must be a mapping of oci-dblab settings, e.g. config: {connectionCheck: false}")
    for key, raw in (cfg or {}).items() if isinstance(cfg, dict) else ():
        key = str(key).removeprefix(f"{PROJECT}:")
        if key not in DEFAULTS:
            near = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            problems.append(f"config.{key}: is not a setting of {PROJECT}{hint}")
        elif key in SECRET_KEYS:
            problems.append(
                f"config.{key}: a class-wide {key} would sit in plain text in class.yaml and be shared by every "
                "student; leave it out and each DB system gets its own generated password"
            )
        elif key in PER_STUDENT_KEYS:
            problems.append(
                f"config.{key}: is set per student (roster column {KEY_SOURCE[key]}) or as the top-level class key"
                + (f" {key}" if key in CLASS_KEYS else "")
            )
        elif key in ("appShape", "dbShape", "dbEngine"):
            problems.append(f"config.{key}: set it as the top-level key {key}")
        else:
            v = _scalar(raw)
            if v is None:
                problems.append(f"config.{key}: must be a single value, not {type(raw).__name__}")
            else:
                extra[key] = v
    check_on = str(extra.get("connectionCheck", "true")).strip().lower() not in ("false", "no", "0")
    missing = [
        k
        for k, v in (
            ("instructorSshPublicKey", ikey),
            ("instructorSshPrivateKeyPath", ipath),
            ("instructorCidr", icidr),
        )
        if not v
    ]
    if check_on and missing:
        problems.append(
            f"{', '.join(missing)}: not set, and every student's stack runs the connection check. The check logs in "
            "to each student's VM from the instructor's machine, so the VMs must trust the instructor's key and "
            "allow SSH from the instructor's address. Set "
            + "; ".join(f"{k}: {CLASS_EXAMPLES[k]}" for k in missing)
            + ". Or turn the check off for the class: config: {connectionCheck: false}"
        )
    # A DB-VM engine's dbShape is a compute shape (its DB runs on a VM); otherwise a managed DB shape.
    db_engine = engines.find(values.get("dbEngine"))
    db_kind = "" if db_engine is None else "compute" if vmdb.is_db_vm_engine(db_engine) else db_engine.name
    for key, kind in (("appShape", "compute"), ("dbShape", db_kind)):
        value = values.get(key)
        if value:
            why = check_shape(kind, value)
            if why:
                problems.append(f"{key}: {why}")
    if problems:
        raise ClassConfigError(problems, source)
    return ClassConfig(
        source=source,
        compartment_id=comp,
        region=region,
        admin_cidr=cidr,
        admin_cidr_min_prefix=min_prefix,
        instructor_ssh_public_key=ikey,
        instructor_ssh_private_key_path=ipath,
        instructor_cidr=icidr,
        warnings=tuple(warnings),
        app_shape=values.get("appShape"),
        db_shape=values.get("dbShape"),
        db_engine=values.get("dbEngine"),
        tenancies=tenancies,
        config=extra,
        key_lines=_key_lines(text),
    )


def _key_lines(text: str) -> dict[str, int]:
    """Line of the first block-style ``key:`` per key name (comments and flow mappings have none)."""
    found: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*:", line)
        if m:
            found.setdefault(m[1], n)
    return found


def load_class_config(path: str | Path) -> ClassConfig:
    """Read and check a class.yaml file."""
    p = Path(path)
    try:
        text = read_input_file(p, "class config", "create it with at least 'compartmentId: ocid1.compartment.…'")
    except InputFileError as e:
        raise ClassConfigError([f"line {e.line}: {e.problem}" if e.line else e.problem], str(p)) from None
    return parse_class_config(text, str(p))


# --- one student's stack config ----------------------------------------------------------------------------
def env_file_for(env_dir: Path, s: Student) -> Path:
    """Where the student's ``.env`` is written on the instructor's machine: ``<out-dir>/env/<student_id>/.env``."""
    return env_dir / s.student_id / ".env"


def student_config(cls: ClassConfig, s: Student, env_dir: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The full Pulumi config of one student's stack (keys ``oci-dblab:…`` and ``oci:region``) and its secret keys.

    The VM trusts the student's key and the instructor's; SSH is open to the student's CIDR and the instructor's;
    the connection check runs with the instructor's private key and writes the student's ``.env`` under
    ``env_dir`` (``<out-dir>/env/<student_id>/.env``), never a shared one.
    """
    short: dict[str, str] = dict(cls.config)
    for key, value in (("appShape", cls.app_shape), ("dbShape", cls.db_shape), ("dbEngine", cls.db_engine)):
        if value:
            short[key] = value
    comp = s.compartment_id or cls.compartment_id
    cidr = s.admin_cidr or cls.admin_cidr
    if comp:
        short["compartmentId"] = comp
    if cidr:
        short["adminCidr"] = cidr
    keys = [s.ssh_public_key]
    if cls.instructor_ssh_public_key and _key_fingerprint(cls.instructor_ssh_public_key) != _key_fingerprint(
        s.ssh_public_key
    ):
        keys.append(cls.instructor_ssh_public_key)
    short["sshPublicKey"] = "\n".join(keys)
    short["studentId"] = s.student_id
    if cls.instructor_cidr:
        short["instructorCidr"] = cls.instructor_cidr
    if cls.connection_check:
        if cls.instructor_ssh_private_key_path:
            short["sshPrivateKeyPath"] = cls.instructor_ssh_private_key_path
        if env_dir is not None:
            short["envFilePath"] = str(env_file_for(env_dir, s))
    full = {f"{PROJECT}:{k}": v for k, v in short.items()}
    region = s.region or cls.region
    if region:
        full["oci:region"] = region
    secrets = sorted(f"{PROJECT}:{k}" for k in short if k in SECRET_KEYS)
    return full, secrets


def short_keys(config: Mapping[str, str]) -> dict[str, str]:
    """``oci-dblab:…`` keys of a full config, without the project prefix (what ``parse_config`` takes)."""
    prefix = f"{PROJECT}:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def _per_student_tenancy_problems(students: Sequence[Student], cls: ClassConfig) -> list[RosterProblem]:
    """``tenancies: per-student``: each row is its own Free Tier tenancy, so it needs its own compartment (that
    tenancy's OCID or a compartment in it) and an ``oci_profile`` to authenticate there."""
    problems: list[RosterProblem] = []
    seen: dict[str, Student] = {}
    for s in students:
        comp = s.compartment_id or cls.compartment_id
        if not s.oci_profile:
            problems.append(
                RosterProblem(
                    s.line,
                    "oci_profile",
                    "is empty; with tenancies: per-student each stack deploys into the student's own tenancy, "
                    f"reached through a profile of the OCI config file.{_ex('oci_profile')}",
                )
            )
        if comp and comp in seen:
            other = seen[comp]
            problems.append(
                RosterProblem(
                    s.line,
                    "compartment_id",
                    f"the same compartment as line {other.line} (student {other.student_id}); with tenancies: "
                    "per-student every student has their own tenancy, so each row needs its own compartment_id "
                    f"(the student's tenancy OCID).{_ex('compartment_id')}",
                )
            )
        elif comp:
            seen[comp] = s
    return problems


def check_students(students: Sequence[Student], cls: ClassConfig, source: str = "roster.csv") -> list[str]:
    """Validate every student's full config with ``components.config.parse_config`` and judge each SSH source with
    the admin-port rule of the policy pack; raise ``RosterError`` naming the student's line and the roster column
    (or class.yaml key) each problem comes from. Returns the warnings (class.yaml's first, then per student)."""
    problems: list[RosterProblem] = []
    warnings: list[str] = list(cls.warnings)
    if cls.tenancies == "per-student":
        problems += _per_student_tenancy_problems(students, cls)
    for s in students:
        if s.admin_cidr:
            judged = judge_admin_source(s.admin_cidr, cls.admin_cidr_min_prefix)
            if judged.error:
                problems.append(
                    RosterProblem(
                        s.line,
                        "admin_cidr",
                        f"{judged.error}; SSH must come from the student's public address.{_ex('admin_cidr')}",
                    )
                )
                continue
            if judged.warning:
                warnings.append(f"{source}:line {s.line}, admin_cidr: {judged.warning}")
        full, secrets = student_config(cls, s)
        try:
            parse_config(short_keys(full), s.stack, {k.split(":", 1)[1] for k in secrets})
        except ConfigError as e:
            for p in e.problems:
                line = cls.key_lines.get(p.key)
                column = KEY_SOURCE.get(p.key, f"{cls.source}:{line}:{p.key}" if line else f"{cls.source}:{p.key}")
                message = str(p)
                if p.key in ("compartmentId", "adminCidr") and "required but not set" in p.problem:
                    message = (
                        f"{KEY_SOURCE[p.key]} is empty and {cls.source} has no {p.key}; fill the column or set "
                        f"{p.key} in {cls.source}. Example: {COLUMN_EXAMPLES[KEY_SOURCE[p.key]]}"
                    )
                problems.append(RosterProblem(s.line, column, f"stack {s.stack}: {message}"))
    if problems:
        raise RosterError(problems, source)
    return warnings
