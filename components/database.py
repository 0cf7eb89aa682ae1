"""Database tier: engine dispatch, and the MySQL HeatWave DB system in the private subnet.

An engine builder takes the component and its args and returns a ``DatabaseEndpoint``; the other tiers see only
that. Adding an engine (self-managed MySQL on a VM, OCI PostgreSQL, NoSQL) means a row in
``components/engines.py`` and a builder in ``BUILDERS``: nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_oci as oci
import pulumi_random as random

from components import ocimods
from components.engines import ENGINES, EngineSpec

ocimods.use("mysql", "mysql_db_system")  # only the modules used are imported (components/ocimods.py)

DB_HOSTNAME_LABEL = "mysql"
# Specials MySQL HeatWave accepts and that survive shells, URLs and .env files without surprises.
GENERATED_PASSWORD_SPECIALS = "!#%*+-=?_"


@dataclass(frozen=True)
class DatabaseArgs:
    engine: str
    compartment_id: str
    subnet_id: pulumi.Input[str]
    subnet_domain: pulumi.Input[str]
    availability_domain: str  # chosen by components.lookups.placement
    shape: str
    storage_gbs: int
    admin_user: str
    name_prefix: str
    tags: dict[str, str]
    admin_password: pulumi.Input[str] | None = None  # None: generate one
    app_user: str | None = None  # least-privilege user for the app; its password is generated here
    backup_retention_days: int | None = None  # None: the service's default
    deletion_protection: bool = False


@dataclass
class DatabaseEndpoint:
    """What the other tiers need to know about any engine."""

    resource_id: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    port: int
    hostname: pulumi.Output[str]  # FQDN inside the VCN


class Database(pulumi.ComponentResource):
    """A database in the private subnet, with no public address."""

    engine: EngineSpec
    admin_user: str
    admin_password: pulumi.Output[str]
    app_password: pulumi.Output[str] | None
    endpoint: DatabaseEndpoint
    private_ip: pulumi.Output[str]
    port: int
    hostname: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-dblab:database:Database", name, None, opts)
        self.engine = ENGINES[args.engine]
        self.admin_user = args.admin_user
        if args.admin_password is None:
            self.admin_password = _generated_password(f"{name}-admin-password", self)
        else:
            self.admin_password = pulumi.Output.secret(args.admin_password)
        self.app_password = _generated_password(f"{name}-app-password", self) if args.app_user else None

        self.endpoint = BUILDERS[args.engine](self, name, args)
        self.private_ip = self.endpoint.private_ip
        self.port = self.endpoint.port
        self.hostname = self.endpoint.hostname
        self.register_outputs(
            {
                "privateIp": self.private_ip,
                "port": self.port,
                "hostname": self.hostname,
                "adminUser": self.admin_user,
                "adminPassword": self.admin_password,
            }
        )


def _generated_password(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """A password that meets the MySQL HeatWave rule and survives shells, URLs and .env files."""
    generated = random.RandomPassword(
        name,
        length=24,
        special=True,
        override_special=GENERATED_PASSWORD_SPECIALS,
        min_lower=2,
        min_upper=2,
        min_numeric=2,
        min_special=2,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(generated.result)


def mysql_backup_and_deletion(
    args: DatabaseArgs,
) -> tuple[oci.mysql.MysqlDbSystemBackupPolicyArgs | None, list[oci.mysql.MysqlDbSystemDeletionPolicyArgs] | None]:
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
    if args.shape == ENGINES["mysql"].always_free_shape:
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


def _mysql_heatwave(db: Database, name: str, args: DatabaseArgs) -> DatabaseEndpoint:
    spec = ENGINES["mysql"]
    backup_policy, deletion_policies = mysql_backup_and_deletion(args)
    system = oci.mysql.MysqlDbSystem(
        f"{name}-mysql",
        compartment_id=args.compartment_id,
        availability_domain=args.availability_domain,
        subnet_id=args.subnet_id,
        shape_name=args.shape,
        data_storage_size_in_gb=args.storage_gbs,
        admin_username=args.admin_user,
        admin_password=db.admin_password,
        hostname_label=DB_HOSTNAME_LABEL,
        port=spec.port,
        port_x=spec.extra_ports[0],
        is_highly_available=False,
        display_name=f"{args.name_prefix}-mysql",
        description="oci-dblab: MySQL HeatWave DB system, private subnet only",
        backup_policy=backup_policy,
        deletion_policies=deletion_policies,
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
    hostname = pulumi.Output.concat(DB_HOSTNAME_LABEL, ".", args.subnet_domain)
    return DatabaseEndpoint(resource_id=system.id, private_ip=system.ip_address, port=spec.port, hostname=hostname)


BUILDERS: dict[str, Callable[[Database, str, DatabaseArgs], DatabaseEndpoint]] = {
    "mysql": _mysql_heatwave,
}
