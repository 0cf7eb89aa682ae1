"""Parse and validate the stack's configuration once, into a frozen ``LabConfig``.

``parse_config`` is pure (a dict of raw strings in, a ``LabConfig`` or a ``ConfigError`` out) so the whole
bad-input table is tested without Pulumi. ``load_config`` reads the same values from the Pulumi runtime.

Every problem is collected and reported together, before any resource is declared. Each names the key, what is
wrong with the value and an example of a good one. Secret values are never echoed back.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

import engines
from components import classtag, netplan, portable
from components.labhours import LabHours, LabHoursError, parse_lab_hours
from engines import ENGINES, PLANNED
from engines.base import Engine, password_hint

PROJECT = "oci-dblab"


# --- the schema: every key once ------------------------------------------------------------------------------
# Pulumi.yaml's `config:` block is generated from this table (`pulumi_config_block`; tests/test_config.py proves the
# file equal to it). The Pulumi CLI merges these defaults into every stack before the program starts
# (pulumi/pulumi pkg/workspace/config.go `mergeConfig`) and refuses a key that has neither a stack value nor a
# default, so only the three values nobody can guess are required. An optional key's default is what the program
# sees when the stack does not set it; "" means "derive it" (the `derived` text says how), and
# dbBackupRetentionDays 0 means "the service's default".
#
# No key is declared `secret: true`: the CLI writes a project default into the stack as a plain value and then
# refuses it for a secret key ("... must be encrypted as it's secret", config.go `validateStackConfigValue`), so a
# secret key can have no default and would become required. dbPassword is optional (a password is generated), so
# our own validation refuses a plain-text dbPassword instead (`secret_only`).
@dataclass(frozen=True)
class Setting:
    """One config key: Pulumi type and default, a good example, what it means, and its validator."""

    key: str
    type: str  # Pulumi project config type: string | integer | boolean
    default: str | int | bool | None  # None: required (no default in Pulumi.yaml)
    example: str  # a good value, shown in every error about this key
    description: str
    validator: str  # the function of this module (or the step of parse_config) that checks the value
    derived: str = ""  # what "" (or 0) means for this key
    secret_only: bool = False  # a value given must be a Pulumi secret (`pulumi config set --secret`)

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def default_text(self) -> str | None:
        """The default as the program sees it: the CLI formats primitive defaults with Go's %v."""
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "compartmentId",
        "string",
        None,
        "ocid1.compartment.oc1..aaaaaaaa4t3x7c2qm5k6n7p8r9s2t3u4v5w6x7y8z2a3b4c5d6e7f8g9h2ia",
        "OCID of the compartment (or the tenancy root) where everything is created.",
        "_ocid",
    ),
    Setting(
        "sshPublicKey",
        "string",
        None,
        '"$(cat ~/.ssh/id_ed25519.pub)"  (the .pub file, one line starting with ssh-ed25519)',
        "OpenSSH public key installed on the app VM (contents of ~/.ssh/id_ed25519.pub).",
        "check_ssh_public_key",
    ),
    Setting(
        "adminCidr",
        "string",
        None,
        "203.0.113.7/32  (your own public IP, see https://ifconfig.me)",
        "The only source allowed to SSH to the app VM, e.g. your public IP as a /32.",
        "_cidr",
    ),
    Setting(
        "instructorCidr",
        "string",
        "",
        "198.51.100.40/32  (the instructor's public IP; set by labctl class)",
        "A second SSH source: the instructor's network, for a class's connection checks; \"\" = none.",
        "_cidr",
        derived="none",
    ),
    Setting(
        "vcnCidr",
        "string",
        "10.0.0.0/16",
        "10.0.0.0/16",
        "CIDR of the VCN; an RFC 1918 range between /16 and /29.",
        "_cidr + netplan",
    ),
    Setting(
        "publicSubnetCidr",
        "string",
        "",
        "10.0.0.0/24",
        'CIDR of the public (app) subnet; "" = the first /24 of vcnCidr.',
        "_cidr + netplan",
        derived="the first /24 of vcnCidr",
    ),
    Setting(
        "privateSubnetCidr",
        "string",
        "",
        "10.0.1.0/24",
        'CIDR of the private (DB) subnet; "" = the second /24 of vcnCidr.',
        "_cidr + netplan",
        derived="the second /24 of vcnCidr",
    ),
    Setting(
        "availabilityDomain",
        "string",
        "",
        "Uocm:AP-SINGAPORE-1-AD-1  (oci iam availability-domain list)",
        'Availability domain for the VM and the DB system; "" = picked automatically.',
        "AD_RE",
        derived="picked automatically",
    ),
    Setting(
        "appShape",
        "string",
        "VM.Standard.E2.1.Micro",
        "VM.Standard.E2.1.Micro  (or VM.Standard.A1.Flex with appOcpus/appMemoryGbs)",
        "Compute shape of the app VM. Flex shapes take appOcpus and appMemoryGbs.",
        "APP_SHAPE_RE",
    ),
    Setting(
        "appOcpus",
        "string",
        "",
        "1",
        'OCPUs of a Flex app VM; "" = 1.',
        "_number",
        derived="1 (Flex shapes only)",
    ),
    Setting(
        "appMemoryGbs",
        "string",
        "",
        "6",
        'Memory in GB of a Flex app VM; "" = 6.',
        "_number",
        derived="6 (Flex shapes only)",
    ),
    Setting(
        "appImageId",
        "string",
        "",
        "ocid1.image.oc1.phx.aaaaaaaa5u6v7w8x9y2z3a4b5c6d7e8f9g2h3i4j5k6m7n8p9q2r3s4t",
        'Image OCID for the app VM; "" = the newest Oracle Linux 9 image for the shape.',
        "_ocid",
        derived="the newest Oracle Linux 9 image for the shape",
    ),
    Setting(
        "dbEngine",
        "string",
        engines.DEFAULT,
        engines.DEFAULT,
        # from the registry, so a new engine is listed once Pulumi.yaml is regenerated (python -m components.config)
        "Database engine: " + " | ".join(f"{e.name} = {e.description}" for e in engines.ENGINES.values()) + ".",
        "ENGINES",
    ),
    Setting(
        "dbShape",
        "string",
        "",
        engines.get(engines.DEFAULT).example_shape,
        'Shape of the database; "" = the engine\'s default ('
        + "; ".join(f"{e.name}: {e.default_shape}" for e in engines.ENGINES.values())
        + ").",
        "Engine.shape_ok",
        derived="the engine's default shape",
    ),
    Setting(
        "dbStorageGbs",
        "integer",
        50,
        "50",
        "Data storage in GB (MySQL.Free: exactly 50; *-vm engines: the DB VM's boot volume, 50 or more).",
        "_number",
    ),
    Setting(
        "dbAdminUser",
        "string",
        "admin",
        "admin",
        "Administrator user name of the DB system.",
        "IDENT_RE",
    ),
    Setting(
        "dbPassword",
        "string",
        "",
        "--secret 'Lab-2026-db!'  (8-32 chars with a digit, a lower, an upper and a special)",
        'Administrator password, set with --secret; "" = a generated random password.',
        "check_db_password",
        derived="a generated random password",
        secret_only=True,
    ),
    Setting("dbName", "string", "lab", "lab", "Database the lab creates for the app.", "IDENT_RE"),
    Setting(
        "dbAppUser",
        "string",
        "lab_app",
        "lab_app",
        "Least-privilege user the app on the VM connects as (written to .env).",
        "IDENT_RE",
    ),
    Setting(
        "dbBackupRetentionDays",
        "integer",
        0,
        "7  (paid shapes only; 0 = the service's default)",
        "Days automatic backups are kept (1-35, paid shapes); 0 = the service's default "
        "(MySQL.Free: one day, not configurable).",
        "_number",
        derived="the service's default",
    ),
    Setting(
        "dbDeletionProtection",
        "boolean",
        False,
        "false",
        "Refuse to delete the DB system (turn off before pulumi destroy); not sent for MySQL.Free (a warning says so).",
        "_bool",
    ),
    Setting(
        "studentId",
        "string",
        "",
        "a23-042",
        'Student identifier, used in display names and tags; "" = none (names use the stack).',
        "STUDENT_RE",
        derived="none",
    ),
    Setting(
        "studentTagNamespace",
        "string",
        "",
        "dblab-2026s1  (set by labctl class once `labctl class setup` made the class layer)",
        "Tag namespace of the class layer: every OCI resource also gets the cost-tracking defined tag "
        '<namespace>.student = studentId (budgets read it); "" = freeform tags only.',
        "components.classtag.check_namespace",
        derived="none",
    ),
    Setting("envFilePath", "string", ".env", ".env", "Where the local copy of .env is written.", "envFilePath"),
    Setting(
        "sshPrivateKeyPath",
        "string",
        "",
        "~/.ssh/id_ed25519",
        'Private key for the connection check; "" = the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa.',
        "sshPrivateKeyPath",
        derived="the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa",
    ),
    Setting(
        "checkTimeoutSeconds",
        "integer",
        600,
        "600",
        "How long the connection check retries while the VM and the DB come up (10-3600).",
        "_number",
    ),
    Setting(
        "connectionCheck",
        "boolean",
        True,
        "true",
        "Run the connection check through the VM at pulumi up.",
        "_bool",
    ),
    Setting(
        "alertEmail",
        "string",
        "",
        "you@example.edu",
        'E-mail address the lab\'s alarms are sent to (OCI mails a confirmation link first); "" = none '
        "(alarms still fire to the stack's Notifications topic).",
        "EMAIL_RE",
        derived="none",
    ),
    Setting(
        "dbState",
        "string",
        "ACTIVE",
        "INACTIVE  (stopped outside lab hours by `labctl class stop`)",
        "Whether the DB system runs: ACTIVE, or INACTIVE (stopped: its shape is not billed, its storage is); "
        "`labctl class stop|start` sets it.",
        "dbState",
    ),
    Setting(
        "labHours",
        "string",
        "",
        "Mon-Fri 07:00-17:00 Asia/Jakarta",
        "When the lab is used: the app VM is stopped outside these hours and started at their beginning (Resource "
        'Scheduler); "" = always on.',
        "components.labhours.parse_lab_hours",
        derived="always on",
    ),
)
SCHEMA: dict[str, Setting] = {s.key: s for s in SETTINGS}
# The DB system's target states: the provider's `state` of oci.mysql.MysqlDbSystem (pulumi_oci 5.5.0
# mysql/mysql_db_system.py:129 "(Updatable) The target state for the DB System. Could be set to `ACTIVE` or
# `INACTIVE`"). labctl class stop|start sets the key and runs `pulumi up` (labctl/dbpower.py).
DB_STATES = ("ACTIVE", "INACTIVE")
# The default of each key as the program sees it (None: required); "" = derive it.
DEFAULTS: dict[str, str | None] = {s.key: s.default_text for s in SETTINGS}
REQUIRED = tuple(s.key for s in SETTINGS if s.required)
EXAMPLES: dict[str, str] = {s.key: s.example for s in SETTINGS}
DESCRIPTIONS: dict[str, str] = {s.key: s.description for s in SETTINGS}
SECRET_KEYS = frozenset(s.key for s in SETTINGS if s.secret_only)
# The example values Pulumi.dev.yaml ships with. Valid in form, so an offline plan of the example stack works,
# but refused by a real run: nobody owns this compartment or this key, and 203.0.113.0/24 is a documentation range.
PLACEHOLDERS: dict[str, str] = {
    "compartmentId": "ocid1.compartment.oc1..aaaaaaaaexample0replace0me0with0your0compartment0ocid",
    "sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILnXV3F5F8pwBGCFqJpHzQXdNTAUAwhzX9ZnEb9FtpF+ "
    "REPLACE-ME-example-key-not-yours",
    "adminCidr": "203.0.113.7/32",
}
OFFLINE_ENV = "OCI_DBLAB_OFFLINE"  # set by labctl's offline runs, where placeholders are only warned about


def pulumi_config_block() -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml, generated from the schema (key -> type, description[, default])."""
    block: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        spec: dict[str, Any] = {"type": s.type, "description": s.description}
        if not s.required:
            spec["default"] = s.default
        block[s.key] = spec
    return block


OCID_RE = re.compile(
    r"^ocid1\.(?P<type>[a-z0-9]+)\.(?P<realm>oc[0-9]+)\.(?P<region>[a-z0-9-]*)(\.[a-z0-9-]*)?\.(?P<uid>[a-z0-9]{16,})\Z"
)
APP_SHAPE_RE = re.compile(
    r"^VM\.(Standard\.E2\.1\.Micro|Standard\.(A1|A2|A4|E3|E4|E5|E6)\.Flex|Standard3\.Flex|Optimized3\.Flex"
    r"|Standard\.E2\.(1|2|4|8)|Standard2\.(1|2|4|8|16|24))\Z"
)
# Availability domain names: a tenancy-specific prefix, the region key and the AD number, e.g.
# Uocm:AP-SINGAPORE-1-AD-1 or Uocm:PHX-AD-1 (what `oci iam availability-domain list` prints).
AD_RE = re.compile(r"^[A-Za-z0-9]{1,8}:[A-Z0-9]+(-[A-Z0-9]+)*-AD-[1-9]\Z")
IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}\Z")  # \Z, not $: "lab\n" must not pass
# An e-mail address as the Notifications EMAIL endpoint takes it: one address, local@domain with a dotted domain,
# at most 254 characters (RFC 5321 4.5.3.1.3 path limit); no display names, lists or spaces.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+\Z")
STUDENT_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


class ConfigError(ValueError):
    """All configuration problems of a stack, reported at once."""

    def __init__(self, problems: list[Problem], stack: str = "") -> None:
        self.problems = problems
        where = f" of stack '{stack}'" if stack else ""
        lines = [f"{len(problems)} configuration problem(s){where}; nothing was created:"]
        lines += [f"  - {p}" for p in problems]
        lines.append("Fix them with `pulumi config set <key> <value>` (add --secret for passwords) and run again.")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Problem:
    key: str
    problem: str
    good: str = ""  # a good value for this stack (e.g. the chosen engine's shape) instead of the key's example

    @property
    def example(self) -> str:
        return self.good or EXAMPLES.get(self.key, "")

    def __str__(self) -> str:
        ex = f" Example: {self.example}" if self.example else ""
        return f"{PROJECT}:{self.key}: {self.problem}.{ex}"


@dataclass(frozen=True)
class LabConfig:
    """Every setting of one lab stack, validated. Build it with ``parse_config`` or ``load_config``."""

    stack: str
    compartment_id: str
    ssh_public_key: str
    admin_cidr: str
    vcn_cidr: str
    public_subnet_cidr: str
    private_subnet_cidr: str
    app_shape: str
    app_ocpus: float | None
    app_memory_gbs: float | None
    app_image_id: str | None
    db_engine: str
    db_shape: str
    db_storage_gbs: int
    db_admin_user: str
    db_name: str
    db_app_user: str
    db_backup_retention_days: int | None  # None: the service's default (the only choice for MySQL.Free)
    db_deletion_protection: bool
    student_id: str | None
    env_file_path: str
    ssh_private_key_path: str | None
    check_timeout_seconds: int
    connection_check: bool
    instructor_cidr: str | None = None
    availability_domain: str | None = None  # None: picked automatically
    alert_email: str | None = None  # None: alarms go to the topic only
    student_tag_namespace: str | None = None  # None: no class layer, freeform tags only
    lab_hours: LabHours | None = None  # None: the VM is always on
    db_state: str = "ACTIVE"  # ACTIVE | INACTIVE: the DB system's target state (labctl class stop|start)
    db_password: str | None = field(default=None, repr=False)  # never in repr, logs or errors
    warnings: tuple[str, ...] = ()

    @property
    def engine(self) -> Engine:
        return engines.get(self.db_engine)

    @property
    def is_flex(self) -> bool:
        return self.app_shape.endswith(".Flex")

    @property
    def name_prefix(self) -> str:
        """Prefix of every display name: dblab-<student> or dblab-<stack>."""
        return f"dblab-{self.student_id or self.stack}"

    @property
    def tags(self) -> dict[str, str]:
        tags = {"project": PROJECT, "stack": self.stack}
        if self.student_id:
            tags["student"] = self.student_id
        return tags


# --- validators: each returns the parsed value or appends a Problem --------------------------------------
# ``secret``: the key holds a Pulumi secret, so no message may show the value (or anything derived from it).
def _shown(value: str, secret: bool) -> str:
    return "the secret value" if secret else f"'{value}'"


def _ocid(problems: list[Problem], key: str, value: str, types: tuple[str, ...], secret: bool = False) -> str:
    v = value.strip()
    m = OCID_RE.match(v)
    if not m:
        what = " or ".join(f"ocid1.{t}.…" for t in types)
        problems.append(
            Problem(key, f"{_shown(v, secret)} is not an OCID; expected {what} (copy it from the OCI console)")
        )
    elif m["type"] not in types:
        problems.append(
            Problem(key, f"{_shown(v, secret)} is the OCID of a {m['type']}, not of a {' or '.join(types)}")
        )
    return v


def _cidr(problems: list[Problem], key: str, value: str, secret: bool = False) -> ipaddress.IPv4Network | None:
    v = value.strip()
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as e:
        if "host bits set" in str(e) and secret:
            problems.append(
                Problem(key, "the secret value has host bits set; write its network address, or the single host as /32")
            )
        elif "host bits set" in str(e):
            loose = ipaddress.ip_network(v, strict=False)
            problems.append(
                Problem(
                    key,
                    f"'{v}' has host bits set; write the network address {loose} or the single host "
                    f"{v.split('/')[0]}/32",
                )
            )
        else:
            problems.append(Problem(key, f"{_shown(v, secret)} is not an IPv4 CIDR block like 10.0.0.0/16"))
        return None
    if not isinstance(net, ipaddress.IPv4Network):
        problems.append(Problem(key, f"{_shown(v, secret)} is IPv6; the lab network is IPv4"))
        return None
    return net


# An `integer` config value as the CLI accepts it (pulumi/pulumi sdk/go/common/workspace/project.go
# `ValidateConfigValue`: strconv.Atoi, so an optional sign and digits, no spaces); a decimal for string-typed numbers.
_INTEGER_RE = re.compile(r"^[+-]?[0-9]+\Z")
_DECIMAL_RE = re.compile(r"^[0-9]+(\.[0-9]+)?\Z")


def _number(
    problems: list[Problem], key: str, value: str, lo: float, hi: float, kind: type = int, secret: bool = False
) -> Any:
    """``value`` parsed as ``kind`` (int or float) within lo..hi, or None with a Problem."""
    if not (_INTEGER_RE if kind is int else _DECIMAL_RE).match(value):
        what = "a whole number" if kind is int else "a number like 1 or 1.5"
        problems.append(Problem(key, f"{_shown(value, secret)} is not {what}"))
        return None
    n = kind(value)
    if not lo <= n <= hi:
        shown = "the secret value" if secret else f"{n:g}"
        problems.append(Problem(key, f"{shown} is out of range; allowed {lo:g}..{hi:g}"))
        return None
    return n


def _bool(problems: list[Problem], key: str, value: str, secret: bool = False) -> bool:
    # A `boolean` config value is the literal true or false (project.go `ValidateConfigValue`); the CLI refuses
    # anything else before the program starts, so we accept exactly what it accepts.
    if value == "true":
        return True
    if value == "false":
        return False
    problems.append(Problem(key, f"{_shown(value, secret)} is not a boolean; use true or false"))
    return False


def check_ssh_public_key(text: str) -> str | None:
    """Why ``text`` is not a usable OpenSSH public key (one or more lines), or None when it is."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "is empty"
    for ln in lines:
        if "PRIVATE KEY" in ln:
            return "is a PRIVATE key; give the public key (the .pub file) and keep the private key to yourself"
        kind = ln.split()[0]
        if kind not in SSH_KEY_TYPES:
            return f"starts with '{kind[:20]}', not with one of {', '.join(SSH_KEY_TYPES)}"
        try:
            key = load_ssh_public_key(" ".join(ln.split()[:2]).encode())
        except (ValueError, TypeError):
            return "is not a valid OpenSSH public key (damaged or truncated base64)"
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            return f"is an RSA key of {key.key_size} bits; use at least 2048 bits, or better ed25519"
    return None


def check_db_password(password: str, admin_user: str, engine: Engine | None = None) -> str | None:
    """Why ``password`` breaks the engine's admin password rule (default engine: ``engines.DEFAULT``), or None.
    Never includes the password itself."""
    return (engine or engines.get(engines.DEFAULT)).password_problem(password, admin_user)


def parse_config(
    raw: Mapping[str, str | None],
    stack: str,
    secret_keys: frozenset[str] | set[str] = frozenset(),
    allow_placeholders: bool = False,
) -> LabConfig:
    """Validate ``raw`` (short key -> string value, as Pulumi stores config) into a ``LabConfig``.

    ``secret_keys`` are the short keys Pulumi holds encrypted. ``allow_placeholders`` turns the example values
    of Pulumi.dev.yaml from errors into warnings (offline plans). Raises ``ConfigError`` with every problem.
    """
    problems: list[Problem] = []
    warnings: list[str] = []
    secret = frozenset(secret_keys)

    for key, placeholder in PLACEHOLDERS.items():
        if (raw.get(key) or "").strip() == placeholder:
            if allow_placeholders:
                warnings.append(f"{key} still holds the example value of Pulumi.dev.yaml (fine for an offline plan)")
            else:
                problems.append(Problem(key, "still holds the example placeholder from Pulumi.dev.yaml; set your own"))

    for key in raw:
        if key not in DEFAULTS:
            near = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; known keys: {', '.join(DEFAULTS)}"
            problems.append(Problem(key, f"is not a setting of this project{hint}"))

    def get(key: str) -> str | None:
        """The value the program works with: the stack's, else the project default; None when "" (derive it)."""
        v = raw.get(key)
        if v is None or (isinstance(v, str) and v.strip() == ""):
            v = DEFAULTS[key]
        return None if v is None or v == "" else str(v)

    for key, value in raw.items():
        setting = SCHEMA.get(key)
        if setting is not None and setting.type != "string" and value is not None and str(value).strip() == "":
            # the CLI keeps "" from the stack and then refuses it as not an integer/boolean (config.go)
            problems.append(
                Problem(
                    key, f"is empty, which is not a {setting.type}; remove it for the default {setting.default_text}"
                )
            )

    for key in REQUIRED:
        if get(key) is None:
            problems.append(Problem(key, "is required but not set"))

    compartment = get("compartmentId")
    if compartment is not None:
        compartment = _ocid(
            problems, "compartmentId", compartment, ("compartment", "tenancy"), "compartmentId" in secret
        )

    ssh_key = get("sshPublicKey")
    if ssh_key is not None:
        why = check_ssh_public_key(ssh_key)
        if why:
            # the text of a (possibly private) key is never echoed
            if "sshPublicKey" in secret and why.startswith("starts with"):
                why = f"does not start with one of {', '.join(SSH_KEY_TYPES)}"
            problems.append(Problem("sshPublicKey", f"the {'secret ' if 'sshPublicKey' in secret else ''}value {why}"))
        ssh_key = "\n".join(ln.strip() for ln in ssh_key.strip().splitlines() if ln.strip())

    admin = get("adminCidr")
    admin_net = _cidr(problems, "adminCidr", admin, "adminCidr" in secret) if admin is not None else None
    if admin_net is not None and admin_net.prefixlen == 0:
        warnings.append(
            "adminCidr is 0.0.0.0/0: SSH to the app VM is open to the whole internet. "
            "Use your own IP as a /32 unless you really need this."
        )
    if admin_net is not None and admin_net.prefixlen and netplan.is_private_range(admin_net):
        warnings.append(
            f"adminCidr {admin_net} is a private (RFC 1918) range; SSH from the internet arrives from your "
            "public IP (https://ifconfig.me), not from a private one."
        )

    instructor = get("instructorCidr")
    instructor_net = (
        _cidr(problems, "instructorCidr", instructor, "instructorCidr" in secret) if instructor is not None else None
    )

    vcn = _cidr(problems, "vcnCidr", get("vcnCidr") or "", "vcnCidr" in secret)
    pub = priv = None
    if vcn is not None:
        if not netplan.is_private_range(vcn):
            problems.append(
                Problem(
                    "vcnCidr",
                    f"{vcn} is not inside the private ranges 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918)",
                )
            )
        if not netplan.VCN_MIN_PREFIX <= vcn.prefixlen <= netplan.VCN_MAX_PREFIX:
            size = "too large" if vcn.prefixlen < netplan.VCN_MIN_PREFIX else "too small to hold two subnets"
            problems.append(
                Problem(
                    "vcnCidr",
                    f"prefix /{vcn.prefixlen} is {size}; "
                    f"OCI allows /{netplan.VCN_MIN_PREFIX} to /{netplan.VCN_MAX_PREFIX} here",
                )
            )
            vcn_ok = False
        else:
            vcn_ok = True
        plan = netplan.default_subnets(vcn) if vcn_ok else None
        subnets: dict[str, ipaddress.IPv4Network | None] = {}
        for key, default in (
            ("publicSubnetCidr", plan and plan.public),
            ("privateSubnetCidr", plan and plan.private),
        ):
            given = get(key)
            net = _cidr(problems, key, given, key in secret) if given is not None else default
            if net is not None and given is not None:
                if not net.subnet_of(vcn):
                    problems.append(Problem(key, f"{net} is not inside vcnCidr {vcn}"))
                    net = None
                elif net.prefixlen > netplan.SUBNET_MAX_PREFIX:
                    problems.append(
                        Problem(
                            key,
                            f"prefix /{net.prefixlen} is too small; OCI subnets are at most "
                            f"/{netplan.SUBNET_MAX_PREFIX}",
                        )
                    )
                    net = None
            subnets[key] = net
        pub, priv = subnets["publicSubnetCidr"], subnets["privateSubnetCidr"]
        if pub is not None and priv is not None and pub.overlaps(priv):
            problems.append(
                Problem(
                    "privateSubnetCidr",
                    f"{priv} overlaps publicSubnetCidr {pub}; the two subnets must not share addresses",
                )
            )

    app_shape = get("appShape") or ""
    if not APP_SHAPE_RE.match(app_shape):
        problems.append(Problem("appShape", f"'{app_shape}' is not a VM shape this lab supports"))
    flex = app_shape.endswith(".Flex")
    ocpus = mem = None
    for key in ("appOcpus", "appMemoryGbs"):
        if get(key) is not None and not flex:
            problems.append(
                Problem(
                    key,
                    f"only applies to Flex shapes, and appShape is {app_shape}; remove it or choose a .Flex shape",
                )
            )
    if flex:
        ocpus = _number(problems, "appOcpus", get("appOcpus") or "1", 1, 64, float)
        mem = _number(problems, "appMemoryGbs", get("appMemoryGbs") or "6", 1, 1024, float)
        if ocpus is not None and mem is not None and not ocpus <= mem <= 64 * ocpus:
            problems.append(
                Problem(
                    "appMemoryGbs",
                    f"{mem:g} GB does not fit {ocpus:g} OCPU(s); Flex shapes take 1-64 GB per OCPU",
                )
            )
    image = get("appImageId")
    if image is not None:
        image = _ocid(problems, "appImageId", image, ("image",))

    engine_name = (get("dbEngine") or "").strip().lower()
    engine = ENGINES.get(engine_name)
    if engine is None:
        if engine_name in PLANNED:
            problems.append(
                Problem(
                    "dbEngine",
                    f"'{engine_name}' ({PLANNED[engine_name]}) is planned "
                    f"but not built yet; supported: {', '.join(ENGINES)}",
                )
            )
        else:
            problems.append(
                Problem("dbEngine", f"'{engine_name}' is not a known engine; supported: {', '.join(ENGINES)}")
            )
    db_shape = get("dbShape") or (engine.default_shape if engine else "")
    storage = _number(problems, "dbStorageGbs", get("dbStorageGbs") or "50", 1, 131072)
    if engine is not None:
        if not engine.shape_ok(db_shape):
            problems.append(
                Problem(
                    "dbShape",
                    f"'{db_shape}' is not a {engine.name} shape (e.g. {engine.example_shape})",
                    engine.example_shape,
                )
            )
        elif storage is not None:
            fixed = engine.fixed_storage_gbs.get(db_shape)
            if fixed is not None and storage != fixed:
                problems.append(
                    Problem(
                        "dbStorageGbs",
                        f"{storage} GB is not possible with {db_shape}, which has exactly {fixed} GB",
                    )
                )
            elif not engine.min_storage_gbs <= storage <= engine.max_storage_gbs:
                problems.append(
                    Problem(
                        "dbStorageGbs",
                        f"{storage} GB is out of range; allowed {engine.min_storage_gbs}..{engine.max_storage_gbs}",
                    )
                )

    admin_user = get("dbAdminUser") or ""
    if not IDENT_RE.match(admin_user):
        problems.append(
            Problem(
                "dbAdminUser",
                f"'{admin_user}' must start with a letter and hold 1-32 letters, digits or underscores",
            )
        )
    elif engine is not None and admin_user.lower() in engine.reserved_users:
        problems.append(
            Problem(
                "dbAdminUser",
                f"'{admin_user}' is reserved by {engine.name} ({', '.join(sorted(engine.reserved_users))})",
            )
        )

    password = raw.get("dbPassword")
    if password is not None and password != "":
        hint = password_hint(engine)  # the chosen engine's own rule (the key's example states MySQL's)
        good = f"--secret 'Lab-2026-db!'  ({hint})" if hint else ""
        if "dbPassword" not in secret_keys:
            problems.append(
                Problem(
                    "dbPassword",
                    "is stored in plain text in the stack file; set it with `pulumi config set --secret dbPassword`",
                    good,
                )
            )
        why = check_db_password(password, admin_user, engine)
        if why:
            problems.append(Problem("dbPassword", why, good))
    else:
        password = None

    db_name = get("dbName") or ""
    if not IDENT_RE.match(db_name):
        problems.append(
            Problem("dbName", f"'{db_name}' must start with a letter and hold 1-32 letters, digits or underscores")
        )
    elif engine is not None and db_name.lower() in engine.reserved_db_names:
        problems.append(Problem("dbName", f"'{db_name}' is a system schema of {engine.name}"))

    app_user = get("dbAppUser") or ""
    if not IDENT_RE.match(app_user):
        problems.append(
            Problem(
                "dbAppUser",
                f"'{app_user}' must start with a letter and hold 1-32 letters, digits or underscores",
            )
        )
    elif app_user.lower() == admin_user.lower() or (engine and app_user.lower() in engine.reserved_users):
        problems.append(
            Problem(
                "dbAppUser",
                f"'{app_user}' must be a separate, unprivileged user (not the admin or a reserved name)",
            )
        )

    # Backups and deletion protection. The CLI writes the project defaults (0 and false) into every stack, so the
    # defaults must mean "leave it to the service" and never clash with the default shape MySQL.Free.
    # OCI refuses any backup policy when it creates an Always Free DB system ("Cannot specify backup policy with
    # 'CreateDbSystem' operation for an Always Free DB system", quoted in public Terraform configs); Free systems
    # get automatic backups kept one day. mlinxfeld/terraform-oci-fk-heatwave mds_db_system.tf (whose MySQL.Free
    # stack applies) sends no backup_policy and no deletion_policy when shape_name is MySQL.Free.
    retention_text = get("dbBackupRetentionDays") or "0"
    retention: int | None = _number(problems, "dbBackupRetentionDays", retention_text, 0, 35)
    if retention == 0:
        retention = None  # the service's default
    protection = _bool(problems, "dbDeletionProtection", get("dbDeletionProtection") or "false")
    free_shape = engine is not None and engine.always_free_shape is not None and db_shape == engine.always_free_shape
    if free_shape and engine is not None and engine.free_shape_refuses_backup_policy and retention is not None:
        problems.append(
            Problem(
                "dbBackupRetentionDays",
                f"{retention} days cannot be set for {db_shape}: OCI refuses a backup policy for an Always Free DB "
                "system, whose automatic backups are kept one day. Remove it (`pulumi config rm "
                "dbBackupRetentionDays`) or choose a paid dbShape",
            )
        )

    ad = get("availabilityDomain")
    if ad is not None:
        ad = ad.strip()
        if not AD_RE.match(ad):
            problems.append(
                Problem(
                    "availabilityDomain",
                    f"{_shown(ad, 'availabilityDomain' in secret)} is not an availability domain name "
                    "<tenancy prefix>:<REGION>-AD-<n>",
                )
            )

    student = get("studentId")
    if student is not None:
        student = student.strip()
        if not STUDENT_RE.match(student):
            problems.append(
                Problem(
                    "studentId",
                    f"'{student}' must be 1-32 lowercase letters, digits or hyphens, "
                    "starting and ending with a letter or digit",
                )
            )

    tag_namespace = get("studentTagNamespace")
    if tag_namespace is not None:
        tag_namespace = tag_namespace.strip()
        why = classtag.check_namespace(tag_namespace)
        if why:
            problems.append(Problem("studentTagNamespace", why))
        elif student is None:
            problems.append(
                Problem(
                    "studentTagNamespace",
                    "is set but studentId is not: the defined tag's value is the student's id "
                    "(`pulumi config set studentId a23-042`)",
                )
            )

    env_path = get("envFilePath") or ".env"
    if portable.looks_like_directory(env_path) or "\0" in env_path:  # C:\lab\ too, on Windows
        problems.append(Problem("envFilePath", f"'{env_path}' must be a file path, not a directory"))
    key_path = get("sshPrivateKeyPath")
    if key_path is not None and key_path.strip().endswith(".pub"):
        problems.append(Problem("sshPrivateKeyPath", f"'{key_path}' is a public key; give the private key beside it"))
    timeout = _number(problems, "checkTimeoutSeconds", get("checkTimeoutSeconds") or "600", 10, 3600)
    check = _bool(problems, "connectionCheck", get("connectionCheck") or "true")
    hours_text = get("labHours")
    hours = None
    if hours_text is not None:
        try:
            hours = parse_lab_hours(hours_text)
        except LabHoursError as e:
            # the parser's message quotes parts of the value: never for a secret one
            why = "the secret value is not '<days> <HH:MM>-<HH:MM> <time zone>'" if "labHours" in secret else str(e)
            problems.append(Problem("labHours", why))
    db_state = (get("dbState") or "ACTIVE").strip().upper()
    if db_state not in DB_STATES:
        problems.append(
            Problem(
                "dbState",
                f"{_shown(get('dbState') or '', 'dbState' in secret)} is not one of {', '.join(DB_STATES)} "
                "(INACTIVE stops the DB system, ACTIVE starts it)",
            )
        )
    elif db_state == "INACTIVE" and engine is not None and not engine.stop_via:
        problems.append(
            Problem(
                "dbState",
                f"engine {engine.name} cannot be stopped through dbState yet (only "
                f"{', '.join(e.name for e in ENGINES.values() if e.stop_via) or 'none'}); leave dbState ACTIVE",
            )
        )
    email = get("alertEmail")
    if email is not None:
        email = email.strip()
        if len(email) > 254 or not EMAIL_RE.match(email):
            problems.append(
                Problem(
                    "alertEmail",
                    f"{_shown(email, 'alertEmail' in secret)} is not one e-mail address like name@domain.tld",
                )
            )

    if problems:
        raise ConfigError(_without_secrets(problems, raw, secret), stack)
    warnings = [_redact(w, raw, secret) for w in warnings]

    assert pub is not None and priv is not None and vcn is not None and admin_net is not None
    assert engine is not None and storage is not None and timeout is not None
    return LabConfig(
        stack=stack,
        compartment_id=compartment or "",
        ssh_public_key=ssh_key or "",
        admin_cidr=str(admin_net),
        instructor_cidr=str(instructor_net) if instructor_net is not None else None,
        vcn_cidr=str(vcn),
        public_subnet_cidr=str(pub),
        private_subnet_cidr=str(priv),
        app_shape=app_shape,
        app_ocpus=ocpus,
        app_memory_gbs=mem,
        app_image_id=image,
        db_engine=engine.name,
        db_shape=db_shape,
        db_storage_gbs=storage,
        db_admin_user=admin_user,
        db_name=db_name,
        db_app_user=app_user,
        db_backup_retention_days=retention,
        db_deletion_protection=protection,
        student_id=student,
        env_file_path=env_path,
        ssh_private_key_path=key_path.strip() if key_path else None,
        check_timeout_seconds=timeout,
        connection_check=check,
        availability_domain=ad,
        alert_email=email,
        student_tag_namespace=tag_namespace,
        lab_hours=hours,
        db_state=db_state,
        db_password=password,
        warnings=tuple(warnings),
    )


def _redact(text: str, raw: Mapping[str, str | None], secret: frozenset[str]) -> str:
    """``text`` with every secret value of ``raw`` (and its address part) replaced: the last guard."""
    for key in secret:
        value = (raw.get(key) or "").strip()
        for part in {value, value.split("/")[0]} if value else ():
            if len(part) >= 3:
                text = text.replace(part, "[secret]")
    return text


def _without_secrets(problems: list[Problem], raw: Mapping[str, str | None], secret: frozenset[str]) -> list[Problem]:
    return [Problem(p.key, _redact(p.problem, raw, secret), p.good) for p in problems]


def load_config() -> LabConfig:
    """Read this stack's config from the Pulumi runtime, validate it, and log its warnings.

    Raises ``pulumi.RunError`` (a message without a Python traceback) when anything is wrong.
    """
    import pulumi
    from pulumi.runtime import config as runtime_config

    prefix = f"{PROJECT}:"
    keys = set(runtime_config.get_config_env()) | set(runtime_config.CONFIG.get())
    raw: dict[str, str | None] = {}
    for full in sorted(keys):
        if full.startswith(prefix):
            raw[full[len(prefix) :]] = runtime_config.get_config(full)
    env_secret = set(runtime_config.get_config_secret_keys_env())
    secret = {k for k in raw if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secret}
    try:
        cfg = parse_config(
            raw, pulumi.get_stack(), frozenset(secret), allow_placeholders=os.environ.get(OFFLINE_ENV) == "1"
        )
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    for w in cfg.warnings:
        pulumi.log.warn(w)
    return cfg


def offline_secret_value(full_key: str) -> str:
    """What an offline run (which never decrypts) gives the program for an encrypted value of ``full_key``:
    a value valid in form, so the rest of the stack plans as the real one would."""
    from labctl.stackfile import SECRET_PLACEHOLDER

    key = full_key.removeprefix(f"{PROJECT}:")
    if key in OFFLINE_SECRET_VALUES:
        return OFFLINE_SECRET_VALUES[key]
    if key not in SCHEMA or SCHEMA[key].type != "string":
        return SECRET_PLACEHOLDER
    return SCHEMA[key].example.split("  ")[0]


# Encrypted values an offline run stands in for: valid in form and unlike the Pulumi.dev.yaml placeholders (which
# would be reported as "still the example value"). Keys not listed take their example.
OFFLINE_SECRET_VALUES: dict[str, str] = {
    "adminCidr": "198.51.100.1/32",
    "sshPublicKey": PLACEHOLDERS["sshPublicKey"].replace("REPLACE-ME-example-key-not-yours", "offline-secret"),
    "dbPassword": "Offline#Secret0-placeholder",
    "instructorCidr": "198.51.100.2/32",
}


def render_pulumi_config_yaml() -> str:
    """The `config:` block of Pulumi.yaml as text (what `python -m components.config` prints)."""
    import json

    out = ["config:"]
    for s in SETTINGS:
        out += [f"  {s.key}:", f"    type: {s.type}", f"    description: {json.dumps(s.description)}"]
        if not s.required:
            d = s.default
            text = (
                ("true" if d else "false") if isinstance(d, bool) else str(d) if isinstance(d, int) else json.dumps(d)
            )
            out.append(f"    default: {text}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # regenerate: python -m components.config (replaces the config: block of Pulumi.yaml)
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "Pulumi.yaml"
    text = path.read_text()
    head = text[: text.index("\nconfig:\n") + 1]
    path.write_text(head + render_pulumi_config_yaml())
    print(f"{path}: config block regenerated from components/config.py SETTINGS")
