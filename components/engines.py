"""Database engines the lab knows, as plain data.

This table is shared by config validation (pure) and the Database tier (resource code), so that adding an
engine is: one row here, one builder in ``components/database.py``; no other tier changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineSpec:
    """What the rest of the program needs to know about a database engine."""

    name: str
    description: str
    port: int
    extra_ports: tuple[int, ...]
    default_shape: str
    shape_prefix: str
    always_free_shape: str | None
    min_storage_gbs: int
    max_storage_gbs: int
    fixed_storage_gbs: dict[str, int]
    reserved_admin_users: frozenset[str]
    example_shape: str
    # Invoke token listing the shapes one availability domain offers this engine (components/lookups.py places the DB
    # by it); None: the DB goes to the app VM's availability domain.
    shapes_token: str | None = None
    # Monitoring (components/operations.py builds the alarms from these): the metric namespace the engine's service
    # publishes to, its metric name for each alarm role the operations tier knows (cpu, memory, storage,
    # connections, backup_failure; a role left out gets no alarm), and the connection limit of each shape where a
    # source gives it (a shape left out gets no connections alarm, and a warning says so).
    monitoring_namespace: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    max_connections: dict[str, int] = field(default_factory=dict)


MYSQL = EngineSpec(
    name="mysql",
    description="MySQL HeatWave DB system (managed MySQL, oci.mysql.MysqlDbSystem)",
    port=3306,
    extra_ports=(33060,),  # MySQL X protocol
    default_shape="MySQL.Free",
    shape_prefix="MySQL.",
    always_free_shape="MySQL.Free",
    min_storage_gbs=50,
    max_storage_gbs=131072,
    # The Always Free DB system comes with exactly 50 GB of storage.
    fixed_storage_gbs={"MySQL.Free": 50},
    # Usernames MySQL HeatWave refuses for the administrator (OCI documentation, "Creating a DB System").
    reserved_admin_users=frozenset(
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
    example_shape="MySQL.Free",
    shapes_token="oci:Mysql/getShapes:getShapes",  # pulumi_oci 5.5.0 mysql/get_shapes.py
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
)

ENGINES: dict[str, EngineSpec] = {MYSQL.name: MYSQL}

# Engines planned but not built yet: named so the error for them can say so instead of "unknown".
PLANNED_ENGINES: dict[str, str] = {
    "mysql-vm": "self-managed MySQL/MariaDB on a VM in the private subnet",
    "postgresql": "OCI Database with PostgreSQL",
    "nosql": "Oracle NoSQL Database Cloud",
}
