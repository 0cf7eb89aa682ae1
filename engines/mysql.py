"""``mysql``: a MySQL HeatWave DB system (managed MySQL, ``oci.mysql.MysqlDbSystem``) in the private subnet.

Pure at import time (engines/base.py, IMPORT RULE): pulumi and pulumi_oci are imported inside ``build``.
"""

from __future__ import annotations

import re
from typing import Any

from components import ocimodel
from engines.base import EndpointModel, Engine, password_rule

# Type tokens as pulumi_oci 5.5.0 spells them (pulumi_oci/mysql/mysql_db_system.py, mysql/get_shapes.py).
DB_SYSTEM = "oci:Mysql/mysqlDbSystem:MysqlDbSystem"
SHAPES_TOKEN = "oci:Mysql/getShapes:getShapes"
FREE_SHAPE = "MySQL.Free"
HOSTNAME_LABEL = "mysql"
# Specials MySQL HeatWave accepts and that survive shells, URLs and .env files without surprises.
GENERATED_PASSWORD_SPECIALS = "!#%*+-=?_"


# Shapes OCI backs up by itself, with the reason (policy rule db-backups-enabled passes them without a backup policy):
# OCI refuses a backup policy for an Always Free DB system ("Cannot specify backup policy with 'CreateDbSystem'
# operation for an Always Free DB system") and backs it up automatically, keeping each backup 1 day (public apply
# log, mlinxfeld/terraform-oci-fk-heatwave training/lesson1_free_tier_mds/README.md: backup_policy is_enabled = true,
# retention_in_days = 1). See backup_and_deletion below.
AUTOMATIC_BACKUP_SHAPES = {FREE_SHAPE: "Always Free: OCI backs it up automatically (kept 1 day) and refuses a policy"}


def endpoints(resources: Any) -> list[EndpointModel]:
    """The declared DB systems: their ports (``port``/``portX`` as declared, else 3306/33060) and private IP.
    Reads with ``peek`` only: in the real pack's preview these values may be unknown (components/ocimodel.py)."""
    out = []
    for r in ocimodel.of_type(resources, DB_SYSTEM):
        ports = []
        for key, default in (("port", ENGINE.port), ("portX", ENGINE.extra_ports[0])):
            p = ocimodel.peek(r.props, key)
            ports.append(int(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else default)
        out.append(
            EndpointModel(
                name=r.name,
                urn=r.urn,
                resource=r,
                ports=tuple(ports),
                private_ip=ocimodel.peek_output(r, "ipAddress"),
                engine=ENGINE.name,
                subnet_id=ocimodel.peek(r.props, "subnetId"),
                nsg_ids=tuple(x for x in ocimodel.items(ocimodel.peek(r.props, "nsgIds")) if isinstance(x, str)),
                note="a MySQL HeatWave DB system has only a private endpoint",
            )
        )
    return out


def backup_problem(resource: Any) -> str | None:
    """db-backups-enabled for a DB system: backups on, unless the shape is one OCI backs up by itself."""
    if ocimodel.value(resource, "shapeName") in AUTOMATIC_BACKUP_SHAPES:
        return None
    if ocimodel.truthy(ocimodel.get(ocimodel.value(resource, "backupPolicy"), "isEnabled", False)):
        return None
    return (
        "automatic backups are not enabled; set backup_policy=MysqlDbSystemBackupPolicyArgs("
        "is_enabled=True, retention_in_days=7)"
    )


# What one AD of the offline mock region offers (every shape the config accepts, from its examples).
MOCK_SHAPES = frozenset(
    {
        FREE_SHAPE,
        *(f"MySQL.{n}" for n in (2, 4, 8, 16, 32, 48, 64)),
        "MySQL.VM.Standard.E3.1.8GB",
        "MySQL.VM.Standard.E3.1.16GB",
        "MySQL.VM.Standard.E4.1.8GB",
        "MySQL.HeatWave.VM.Standard",
        "MySQL.HeatWave.VM.Standard.E3",
    }
)


def mock_outputs(type_token: str, inputs: Any, private_ip: str = "10.0.1.2") -> dict | None:
    """A created DB system as the provider returns it (labctl/offline.py), or None for another type."""
    if type_token != DB_SYSTEM:
        return None
    state = dict(inputs)
    state.update(
        {
            "ipAddress": private_ip,
            "endpoints": [{"ipAddress": private_ip, "port": inputs.get("port", ENGINE.port), "hostname": ""}],
            "mysqlVersion": "9.1.0",
            "state": "ACTIVE",
        }
    )
    return state


def mock_invoke(token: str, args: Any, region: str = "mock-1", offered: Any = None) -> dict | None:
    """The shapes one AD offers (``offered``: their names; the offline mock cloud decides), or None."""
    if token != SHAPES_TOKEN:
        return None
    names = sorted(MOCK_SHAPES if offered is None else offered)
    return {
        "compartmentId": args.get("compartmentId", ""),
        "availabilityDomain": args.get("availabilityDomain"),
        "id": "shapes",
        "shapes": [{"name": n, "isSupportedFors": ["DBSYSTEM"]} for n in names],
    }


# Elastic sizing (labctl/sizing.py): facts of the OCI Terraform provider that pulumi-oci 5.5.0 wraps.
_PROVIDER = "terraform-provider-oci v8.28.0 internal/service/mysql/mysql_mysql_db_system_resource.go"
SIZING: tuple[dict[str, Any], ...] = (
    {
        "key": "dbShape",
        "resource_type": DB_SYSTEM,
        "prop": "shapeName",
        "in_place": True,
        "source": f"{_PROVIDER}:54 `shape_name` Required, no ForceNew; sent in UpdateDbSystem by Update (:1653, "
        "shape_name at :1871)",
    },
    {
        "key": "dbStorageGbs",
        "resource_type": DB_SYSTEM,
        "prop": "dataStorageSizeInGb",
        "in_place": True,
        "source": f"{_PROVIDER}:237 `data_storage_size_in_gb` Optional+Computed, no ForceNew; sent in UpdateDbSystem "
        "by Update (:1653, at :1715)",
        "note": "MySQL.Free has a fixed 50 GB (config refuses another size)",
    },
)


def _adapter() -> Any:
    from engines import mysqlcheck

    return mysqlcheck.adapter()


# --- cost (labctl/estimate.py) ---------------------------------------------------------------------------------
# Prices in labctl/data/prices.json "mysql" (each figure with its source), shapes in labctl/data/shapes.json "mysql".


def price_shape(name: str, shape: str, storage_gbs: float, free: Any) -> tuple[list[Any], list[str]]:
    """Monthly lines of one MySQL HeatWave DB system (labctl/estimate.py ``CostLine``s); second value: source ids.
    ``free`` is the tenancy's ``estimate.FreeTier``: MySQL.Free takes its one free DB system."""
    from labctl import estimate

    table = estimate.price_table()["mysql"]
    hours = estimate.hours_per_month()
    sources = list(table["sources"])
    if shape == table["free_shape"]:
        if free.take("mysql_free_systems", 1) >= 1:
            return [
                estimate.CostLine(name, DB_SYSTEM, f"{shape} DB system", 1, "DB system", 0.0, 0.0, True, "Always Free"),
                estimate.CostLine(
                    name, DB_SYSTEM, "DB storage", storage_gbs, "GB-month", 0.0, 0.0, True, "included (50 GB)"
                ),
            ], sources
        return [
            estimate.CostLine(
                name,
                DB_SYSTEM,
                f"{shape} DB system",
                1,
                "DB system",
                0.0,
                0.0,
                False,
                f"over the Always Free limit of {int(free.limits['mysql_free_systems'])} MySQL.Free per tenancy; "
                "OCI refuses to create it: use a paid shape (MySQL.2) or another tenancy",
                blocked=True,
            )
        ], sources
    m = re.match(table["ecpu_shape_pattern"], shape)
    if not m or shape not in estimate.known_shapes(
        ENGINE.name
    ):  # MySQL.999 is no shape: unknown, never 999 ECPUs' worth
        return [
            estimate.CostLine(
                name, DB_SYSTEM, f"{shape} DB system", 1, "DB system", 0.0, 0.0, False, estimate.NOT_PRICED
            )
        ], sources
    ecpus = int(m["ecpus"])
    lines = estimate._line(name, DB_SYSTEM, f"{shape} ECPU", ecpus * hours, "ECPU-hour", table["ecpu_hour"], 0.0)
    lines += estimate._line(name, DB_SYSTEM, "DB storage", storage_gbs, "GB-month", table["storage_gb_month"], 0.0)
    return lines, sources


def price_lines(resource: Any, free: Any) -> tuple[list[Any], list[str]]:
    """The lines of one declared resource of this engine (only the DB system costs anything)."""
    if resource.resource_type != DB_SYSTEM:
        return [], []
    props = resource.props or {}
    try:
        storage = float(props.get("dataStorageSizeInGb") or 50.0)
    except (TypeError, ValueError):
        storage = 50.0
    return price_shape(resource.name, str(props.get("shapeName", "")), storage, free)


def backup_and_deletion(args: Any) -> tuple[Any, Any]:
    """The ``backup_policy`` and ``deletion_policies`` to send for ``args.shape`` (None: leave the property out).

    Always Free (MySQL.Free): neither. OCI refuses the create with "Cannot specify backup policy with 'CreateDbSystem'
    operation for an Always Free DB system" (quoted in public configs that then leave it out); the public apply log of
    mlinxfeld/terraform-oci-fk-heatwave (training/lesson1_free_tier_mds/README.md: plan shows `backup_policy (known
    after apply)` and `deletion_policy (known after apply)`, "Creation complete after 11m40s") creates a MySQL.Free
    system with neither, and its destroy shows what the service set: backups enabled, retention_in_days = 1,
    deletion_policy RETAIN / SKIP_FINAL_BACKUP / not protected. No public MySQL.Free config that sends a
    deletion_policy is shown to apply, so none is sent. The provider sends each only when set
    (terraform-provider-oci v8.28.0 internal/service/mysql/mysql_mysql_db_system_resource.go:1355 backup_policy,
    :1444 deletion_policy; both Optional+Computed at :83 and :284, so leaving them out causes no diff later).
    """
    import pulumi
    import pulumi_oci as oci

    from components import ocimods

    ocimods.use("mysql", "mysql_db_system")  # only the modules used are imported (components/ocimods.py)
    if args.shape == FREE_SHAPE:
        if args.deletion_protection:
            pulumi.log.warn(
                f"dbDeletionProtection is not sent for {args.shape}: no public Always Free config shows OCI accepting "
                "a deletion policy at create; turn it on in the OCI console (DB system > Edit > Delete protection)"
            )
        return None, None
    backup = oci.mysql.MysqlDbSystemBackupPolicyArgs(is_enabled=True, retention_in_days=args.backup_retention_days)
    deletion = [
        oci.mysql.MysqlDbSystemDeletionPolicyArgs(
            is_delete_protected=args.deletion_protection,
            automatic_backup_retention="DELETE",
            final_backup="SKIP_FINAL_BACKUP",
        )
    ]
    return backup, deletion


def build(db: Any, name: str, args: Any) -> Any:
    """Declare the MySQL HeatWave DB system as a child of the Database component ``db``."""
    import pulumi
    import pulumi_oci as oci

    from components import ocimods
    from components.database import DatabaseEndpoint

    ocimods.use("mysql", "mysql_db_system")  # only the modules used are imported (components/ocimods.py)
    backup_policy, deletion_policies = backup_and_deletion(args)
    system = oci.mysql.MysqlDbSystem(
        f"{name}-mysql",
        compartment_id=args.compartment_id,
        availability_domain=args.availability_domain,
        subnet_id=args.subnet_id,
        shape_name=args.shape,
        data_storage_size_in_gb=args.storage_gbs,
        admin_username=args.admin_user,
        admin_password=db.admin_password,
        hostname_label=HOSTNAME_LABEL,
        port=ENGINE.port,
        port_x=ENGINE.extra_ports[0],
        is_highly_available=False,
        display_name=f"{args.name_prefix}-mysql",
        description="oci-dblab: MySQL HeatWave DB system, private subnet only",
        backup_policy=backup_policy,
        deletion_policies=deletion_policies,
        # Always sent, ACTIVE too: `state` is Optional+Computed (terraform-provider-oci v8.28.0
        # internal/service/mysql/mysql_mysql_db_system_resource.go:821-830), so leaving it out would keep the last
        # value and `labctl class start` could never start a stopped system. A change is an in-place update that
        # calls StartDbSystem / StopDbSystem (same file :1245-1272, shutdown_type default FAST :3519-3526).
        state=args.state,
        freeform_tags=args.tags,
        opts=pulumi.ResourceOptions(
            parent=db,
            # The provider replaces the whole DB system (and its data) when admin_password changes.
            # Ignore it after creation; rotate the password in MySQL instead (README, "Changing the password").
            # The AD is chosen on every run (components/lookups.py placement) and is ForceNew
            # (mysql_mysql_db_system_resource.go:43-46): an existing DB system (and its data) stays where it is even
            # if the choice changes, e.g. when another AD starts to offer the shape.
            ignore_changes=["adminPassword", "availabilityDomain"],
        ),
    )
    hostname = pulumi.Output.concat(HOSTNAME_LABEL, ".", args.subnet_domain)
    return DatabaseEndpoint(resource_id=system.id, private_ip=system.ip_address, port=ENGINE.port, hostname=hostname)


ENGINE = Engine(
    name="mysql",
    family="mysql",
    description="MySQL HeatWave DB system (managed MySQL, oci.mysql.MysqlDbSystem)",
    port=3306,
    extra_ports=(33060,),  # MySQL X protocol
    default_shape=FREE_SHAPE,
    shape_pattern=r"MySQL\.(Free|[0-9]+|VM\.Standard\.E[2-9]\.[0-9]+\.[0-9]+GB|HeatWave\.VM\.Standard(\.E[2-9])?)",
    example_shape=FREE_SHAPE,
    always_free_shape=FREE_SHAPE,
    # OCI refuses any backup policy when it creates an Always Free DB system ("Cannot specify backup policy with
    # 'CreateDbSystem' operation for an Always Free DB system"; components/config.py cites where it is quoted)
    free_shape_refuses_backup_policy=True,
    # create duration of the DB system (labctl plan's critical path); its source ids are in labctl/data/durations.json
    durations={
        DB_SYSTEM: {
            "seconds": 750,
            "sources": ["steampipe-mysql-logs", "project-measure"],
            "note": "12.5 min, middle of the 11-14 min reported for MySQL.Free; a paid 50 GB DB system measured "
            "8 min 34 s and over 11 min 30 s",
        }
    },
    min_storage_gbs=50,
    max_storage_gbs=131072,
    # The Always Free DB system comes with exactly 50 GB of storage.
    fixed_storage_gbs={FREE_SHAPE: 50},
    default_admin_user="admin",
    # Usernames MySQL HeatWave refuses for the administrator (OCI documentation, "Creating a DB System").
    reserved_users=frozenset(
        {
            "administrator",
            "ociadmin",
            "ocirpl",
            "ocidbm",
            "mysql.sys",
            "mysql.session",
            "mysql.infoschema",
            "root",
        }
    ),
    reserved_db_names=frozenset({"mysql", "sys", "information_schema", "performance_schema"}),
    # MySQL HeatWave admin password: 8-32 characters with a digit, a lower- and an uppercase letter and a special
    # character, not containing the user name (OCI documentation, "Creating a DB System", Administrator credentials).
    password_problem=password_rule(8, 32),
    password_specials=GENERATED_PASSWORD_SPECIALS,
    ssl_mode="REQUIRED",
    ssl_modes=("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"),  # engines/mysqlcheck.py tls_context
    url_scheme="mysql",
    hostname_label=HOSTNAME_LABEL,
    resource_types=frozenset({DB_SYSTEM, SHAPES_TOKEN}),
    endpoint_type=DB_SYSTEM,
    server_label="MySQL",
    lab_concepts="a MySQL HeatWave DB system has only a private IP in the private subnet; it is reached through the "
    "app VM",
    shapes_token=SHAPES_TOKEN,  # pulumi_oci 5.5.0 mysql/get_shapes.py
    # MySQL HeatWave publishes its DB system metrics to namespace oci_mysql_database, one stream per DB system with
    # dimension resourceId = the DB system's OCID (OCI docs, HeatWave "Metrics",
    # https://docs.oracle.com/iaas/mysql-database/doc/metrics.html: CPUUtilization, MemoryUtilization,
    # DbVolumeUtilization (%), CurrentConnections, ActiveConnections, BackupFailure (0 OK, 1 FAILED), ...; the same
    # names in Datadog's oci_mysql_database integration, docs.datadoghq.com/integrations/oci-mysql-database).
    monitoring_namespace="oci_mysql_database",
    metrics={
        "cpu": "CPUUtilization",
        "memory": "MemoryUtilization",
        "storage": "DbVolumeUtilization",
        "connections": "CurrentConnections",
        "backup_failure": "BackupFailure",
    },
    # max_connections is shape-dependent on HeatWave ("User-Configurable Shape-Dependent System Variables": it
    # "ha[s] different default, minimum and maximum values for each shape"), but no per-shape figure for the OCI
    # shapes (MySQL.Free, MySQL.<n>) could be read from a public source while this was written, so none is
    # recorded: no number is guessed. Add a shape here with its source to get its connections alarm.
    max_connections={},
    free_pools={"mysql_free_systems": 1},
    paid_shape="MySQL.2",  # 2 ECPUs: the smallest ECPU shape (labctl/data/shapes.json, prices.json)
    sizing={"facts": SIZING},
    local_server="mariadb",
    stop_via="the DB system's state ACTIVE|INACTIVE (pulumi_oci 5.5.0 mysql/mysql_db_system.py:129)",
    build=build,
    adapter=_adapter,  # the mysql family's check adapter (engines/mysqlcheck.py, pymysql)
    endpoints=endpoints,
    backup_problem=backup_problem,
    mock_outputs=mock_outputs,
    mock_invoke=mock_invoke,
    mock_shapes=MOCK_SHAPES,
    price_lines=price_lines,
    price_shape=price_shape,
)
