"""Database engines the lab knows, as plain data.

This table is shared by config validation (pure) and the Database tier (resource code), so that adding an
engine is: one row here, one builder in ``components/database.py``; no other tier changes.
"""

from __future__ import annotations

from dataclasses import dataclass


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
)

ENGINES: dict[str, EngineSpec] = {MYSQL.name: MYSQL}

# Engines planned but not built yet: named so the error for them can say so instead of "unknown".
PLANNED_ENGINES: dict[str, str] = {
    "mysql-vm": "self-managed MySQL/MariaDB on a VM in the private subnet",
    "postgresql": "OCI Database with PostgreSQL",
    "nosql": "Oracle NoSQL Database Cloud",
}
