"""What every database engine of the lab is: one ``Engine`` (data and hooks), plus helpers engines share.

An engine module (``engines/<name>.py``) builds one ``Engine`` and the registry (``engines/__init__.py``) lists it.
The rest of the program asks the registry: config validation, the Database tier, the connection check, the
reachability model and the policy rules, cost and the critical path, the offline mocks, ``labctl local``.

IMPORT RULE: this module and every engine module import only the standard library (and each other) at module level.
``policy/rules.py`` runs in the policy pack's own virtualenv, where only pulumi-policy is installed, and it imports
the registry; pulumi, pulumi_oci, pulumi_random and the database drivers are imported inside the hook that needs them
(``build``, ``adapter``). ``tests/test_engine_seam.py`` imports the registry with those packages blocked.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# The keys of the `.env` the lab writes, the same for every engine (apps read DATABASE_URL or the parts).
DOTENV_KEYS: tuple[str, ...] = (
    "DB_ENGINE",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSL_MODE",
    "DATABASE_URL",
)


@dataclass(frozen=True)
class EndpointModel:
    """Where a declared database listens, as the reachability model and the policy rules see it."""

    name: str
    urn: str
    resource: Any = None  # the declared resource (ResourceLike of components/ocimodel.py) that is the DB's endpoint
    ports: tuple[int, ...] = ()  # the ports it listens on (declared, else the engine's)
    private_ip: Any = None  # the private IP when known (an output; None or unknown in preview)
    engine: str = ""  # the engine's name
    subnet_id: Any = None  # the subnet id as declared (an OCID offline; unknown in a preview of a fresh stack)
    # the top-level property the subnet id sits in: the policy rules link the subnet by its property dependencies
    subnet_prop: str = "subnetId"
    nsg_ids: tuple[str, ...] = ()  # the NSGs its VNIC is in, as declared
    note: str = ""  # why it has no public IP, in the lab's words (reachability reports)

    @property
    def subnet(self) -> Any:
        return self.subnet_id


def _none(*_args: Any, **_kwargs: Any) -> None:
    return None


def _no_endpoints(_resources: Any) -> list[EndpointModel]:
    return []


def _no_prices(*_args: Any, **_kwargs: Any) -> list[Any]:
    return []


@dataclass(frozen=True)
class Engine:
    """A database engine: its spec (data) and its hooks (functions; heavy imports happen inside them)."""

    # --- spec ---------------------------------------------------------------------------------------------------
    name: str  # the config value of dbEngine
    family: str  # "mysql" | "postgresql": wire protocol, SQL dialect and check adapter
    description: str
    port: int
    # build(db, name, args) -> DatabaseEndpoint: declares the engine's resources as children of the Database component
    # (a hook, but required: an engine without resources is no engine)
    build: Callable[[Any, str, Any], Any]
    extra_ports: tuple[int, ...]
    default_shape: str
    shape_pattern: str  # a full-match regex of the shapes dbShape accepts
    example_shape: str
    always_free_shape: str | None  # the managed Always Free shape, or None
    min_storage_gbs: int
    max_storage_gbs: int
    fixed_storage_gbs: Mapping[str, int]
    default_admin_user: str
    reserved_users: frozenset[str]  # user names the engine refuses for the admin (and the app user)
    reserved_db_names: frozenset[str]  # system schemas / databases dbName may not be
    password_specials: str  # specials generated passwords use (accepted by the engine, safe in shells/URLs/.env)
    ssl_mode: str  # what DB_SSL_MODE says by default (the engine's client spelling)
    url_scheme: str  # DATABASE_URL scheme
    hostname_label: str  # DNS label of the DB endpoint in the private subnet
    resource_types: frozenset[str]  # type tokens ONLY this engine names
    endpoint_type: str  # the type whose props give the DB's subnetId / private IP / port
    lab_concepts: str = ""  # one sentence used in failure messages
    server_label: str = ""  # the DB server's name in the check's failure messages ("<server_label> hop: ...")
    shapes_token: str | None = None  # invoke listing the shapes one AD offers this engine; None: the app VM's AD
    # Monitoring (components/operations.py): the metric namespace, the metric of each alarm role (cpu, memory,
    # storage, connections, backup_failure; a role left out gets no alarm), max_connections per shape (sourced).
    monitoring_namespace: str | None = None
    metrics: Mapping[str, str] = field(default_factory=dict)
    max_connections: Mapping[str, int] = field(default_factory=dict)
    # Why a role has no metric (role -> reason, with its source): operations warns "no db-<role> alarm: <reason>".
    alarm_gaps: Mapping[str, str] = field(default_factory=dict)
    free_pools: Mapping[str, int] = field(default_factory=dict)  # Always Free pools one DB of this engine consumes
    paid_shape: str | None = None  # the cheapest paid shape (preflight's option when the free pool is used up)
    sizing: Mapping[str, Any] = field(default_factory=dict)  # ForceNew facts of dbShape / dbStorageGbs, cited
    prices: Mapping[str, Any] = field(default_factory=dict)
    durations: Mapping[str, Any] = field(default_factory=dict)
    local_server: str | None = None  # which loopback server plays it ("mariadb" | "postgresql")
    # every TLS mode the check accepts for this engine (EnvFile sslMode), in its spelling; () = only ssl_mode
    ssl_modes: tuple[str, ...] = ()
    # the client package(s) cloud-init installs on the app VM (Oracle Linux 9 names); None = the family's
    client_packages: tuple[str, ...] | None = None
    # How the builder honours config dbState (labctl class stop|start), with its source; "" = it cannot stop the DB
    # (config refuses dbState INACTIVE rather than report a stop that did not happen).
    stop_via: str = ""
    # The DB installs its server from the OS repositories at boot (the DB-VM engines): the private subnet then gets a
    # service gateway to Oracle Services Network and HTTPS egress to it (components/network.py), never the internet.
    needs_os_repositories: bool = False
    # The service refuses a backup policy for its Always Free shape (config refuses dbBackupRetentionDays there);
    # False where there is no such service rule (a DB VM has no backup policy at all: the setting is only ignored).
    free_shape_refuses_backup_policy: bool = False

    # --- hooks --------------------------------------------------------------------------------------------------
    # password_problem(password, admin_user) -> why it breaks the engine's rule, or None; never echoes the password
    password_problem: Callable[[str, str], str | None] = _none
    # adapter() -> the family's check adapter (components/envcheck.py calls it)
    adapter: Callable[[], Any] = _none
    # Offline mocks (labctl/offline.py asks each engine first, then its own neutral table):
    # mock_outputs(type_token, inputs, private_ip=<the next address of the subnet named in the inputs>) -> the
    # resource's whole state (inputs plus what OCI computes), or None when the type is not this engine's;
    # mock_invoke(token, args, region=<the mock region>) -> the invoke's answer, or None. An engine with a
    # shapes_token is also passed offered=<the DB shape names the asked AD offers> for that token.
    mock_outputs: Callable[..., dict | None] = _none
    mock_invoke: Callable[..., dict | None] = _none
    mock_shapes: frozenset[str] = frozenset()  # the DB shapes one AD of the mock region offers this engine
    # endpoints(resources) -> the declared DBs of this engine (reach, policy, labctl local)
    endpoints: Callable[[Any], list[EndpointModel]] = _no_endpoints
    # price_lines(resource, free) -> labctl/estimate.py CostLines of one declared resource of this engine (or
    # (CostLines, source ids)); free: the tenancy's estimate.FreeTier, whose pools (free_pools) it may take from
    price_lines: Callable[..., Any] = _no_prices
    # price_shape(name, shape, storage_gbs, free) -> (CostLines, source ids) of one DB on a shape, for callers that
    # have a config rather than a plan (labctl/preflight.py); None: "cost unknown"
    price_shape: Callable[..., Any] | None = None
    # backup_problem(resource) -> why this endpoint resource has no automatic backups, or None (policy
    # db-backups-enabled); the default knows nothing to check
    backup_problem: Callable[[Any], str | None] = _none

    def app_packages(self) -> tuple[str, ...]:
        """What the app VM's cloud-init installs so students can reach this engine by hand."""
        if self.client_packages is not None:
            return self.client_packages
        return FAMILY_CLIENT_PACKAGES.get(self.family, ())

    def activity_query(self) -> str:
        """The statement that lists what the server is running now (alarm advice)."""
        return FAMILY_ACTIVITY_QUERY.get(self.family, "")

    def shape_ok(self, shape: str) -> bool:
        import re

        return re.fullmatch(self.shape_pattern, shape) is not None

    def database_url(self, host: str, port: int | str, database: str, user: str, password: str) -> str:
        """DATABASE_URL for this engine: user and password percent-encoded, the TLS mode as a query parameter."""
        return database_url(self.url_scheme, host, port, database, user, password, self.ssl_mode)


def certificate_fingerprint(sock: object) -> str:
    """SHA-256 fingerprint of the peer's certificate on a client TLS socket, ``AB:CD:...`` as ``openssl x509
    -fingerprint -sha256`` prints it (a DB VM's self-signed certificate is compared by it); "" when unencrypted.
    Every family's check adapter reports it (``tls_fingerprint`` in its probe result)."""
    if not isinstance(sock, ssl.SSLSocket):
        return ""
    der = sock.getpeercert(binary_form=True)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()) if der else ""


def database_url(scheme: str, host: str, port: int | str, database: str, user: str, password: str, ssl: str) -> str:
    """``<scheme>://user:password@host:port/database?<ssl query>``; user and password percent-encoded (RFC 3986)."""
    key = "sslmode" if scheme == "postgresql" else "ssl-mode"
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"{scheme}://{auth}@{host}:{port}/{quote(database, safe='')}?{key}={quote(ssl, safe='')}"


# The command-line client of each family on Oracle Linux 9 (AppStream): "mysql" (mysql, mysqldump; the app VM has
# installed it since the first version of this lab) and "postgresql" (psql, pg_dump; the server is the separate
# postgresql-server package, as the RHEL 9 guide "Installing PostgreSQL" describes it).
FAMILY_CLIENT_PACKAGES: dict[str, tuple[str, ...]] = {"mysql": ("mysql",), "postgresql": ("postgresql",)}
# How a student sees the running statements (the CPU alarm's advice): MySQL/MariaDB SHOW PROCESSLIST, PostgreSQL's
# pg_stat_activity view (both in the servers' own manuals).
FAMILY_ACTIVITY_QUERY: dict[str, str] = {
    "mysql": "SHOW PROCESSLIST",
    "postgresql": "SELECT pid, state, query FROM pg_stat_activity",
}

ASCII_SPECIALS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ "


def password_rule(
    min_len: int,
    max_len: int,
    specials: str = ASCII_SPECIALS,
    need_digit: bool = True,
    need_lower: bool = True,
    need_upper: bool = True,
    need_special: bool = True,
    no_user_name: bool = True,
    printable_ascii: bool = True,
) -> Callable[[str, str], str | None]:
    """A ``password_problem`` hook for the usual "length, classes, not the user name" rule."""
    special_set = set(specials)

    def problem(password: str, admin_user: str) -> str | None:
        problems = []
        if not min_len <= len(password) <= max_len:
            problems.append(f"has {len(password)} characters (needs {min_len}-{max_len})")
        if need_digit and not any(c.isdigit() for c in password):
            problems.append("has no digit")
        if need_lower and not any(c.islower() for c in password):
            problems.append("has no lowercase letter")
        if need_upper and not any(c.isupper() for c in password):
            problems.append("has no uppercase letter")
        if need_special and not any(c in special_set for c in password):
            problems.append("has no special character")
        if no_user_name and admin_user and admin_user.lower() in password.lower():
            problems.append("contains the admin user name")
        if printable_ascii and any(ord(c) < 32 or ord(c) > 126 for c in password):
            problems.append("contains characters outside printable ASCII")
        return ("the password " + ", ".join(problems)) if problems else None

    needs = [w for w, on in (("a digit", need_digit), ("a lower", need_lower), ("an upper", need_upper)) if on]
    needs += ["a special"] if need_special else []
    # what config shows beside its example (components/config.py password_hint): this engine's range and classes
    listed = " and ".join([", ".join(needs[:-1]), needs[-1]] if len(needs) > 1 else needs)
    problem.summary = f"{min_len}-{max_len} chars" + (f" with {listed}" if needs else "")  # type: ignore[attr-defined]
    return problem


def password_hint(engine: Engine | None) -> str:
    """The rule an engine's ``password_problem`` states, e.g. "8-64 chars with a digit, ...", or "" if unknown."""
    return str(getattr(engine.password_problem, "summary", "")) if engine is not None else ""
