"""``postgresql-vm``: PostgreSQL from Oracle Linux 9 AppStream on a private DB VM (shared parts: engines/vmdb.py).

Package: ``postgresql-server`` (PostgreSQL 13, the default stream of Oracle Linux 9's AppStream; Oracle Linux docs,
"Application Stream Module Life Cycle", Oracle Linux 9 application streams: PostgreSQL 13; the RHEL 9 AppStream
listing shows "postgresql-server.x86_64 : The programs needed to create and run a PostgreSQL server"). Its systemd
unit is ``postgresql``, its data directory ``/var/lib/pgsql/data``, initialised by ``postgresql-setup --initdb``.
"""

from __future__ import annotations

from engines import pgcheck, vmdb
from engines.vmdb import Flavor

FLAVOR = Flavor(
    engine="postgresql-vm",
    family="postgresql",
    package="postgresql-server",
    service="postgresql",
    port=5432,
)

ENGINE = vmdb.vm_engine(
    FLAVOR,
    description="PostgreSQL from Oracle Linux 9 AppStream on a private DB VM (no public IP; TLS; VCN-only admin)",
    # the family's reserved role names (engines/pgcheck.py: postgres, public, none, current_user, ..., any pg_*):
    # cloud-init's CREATE ROLE would fail on the DB VM at boot, so config refuses them before anything is made
    reserved_users=pgcheck.reserved_roles(),
    reserved_db_names=frozenset({"postgres", "template0", "template1"}),
    # libpq sslmode: "require" encrypts without verifying the self-signed certificate (the check reports its
    # SHA-256 fingerprint instead)
    ssl_mode="require",
    url_scheme="postgresql",
    server_label="PostgreSQL",
    adapter=pgcheck.adapter,  # the postgresql family's check adapter (pg8000 over the tunnel)
)
