"""``postgresql``: OCI Database with PostgreSQL (managed PostgreSQL, ``oci.psql.DbSystem``) in the private subnet.

Not Always Free: priced per OCPU-hour (compute of the shape plus the service's own OCPU fee), per GB-hour of memory
and per GB-month of data actually stored (labctl/data/prices.json "postgresql"). Pure at import time
(engines/base.py, IMPORT RULE): pulumi and pulumi_oci are imported inside ``build``; the policy pack reads this module.

Provider facts below cite oracle/terraform-provider-oci v8.28.0 (the provider pulumi-oci 5.5.0 wraps),
``internal/service/psql/psql_db_system_resource.go`` as ``res.go:<line>``; argument names are those of
``pulumi_oci/psql/db_system.py`` (5.5.0).

What the service gives, and what the lab adds:
- one primary DB instance in the private subnet, reached at ``network_details.primary_db_endpoint_private_ip``
  (Optional+Computed+ForceNew, res.go:83-88: the service picks a free address when none is sent) on port 5432;
  no public endpoint exists for this service (``NetworkDetails`` has only a subnet, NSGs and a private IP);
- an administrator that is NOT a superuser: OCI gives it ``oci_admin_role``; it "can create users and roles and
  enable certain extensions" (OCI docs "Managing the Administrator Credentials for a Database System",
  https://docs.oracle.com/iaas/Content/postgresql/reset-db-admin-credentials.htm). That it may also CREATE DATABASE
  is not stated in the pages read: the check needs it, and reports PostgreSQL's refusal (SQLSTATE 42501) if not;
- no application database: only PostgreSQL's own ``postgres`` (the check logs in there and creates the lab's
  database and the least-privilege app user, engines/pgcheck.py);
- TLS only: the service accepts ``hostssl`` connections only, TLSv1.2 (OCI tutorial "Configure Secure Socket Layer in
  OCI Database with PostgreSQL", https://docs.oracle.com/en/learn/oci-pgsql-ssl: "only allows the hostssl connection
  type"; sslmode require / verify-ca / verify-full). The CA that signs the server certificate is published by the
  service (data source getDbSystemConnectionDetail ``caCertificate``, pulumi_oci/psql/get_db_system_connection_detail
  .py), so verify-ca is possible; the lab's ``.env`` says ``require`` (what every client understands without a CA
  file) and the FQDN of the primary endpoint is the DB hostname.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from components import ocimodel
from engines.base import EndpointModel, Engine, password_rule
from engines.pgcheck import adapter as pgcheck_adapter
from engines.pgcheck import reserved_roles as pgcheck_reserved_roles

# Type tokens as pulumi_oci 5.5.0 spells them (psql/db_system.py, psql/get_shapes.py,
# psql/get_db_system_connection_detail.py).
DB_SYSTEM = "oci:Psql/dbSystem:DbSystem"
SHAPES_TOKEN = "oci:Psql/getShapes:getShapes"
CONNECTION_DETAIL_TOKEN = "oci:Psql/getDbSystemConnectionDetail:getDbSystemConnectionDetail"

PORT = 5432  # PostgreSQL's port; the service's endpoints report it (ConnectionDetails endpoints[].port)
HOSTNAME_LABEL = "postgresql"  # used only in display names: the service names its own FQDN (primaryDbEndpoints)
# Major version sent as db_version (Required+ForceNew, res.go:46-50; SetData keeps only the major part, res.go:1525).
# 14 is what the provider's acceptance test creates (internal/integrationtest/psql_db_system_test.go:69); 16 is the
# default public configs found by code search give (a module's `psql_version` default 16, an operator's dbVersion
# default "16"); the SDK's own docstring gives "17" as an example. A change of this value REPLACES the DB system and
# its data (the lab never sends allow_major_version_upgrade).
DB_VERSION = "16"
# The only storage type the provider accepts (res.go:117-123 StringInSlice {"OCI_OPTIMIZED_STORAGE"}).
STORAGE_SYSTEM_TYPE = "OCI_OPTIMIZED_STORAGE"
# Storage is not provisioned: it grows and shrinks with the data, billed per GB used (OCI docs "Billing",
# https://docs.oracle.com/iaas/Content/postgresql/billing.htm: "You only pay for what you use, instead of what you
# provisioned"), up to a hard limit of 32 TB per DB system (OCI docs "OCI Database with PostgreSQL Storage Best
# Practices", https://docs.oracle.com/iaas/Content/postgresql/storage-best-practices.htm: "Maximum capacity is 32 TB
# per database system"). dbStorageGbs is therefore the data the class expects, used for the cost estimate only,
# and travels with the resource as this freeform tag so that a plan can be priced without the stack's config.
MAX_STORAGE_GBS = 32 * 1024
DATA_GB_TAG = "oci-dblab-expected-data-gb"

# Shapes: <series>.<OCPUs>.<memory>GB, the sized form public configs and the provider's tests create
# ("PostgreSQL.VM.Standard.E5.Flex.2.32GB", psql_db_system_test.go:72 and :156; E4 in examples/psql/main.tf).
# The lab splits it into the flexible series (sent as `shape`) plus instance_ocpu_count and
# instance_memory_size_in_gbs, the form the same test applies as an update (psql_db_system_test.go:320-322), so
# that resizing is one in-place update of three properties (res.go:1434-1455). Series: E4 and E5 (provider
# example and tests), E6 and Standard3 (the compatible shapes public OCI PostgreSQL configurations list:
# "VM.Standard.E5.Flex", "VM.Standard.E6.Flex", "VM.Standard3.Flex"). The service's shapes API
# (oci:Psql/getShapes: shapeOcpuOptions min/max, shapeMemoryOptions) has the exact OCPU and memory ranges of a
# region; the lab checks only the form and that both numbers are positive, never a guessed limit.
SERIES = ("PostgreSQL.VM.Standard.E4.Flex", "PostgreSQL.VM.Standard.E5.Flex", "PostgreSQL.VM.Standard.E6.Flex",
          "PostgreSQL.VM.Standard3.Flex")  # fmt: skip
SHAPE_PATTERN = (
    r"(?P<series>PostgreSQL\.VM\.Standard(?:\.E4|\.E5|\.E6|3)\.Flex)"
    r"\.(?P<ocpus>[1-9][0-9]{0,2})\.(?P<memory>[1-9][0-9]{0,3})GB"
)
# 2 OCPUs / 32 GB: the size the provider's acceptance test and Oracle's service-operator sample create
# (psql_db_system_test.go:72, 81-82; oci-service-operator config/samples/psql_v1beta1_dbsystem.yaml), i.e. known to
# be accepted. A smaller size (the flex test creates 2 OCPUs with 10 GB, psql_db_system_test.go:177-178) is cheaper.
DEFAULT_SHAPE = "PostgreSQL.VM.Standard.E5.Flex.2.32GB"

# Generated passwords: these specials survive shells, URLs (percent-encoded anyway) and .env files.
GENERATED_PASSWORD_SPECIALS = "!#%*+-=?_"


def parse_shape(shape: str) -> tuple[str, int, int] | None:
    """``(series, ocpus, memory_gbs)`` of a sized shape name, or None when it is not one."""
    m = re.fullmatch(SHAPE_PATTERN, shape)
    if m is None:
        return None
    return m["series"], int(m["ocpus"]), int(m["memory"])


# --- admin password and users --------------------------------------------------------------------------------
# The rule. OCI publishes none for this service in any source this project could read (the console and API pages
# "Creating a Database System" and "Managing the Administrator Credentials" as stored; the API model
# PlainTextPasswordDetails, oci-go-sdk psql/plain_text_password_details.go, has no constraint; the provider has no
# validation, res.go:2583-2616). So the lab applies the rule OCI documents for its other managed MySQL/PostgreSQL
# family service, MySQL HeatWave: 8-32 characters with a digit, a lower- and an uppercase letter and a special
# character, not containing the user name, printable ASCII only. Passwords public configs create this service with
# all fit it: "BEstrO0ng_#11" (the provider's acceptance test, psql_db_system_test.go:132) and "Welcome123###"
# (a public terraform.tfvars found by code search). No character is known to be refused by OCI; the lab refuses
# non-printable and non-ASCII characters, as for every engine (a password must survive .env and URLs).
password_problem = password_rule(8, 32)

# PostgreSQL's own reserved role names (engines/pgcheck.py, the family's), and the service grants the admin
# "oci_admin_role" (the admin is not the superuser, see above; the service keeps "postgres" for itself).
RESERVED_USERS = pgcheck_reserved_roles("oci_admin_role")


# --- the DB system's arguments (pure) ------------------------------------------------------------------------
def db_system_args(args: Any, admin_password: Any, secret: Callable[[Any], Any] = lambda v: v) -> dict[str, Any]:
    """Keyword arguments of ``oci.psql.DbSystem`` for the Database component's ``args`` (components/database.py
    DatabaseArgs), nested arguments as plain dicts (the SDK accepts its ``*ArgsDict`` forms). Pure: no pulumi;
    ``secret`` wraps the values the provider treats as Sensitive (build passes ``pulumi.Output.secret``)."""
    parsed = parse_shape(args.shape)
    if parsed is None:
        raise ValueError(f"dbShape {args.shape!r} is not a postgresql shape (e.g. {DEFAULT_SHAPE})")
    series, ocpus, memory = parsed
    kwargs: dict[str, Any] = {
        "compartment_id": args.compartment_id,
        "display_name": f"{args.name_prefix}-postgresql",
        "description": "oci-dblab: OCI Database with PostgreSQL, private subnet only",
        "db_version": DB_VERSION,
        # The flexible series plus the size (res.go:93-100 shape Required, no ForceNew, compared without the
        # "PostgreSQL." prefix by normalizeShape :2985; :253/:258 memory and OCPUs Optional+Computed, no ForceNew).
        "shape": series,
        "instance_ocpu_count": ocpus,
        "instance_memory_size_in_gbs": memory,
        "instance_count": 1,  # one primary, no read replicas: a lab
        # Private endpoint in the private subnet (subnet_id Required+ForceNew, res.go:63-67). No NSG: the private
        # subnet's security list is the lab's one place for the DB port (TCP 5432 from the app subnet only).
        "network_details": {"subnet_id": args.subnet_id},
        # AD-local storage in the availability domain the lab placed the DB in (components/lookups.py): with
        # is_regionally_durable false, availability_domain must be given (pulumi_oci psql/_inputs.py
        # DbSystemStorageDetailsArgs). All three are ForceNew (res.go:109-113, :114-124, :125-130).
        "storage_details": {
            "system_type": STORAGE_SYSTEM_TYPE,
            "is_regionally_durable": False,
            "availability_domain": args.availability_domain,
        },
        # The password travels in plain text to the API (PLAIN_TEXT, res.go:2594-2600) and the provider keeps it in
        # its state (the acceptance test reads it back, psql_db_system_test.go:331). The provider marks both
        # password_type and password Sensitive (res.go:186-190, :198-203): both go out as secrets (the password is
        # a secret Output already), and build() lists `credentials` in additional_secret_outputs.
        "credentials": {
            "username": args.admin_user,
            "password_details": {"password_type": secret("PLAIN_TEXT"), "password": secret(admin_password)},
        },
        "freeform_tags": {**dict(args.tags), DATA_GB_TAG: str(int(args.storage_gbs))},
        # Always sent, ACTIVE too (config dbState, labctl class stop|start): `state` is Optional+Computed
        # (res.go:709-718), so leaving it out would keep the last value. A change is an in-place update that calls
        # StartDbSystem / StopDbSystem (updatePsqlDbSystemWithContext res.go:835-869, :1659-1711); a create with
        # INACTIVE creates, then stops (:801-824). Not billed while INACTIVE (billing.htm).
        "state": getattr(args, "state", "ACTIVE"),
    }
    if args.backup_retention_days:
        # Daily automatic backups kept N days (management_policy.backup_policy, Optional+Computed, res.go:382-388;
        # kind DAILY as in public configs; left out: the service's default policy applies).
        days = int(args.backup_retention_days)
        kwargs["management_policy"] = {
            "backup_policy": {"kind": "DAILY", "retention_days": days, "backup_start": "02:00"}
        }
    return kwargs


def resource_options_fields(args: Any) -> dict[str, Any]:
    """The ``ResourceOptions`` fields the DB system gets besides ``parent`` (pure, tested without pulumi)."""
    return {
        # credentials: a change of username would REPLACE the DB system (username ForceNew, res.go:218-222) and a
        # change of password is sent as ResetMasterUserPassword (res.go:1289-1294, :1713), which public reports say
        # fails from Terraform (oracle/terraform-provider-oci issue 2098, open: "Unable to update password for admin
        # DB user on oci_psql_db_system"). The lab sets them once; rotate the password in the console or with
        # `oci psql db-system reset-master-user-password` (README, "Changing the password").
        # storageDetails.availabilityDomain: the AD is chosen on every run and is ForceNew (res.go:125-130); an
        # existing DB system (and its data) stays where it is.
        "ignore_changes": ["credentials", "storageDetails.availabilityDomain"],
        "additional_secret_outputs": ["credentials"],
        # The service has no deletion-protection flag (no such field in res.go's schema); Pulumi's protect is the
        # lab's equivalent: `pulumi destroy` refuses until dbDeletionProtection is turned off.
        "protect": bool(args.deletion_protection),
    }


def build(db: Any, name: str, args: Any) -> Any:
    """Declare the PostgreSQL DB system as a child of the Database component ``db``."""
    import pulumi
    import pulumi_oci as oci

    from components import ocimods
    from components.database import DatabaseEndpoint

    ocimods.use("psql", "db_system", "get_db_system_connection_detail")
    system = oci.psql.DbSystem(
        f"{name}-postgresql",
        **db_system_args(args, db.admin_password, pulumi.Output.secret),
        opts=pulumi.ResourceOptions(parent=db, **resource_options_fields(args)),
    )
    private_ip = system.network_details.apply(lambda n: n.primary_db_endpoint_private_ip if n else None)
    detail = oci.psql.get_db_system_connection_detail_output(
        db_system_id=system.id, opts=pulumi.InvokeOutputOptions(parent=db)
    )
    hostname = pulumi.Output.all(detail.primary_db_endpoints, private_ip).apply(_primary_fqdn)
    return DatabaseEndpoint(resource_id=system.id, private_ip=private_ip, port=PORT, hostname=hostname)


def _primary_fqdn(values: Sequence[Any]) -> str:
    """The primary endpoint's FQDN; its private IP when the service reports no FQDN."""
    endpoints, ip = values
    for ep in endpoints or []:
        fqdn = ep.get("fqdn") if isinstance(ep, Mapping) else getattr(ep, "fqdn", None)
        if fqdn:
            return str(fqdn)
    return str(ip or "")


# --- reachability / policy -----------------------------------------------------------------------------------
def endpoints(resources: Sequence[Any]) -> list[EndpointModel]:
    """The declared PostgreSQL DB systems: subnet and NSGs as declared, port 5432, the private IP when known.
    Reads with ``peek`` only: in the real pack's preview these values may be unknown (components/ocimodel.py)."""
    out = []
    for r in ocimodel.of_type(resources, DB_SYSTEM):
        net = ocimodel.peek(r.props, "networkDetails")
        ip = ocimodel.peek(net, "primaryDbEndpointPrivateIp")
        if ip is None:
            # the service picks it (Optional+Computed): only the outputs know it (peek_output would stop at the
            # declared networkDetails, which has no IP)
            ip = ocimodel.peek(
                ocimodel.peek(getattr(r, "outputs", None), "networkDetails"), "primaryDbEndpointPrivateIp"
            )
        out.append(
            EndpointModel(
                name=r.name,
                urn=r.urn,
                resource=r,
                subnet_prop="networkDetails",
                ports=(PORT,),
                private_ip=ip,
                engine=ENGINE.name,
                subnet_id=ocimodel.peek(net, "subnetId"),
                nsg_ids=tuple(x for x in ocimodel.items(ocimodel.peek(net, "nsgIds")) if isinstance(x, str)),
                note="an OCI Database with PostgreSQL DB system has only a private endpoint",
            )
        )
    return out


def backup_problem(resource: Any) -> str | None:
    """db-backups-enabled: a DB system whose backup policy is switched off (kind NONE) fails; none sent means the
    service's default policy (management_policy Optional+Computed, res.go:382-388: what the service sets is kept)."""
    policy = ocimodel.peek(ocimodel.peek(resource.props, "managementPolicy"), "backupPolicy")
    kind = ocimodel.peek(policy, "kind")
    if isinstance(kind, str) and kind.upper() == "NONE":
        return "automatic backups are switched off (backup_policy kind NONE); leave it out or set kind DAILY"
    return None


# --- offline mocks (labctl/offline.py) -----------------------------------------------------------------------
def mock_outputs(type_token: str, inputs: Mapping[str, Any], private_ip: str = "10.0.2.2") -> dict | None:
    """What OCI answers for a created DB system (camelCase outputs as pulumi-oci returns them), or None when
    ``type_token`` is not this engine's. ``private_ip``: the address the mock cloud hands out in the subnet."""
    if type_token != DB_SYSTEM:
        return None
    state: dict[str, Any] = dict(inputs)
    net = dict(inputs.get("networkDetails") or {})
    net.setdefault("primaryDbEndpointPrivateIp", private_ip)
    net.setdefault("nsgIds", [])
    net.setdefault("isReaderEndpointEnabled", False)
    storage = dict(inputs.get("storageDetails") or {})
    storage.setdefault("iops", "75000")  # the smallest performance tier (75K IOPS) public configs name
    creds = dict(inputs.get("credentials") or {})
    state.update(
        {
            "networkDetails": net,
            "storageDetails": storage,
            "adminUsername": creds.get("username", ""),
            # the provider returns the shape with the "PostgreSQL." prefix (pulumi_oci psql/db_system.py, shape)
            "shape": str(inputs.get("shape", "")),
            "systemType": STORAGE_SYSTEM_TYPE,
            "instanceCount": int(inputs.get("instanceCount") or 1),
            "instances": [
                {
                    "availabilityDomain": storage.get("availabilityDomain", ""),
                    "displayName": f"{inputs.get('displayName', 'postgresql')}-1",
                    "id": "ocid1.postgresqldbinstance.oc1..mock",
                    "state": "ACTIVE",
                    "description": "",
                    "lifecycleDetails": "",
                    "timeCreated": "2026-11-27T00:00:00.000Z",
                    "timeUpdated": "2026-11-27T00:00:00.000Z",
                }
            ],
            "systemRole": "STANDALONE",
            "lifecycleDetails": "",
            "state": str(inputs.get("state") or "ACTIVE"),
        }
    )
    return state


MOCK_CA_CERTIFICATE = (
    "-----BEGIN CERTIFICATE-----\nMIIBmockOCIPostgreSQLCAcertificateForOfflinePlansOnly\n-----END CERTIFICATE-----\n"
)


def mock_invoke(token: str, args: Mapping[str, Any], region: str = "mock-1", **_: Any) -> dict | None:
    """Realistic answers to this engine's invokes (shapes of the region, the DB system's connection details)."""
    if token == SHAPES_TOKEN:
        items = []
        for series in SERIES:
            compute = series.removeprefix("PostgreSQL.")
            items.append(
                {
                    "id": series,
                    "shape": series,
                    "isFlexible": True,
                    "ocpuCount": 0,
                    "memorySizeInGbs": 0,
                    "shapeOcpuOptions": [{"min": 1, "max": 64}],
                    "shapeMemoryOptions": [
                        {
                            "minInGbs": 16,
                            "maxInGbs": 1024,
                            "defaultPerOcpuInGbs": 16,
                            "minPerOcpuInGbs": 1,
                            "maxPerOcpuInGbs": 64,
                        }
                    ],
                    "computeShape": compute,
                }
            )
        return {"compartmentId": args.get("compartmentId"), "id": "shapes", "shapeCollections": [{"items": items}]}
    if token == CONNECTION_DETAIL_TOKEN:
        # The FQDN's form as public configs show it: primary.<30 lowercase letters and digits>.postgresql.<region>
        # .oci.oraclecloud.com (code search: "primary.djzfvolyanswjizl6jz5bkqucnfeha.postgresql.us-ashburn-1.oci
        # .oraclecloud.com" with DB_SSL_MODE=require; "primary.uul7t7yatxqfpzmbfeydnnrxnof3qq..." beside a CA).
        system = str(args.get("dbSystemId", ""))
        label = "".join(c for c in hashlib.sha256(system.encode()).hexdigest() if c.isalnum())[:30]
        fqdn = f"primary.{label}.postgresql.{region}.oci.oraclecloud.com"
        return {
            "dbSystemId": system,
            "id": system,
            "caCertificate": MOCK_CA_CERTIFICATE,
            "primaryDbEndpoints": [{"fqdn": fqdn, "ipAddress": "", "port": PORT}],
            "readerEndpoints": [],
            "instanceEndpoints": [],
        }
    return None


# --- cost ----------------------------------------------------------------------------------------------------
# Figures and their sources: labctl/data/prices.json "postgresql" (B99060 service fee per OCPU-hour, B99062 storage
# per GB-month, from Oracle's price-list API; billing.htm: compute of the shape + storage + VPUs + the service's
# fees) and "compute" (the series' OCPU and memory prices). The VPU (performance tier) charge has no figure in any
# source read: it is a "cost unknown" line, never zero.
PRICES: dict[str, Any] = {
    "table": "labctl/data/prices.json postgresql",
    # series -> the compute shape whose OCPU/memory prices apply (labctl/data/prices.json "compute" keys)
    "compute_shape": {s: s.removeprefix("PostgreSQL.") for s in SERIES},
}


def monthly_lines(
    name: str, shape: str, data_gbs: float, hours: int, table: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The monthly cost lines of one DB system (pure): dicts with item, quantity, unit, unit_price, monthly (None:
    cost unknown), note. ``table``: labctl/data/prices.json. Second value: the source ids used."""
    parsed = parse_shape(shape)
    if parsed is None:
        return [_unknown(f"{shape} DB system", 1, "DB system", "not a postgresql shape the lab prices")], []
    series, ocpus, memory = parsed
    svc = table["postgresql"]
    lines: list[dict[str, Any]] = []
    ids: list[str] = list(svc.get("sources", []))
    spec = table["compute"].get(PRICES["compute_shape"][series])
    if spec is None or "ocpu_hour" not in spec:
        lines.append(_unknown(f"{series} compute", ocpus * hours, "OCPU-hour", "no price of this series is sourced"))
    else:
        ids += list(spec.get("sources", []))
        lines.append(_priced(f"{series} OCPU (compute)", ocpus * hours, "OCPU-hour", spec["ocpu_hour"]))
        lines.append(_priced(f"{series} memory (compute)", memory * hours, "GB-hour", spec["memory_gb_hour"]))
    lines.append(_priced("PostgreSQL service OCPU fee", ocpus * hours, "OCPU-hour", svc["service_ocpu_hour"]))
    lines.append(
        _priced(
            "database optimized storage",
            data_gbs,
            "GB-month",
            svc["storage_gb_month"],
            "the data stored (dbStorageGbs); storage grows with the data",
        )
    )
    if svc.get("vpu_gb_month") is None:
        lines.append(
            _unknown("storage performance (VPUs)", data_gbs, "GB-month", "no public figure for the service's VPUs")
        )
    else:
        lines.append(_priced("storage performance (VPUs)", data_gbs, "GB-month", svc["vpu_gb_month"]))
    return lines, list(dict.fromkeys(ids))


def _priced(item: str, qty: float, unit: str, price: float, note: str = "") -> dict[str, Any]:
    return {"item": item, "quantity": qty, "unit": unit, "unit_price": price, "monthly": round(qty * price, 2),
            "note": note}  # fmt: skip


def _unknown(item: str, qty: float, unit: str, why: str) -> dict[str, Any]:
    return {"item": item, "quantity": qty, "unit": unit, "unit_price": None, "monthly": None,
            "note": f"cost unknown: {why}"}  # fmt: skip


def data_gbs_of(resource: Any, default: float = 50.0) -> float:
    """The expected data (GB) a declared DB system carries in its freeform tag (``DATA_GB_TAG``)."""
    tags = (getattr(resource, "props", None) or {}).get("freeformTags") or {}
    try:
        return float(tags.get(DATA_GB_TAG, default))
    except (TypeError, ValueError):
        return default


def sized_shape(resource: Any) -> str:
    """The dbShape a declared DB system stands for: its series plus OCPUs and memory (``<series>.<o>.<m>GB``)."""
    props = getattr(resource, "props", None) or {}
    series, ocpus, memory = props.get("shape", ""), props.get("instanceOcpuCount"), props.get("instanceMemorySizeInGbs")
    try:
        return f"{series}.{int(ocpus)}.{int(memory)}GB"
    except (TypeError, ValueError):
        return str(series)


def _cost_lines(name: str, shape: str, data_gbs: float) -> tuple[list[Any], list[str]]:
    from labctl import estimate

    lines, ids = monthly_lines(name, shape, data_gbs, estimate.hours_per_month(), estimate.price_table())
    return [
        estimate.CostLine(
            name,
            DB_SYSTEM,
            ln["item"],
            round(ln["quantity"], 4),
            ln["unit"],
            ln["unit_price"] or 0.0,
            ln["monthly"] or 0.0,
            False,
            ln["note"],
        )
        for ln in lines
    ], ids


def price_lines(resource: Any, free: Any = None) -> tuple[list[Any], list[str]]:
    """labctl/estimate.py ``CostLine``s of one declared DB system and their source ids (no Always Free pool
    applies). A figure without a source is a line with 0.0 and a note starting "cost unknown", never a free line."""
    if getattr(resource, "resource_type", DB_SYSTEM) != DB_SYSTEM:
        return [], []
    return _cost_lines(resource.name, sized_shape(resource), data_gbs_of(resource))


def price_shape(name: str, shape: str, storage_gbs: float, free: Any = None) -> tuple[list[Any], list[str]]:
    """The same lines for a config's ``dbShape`` and ``dbStorageGbs`` (labctl/preflight.py)."""
    return _cost_lines(name, shape, float(storage_gbs))


# --- create duration -----------------------------------------------------------------------------------------
# No public apply log of an oci_psql_db_system create was found (searched: provider issues, public repositories'
# logs). The provider waits up to 1 h (res.go:31-35 Create timeout "1h"). Unknown, not guessed.
DURATIONS: dict[str, Any] = {
    DB_SYSTEM: {
        "seconds": None,
        "sources": [],
        "note": "unknown: no public apply log found; the provider's create timeout is 1 h (psql_db_system_resource.go"
        ":31-35)",
    }
}

# --- elastic sizing (labctl plan / labctl diff) --------------------------------------------------------------
_PROVIDER = "terraform-provider-oci v8.28.0 internal/service/psql/psql_db_system_resource.go"
SIZING: tuple[dict[str, Any], ...] = (
    {
        "key": "dbShape",
        "resource_type": DB_SYSTEM,
        "prop": "shape",
        "in_place": True,
        "source": f"{_PROVIDER}:94 `shape` Required, no ForceNew; sent in UpdateDbSystem by UpdateWithContext "
        "(:1276, shape with OCPUs and memory at :1434-1455)",
        "note": "the series part of dbShape",
    },
    {
        "key": "dbShape",
        "resource_type": DB_SYSTEM,
        "prop": "instanceOcpuCount",
        "in_place": True,
        "source": f"{_PROVIDER}:258 `instance_ocpu_count` Optional+Computed, no ForceNew; sent at :1351 and :1439",
        "note": "the OCPUs of dbShape (<series>.<OCPUs>.<memory>GB)",
    },
    {
        "key": "dbShape",
        "resource_type": DB_SYSTEM,
        "prop": "instanceMemorySizeInGbs",
        "in_place": True,
        "source": f"{_PROVIDER}:253 `instance_memory_size_in_gbs` Optional+Computed, no ForceNew; sent at :1346 "
        "and :1443",
        "note": "the memory of dbShape",
    },
    {
        "key": "dbStorageGbs",
        "resource_type": DB_SYSTEM,
        "prop": f"freeformTags.{DATA_GB_TAG}",
        "in_place": True,
        "source": "storage is not provisioned (billing.htm: pay for what you use); the value is a freeform tag, "
        f"Optional+Computed, no ForceNew ({_PROVIDER}, freeform_tags)",
        "note": "only the cost estimate changes; storage grows by itself up to 32 TB",
    },
)


ENGINE = Engine(
    name="postgresql",
    family="postgresql",
    description="OCI Database with PostgreSQL DB system (managed PostgreSQL, oci.psql.DbSystem)",
    port=PORT,
    extra_ports=(),
    default_shape=DEFAULT_SHAPE,
    shape_pattern=SHAPE_PATTERN,
    example_shape=DEFAULT_SHAPE,
    always_free_shape=None,  # not part of Always Free
    min_storage_gbs=1,
    max_storage_gbs=MAX_STORAGE_GBS,
    fixed_storage_gbs={},
    default_admin_user="admin",  # the name public configs of this service use
    reserved_users=RESERVED_USERS,
    # PostgreSQL's own databases: the lab database must not be one of them
    reserved_db_names=frozenset({"postgres", "template0", "template1"}),
    password_problem=password_problem,
    password_specials=GENERATED_PASSWORD_SPECIALS,
    ssl_mode="require",
    # what engines/pgcheck.py tls_context accepts; verify-ca/verify-full need the service's CA as sslCa
    # (getDbSystemConnectionDetail caCertificate) and, for verify-full, the primary endpoint's FQDN as the host name
    ssl_modes=("require", "verify-ca", "verify-full"),
    url_scheme="postgresql",
    hostname_label=HOSTNAME_LABEL,
    resource_types=frozenset({DB_SYSTEM, SHAPES_TOKEN, CONNECTION_DETAIL_TOKEN}),
    endpoint_type=DB_SYSTEM,
    server_label="PostgreSQL",
    lab_concepts="an OCI Database with PostgreSQL DB system has only a private endpoint in the private subnet and "
    "accepts TLS connections only; it is reached through the app VM",
    shapes_token=None,  # psql getShapes lists a region's shapes, not one AD's: the DB goes to the app VM's AD
    # Namespace oci_postgresql with dimension resourceId = the DB system's OCID (OCI docs "OCI Database with
    # PostgreSQL Metrics", https://docs.oracle.com/iaas/Content/postgresql/metrics.htm: dimensions resourceType,
    # resourceName, resourceId, dbInstanceRole, dbInstanceId; metrics BufferCacheHitRatio, Connections, ...).
    # CpuUtilization and MemoryUtilization as public OCI alarms and collectors spell them with this namespace
    # (code search: `namespace = "oci_postgresql"` with `CpuUtilization[5m]{resourceId = ...}.mean() > 80`; a
    # collector's list "CpuUtilization MemoryUtilization Connections BufferCacheHitRatio ... UsedStorage").
    # Storage is left out: UsedStorage is GB, not a percentage of a capacity (storage grows by itself).
    monitoring_namespace="oci_postgresql",
    metrics={"cpu": "CpuUtilization", "memory": "MemoryUtilization", "connections": "Connections"},
    # max_connections is set by the service's shape-specific default configuration; no per-shape figure was found
    # in a public source, so none is recorded (no connections alarm; a warning says so).
    max_connections={},
    alarm_gaps={
        "storage": "UsedStorage is GB, not a share of a capacity: the service's storage grows by itself",
        "backup_failure": "oci_postgresql has no backup metric (OCI 'OCI Database with PostgreSQL Metrics'); the "
        "service's backups are listed on the DB system's Backups page",
    },
    free_pools={},
    sizing={"facts": SIZING},
    prices=PRICES,
    durations=DURATIONS,
    local_server="postgresql",
    mock_shapes=frozenset(
        {DEFAULT_SHAPE, "PostgreSQL.VM.Standard.E4.Flex.2.32GB", "PostgreSQL.VM.Standard3.Flex.1.16GB"}
    ),
    stop_via="the DB system's state ACTIVE|INACTIVE (terraform-provider-oci v8.28.0 "
    "internal/service/psql/psql_db_system_resource.go:709-718; StartDbSystem / StopDbSystem :835-869); not billed "
    "while INACTIVE (https://docs.oracle.com/iaas/Content/postgresql/billing.htm)",
    build=build,
    adapter=pgcheck_adapter,  # the postgresql family's check adapter (pg8000 over the tunnel)
    endpoints=endpoints,
    backup_problem=backup_problem,
    price_lines=price_lines,
    price_shape=price_shape,
    mock_outputs=mock_outputs,
    mock_invoke=mock_invoke,
)
