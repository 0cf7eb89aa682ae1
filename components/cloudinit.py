"""Pure rendering of the app VM's cloud-init user data."""

from __future__ import annotations

import base64

APP_USER = "opc"  # the default user of Oracle Linux platform images
APP_DIR = f"/home/{APP_USER}/app"


def render_cloud_init(app_dir: str = APP_DIR, user: str = APP_USER) -> str:
    """#cloud-config that installs a MySQL client and creates the directory that will hold ``.env``."""
    return "\n".join(
        [
            "#cloud-config",
            "package_update: false",
            "packages:",
            "  - mysql",  # Oracle Linux 9 AppStream: the MySQL client (mysql, mysqldump)
            "runcmd:",
            f"  - [install, -d, -m, '0700', -o, {user}, -g, {user}, {app_dir}]",
            "",
        ]
    )


def user_data_b64(app_dir: str = APP_DIR, user: str = APP_USER) -> str:
    """The cloud-init document base64-encoded, as OCI's ``user_data`` metadata expects it."""
    return base64.b64encode(render_cloud_init(app_dir, user).encode()).decode()
