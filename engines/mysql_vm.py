"""``mysql-vm``: MySQL 8.0 from Oracle Linux 9 AppStream on a private DB VM (the shared parts: engines/vmdb.py).

Package: ``mysql-server`` is MySQL 8.0 in Oracle Linux 9's AppStream (a non-modular package in EL9; Oracle Linux
docs, "Application Stream Module Life Cycle", Oracle Linux 9 application streams: MySQL 8.0; EL9 errata list it as
mysql-server-8.0.x-1.el9, e.g. ALSA-2025:23109 mysql-server-8.0.44-1.el9_7). Its systemd unit is ``mysqld``.
"""

from __future__ import annotations

from engines import mysql, vmdb
from engines.vmdb import Flavor

FLAVOR = Flavor(
    engine="mysql-vm",
    family="mysql",
    package="mysql-server",
    service="mysqld",
    port=3306,
    config_section="mysqld",
    # MySQL 8.0 loads the X Plugin and listens on 33060 by default (MySQL 8.0 reference manual, "X Plugin
    # Options and Variables", --mysqlx=OFF disables it): the lab opens one port, so X is off.
    disable_x_protocol=True,
)

ENGINE = vmdb.vm_engine(
    FLAVOR,
    description="MySQL 8.0 from Oracle Linux 9 AppStream on a private DB VM (no public IP; TLS; VCN-only admin)",
    reserved_users=frozenset({"root", "mysql.sys", "mysql.session", "mysql.infoschema"}),
    reserved_db_names=frozenset({"mysql", "sys", "information_schema", "performance_schema"}),
    ssl_mode="REQUIRED",
    url_scheme="mysql",
    server_label="MySQL",
    adapter=lambda: mysql.ENGINE.adapter(),  # the mysql family's check adapter (the HeatWave engine's)
)
