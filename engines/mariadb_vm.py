"""``mariadb-vm``: MariaDB from Oracle Linux 9 AppStream on a private DB VM (the shared parts: engines/vmdb.py).

Package: ``mariadb-server`` (MariaDB 10.5 in Oracle Linux 9's AppStream; Oracle Linux docs, "Application Stream
Module Life Cycle", Oracle Linux 9 application streams: MariaDB 10.5). Its systemd unit is ``mariadb``; it reads
the ``[mariadb]`` option group (MariaDB knowledge base, "Configuring MariaDB with Option Files": option groups).
"""

from __future__ import annotations

from engines import mysql, vmdb
from engines.vmdb import Flavor

FLAVOR = Flavor(
    engine="mariadb-vm",
    family="mysql",
    package="mariadb-server",
    service="mariadb",
    port=3306,
    config_section="mariadb",
)

ENGINE = vmdb.vm_engine(
    FLAVOR,
    description="MariaDB from Oracle Linux 9 AppStream on a private DB VM (no public IP; TLS; VCN-only admin)",
    # MariaDB 10.4+ creates root, mysql and mariadb.sys (MariaDB knowledge base, "Authentication from MariaDB 10.4")
    reserved_users=frozenset({"root", "mysql", "mariadb.sys"}),
    reserved_db_names=frozenset({"mysql", "sys", "information_schema", "performance_schema"}),
    ssl_mode="REQUIRED",
    url_scheme="mysql",
    server_label="MariaDB",
    client_packages=("mariadb",),  # the MariaDB client of Oracle Linux 9 AppStream (mariadb, mariadb-dump)
    adapter=lambda: mysql.ENGINE.adapter(),  # the mysql family's check adapter (the HeatWave engine's)
)
