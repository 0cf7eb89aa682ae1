"""Database tier: the Database component, its args, passwords, and the dispatch to the engine's builder.

The engine (``engines/<name>.py``, found through the registry ``engines``) declares its resources as children of the
component and returns a ``DatabaseEndpoint``; the other tiers see only that.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

import engines
from engines.base import Engine


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
    state: str = "ACTIVE"  # ACTIVE | INACTIVE: the DB's target state (config dbState, labctl class stop|start)
    # The DB-VM engines (engines/vmdb.py) also need: where the app is (firewalld, pg_hba), the VCN (the admin user's
    # network), the student's SSH key, the lab database's name, and optionally a fixed OS image.
    app_subnet_cidr: str | None = None
    vcn_cidr: str | None = None
    ssh_public_key: str | None = None
    db_name: str | None = None
    image_id: str | None = None


@dataclass
class DatabaseEndpoint:
    """What the other tiers need to know about any engine."""

    resource_id: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    port: int
    hostname: pulumi.Output[str]  # FQDN inside the VCN


class Database(pulumi.ComponentResource):
    """A database in the private subnet, with no public address."""

    engine: Engine
    admin_user: str
    admin_password: pulumi.Output[str]
    app_password: pulumi.Output[str] | None
    endpoint: DatabaseEndpoint
    private_ip: pulumi.Output[str]
    port: int
    hostname: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-dblab:database:Database", name, None, opts)
        self.engine = engines.get(args.engine)
        self.admin_user = args.admin_user
        if args.admin_password is None:
            self.admin_password = _generated_password(f"{name}-admin-password", self, self.engine)
        else:
            self.admin_password = pulumi.Output.secret(args.admin_password)
        self.app_password = _generated_password(f"{name}-app-password", self, self.engine) if args.app_user else None

        self.endpoint = self.engine.build(self, name, args)
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


def _generated_password(name: str, parent: pulumi.Resource, engine: Engine) -> pulumi.Output[str]:
    """A password that meets the engine's rule (24 characters, two of each class, the engine's safe specials) and
    survives shells, URLs and .env files."""
    generated = random.RandomPassword(
        name,
        length=24,
        special=True,
        override_special=engine.password_specials,
        min_lower=2,
        min_upper=2,
        min_numeric=2,
        min_special=2,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(generated.result)
