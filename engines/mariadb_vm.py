"""``mariadb-vm``: MariaDB from Oracle Linux 9 AppStream on a private DB VM (the shared parts: engines/vmdb.py).

Package: ``mariadb-server`` (MariaDB 10.5 in Oracle Linux 9's AppStream; Oracle Linux docs, "Application Stream
Module Life Cycle", Oracle Linux 9 application streams: MariaDB 10.5). Its systemd unit is ``mariadb``; it reads
the ``[mariadb]`` option group (MariaDB knowledge base, "Configuring MariaDB with Option Files": option groups).
"""

from __future__ import annotations

from engines.vmdb import Flavor

FLAVOR = Flavor(
    engine="mariadb-vm",
    family="mysql",
    package="mariadb-server",
    service="mariadb",
    port=3306,
    config_section="mariadb",
)
