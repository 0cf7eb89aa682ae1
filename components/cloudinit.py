"""Pure rendering of the app VM's cloud-init user data."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import engines

APP_USER = "opc"  # the default user of Oracle Linux platform images
APP_DIR = f"/home/{APP_USER}/app"


def render_cloud_init(app_dir: str = APP_DIR, user: str = APP_USER, packages: Sequence[str] | None = None) -> str:
    """#cloud-config that installs the engine's client (``Engine.app_packages``; None: the default engine's) and
    creates the directory that will hold ``.env``."""
    if packages is None:
        packages = engines.get(engines.DEFAULT).app_packages()
    return "\n".join(
        [
            "#cloud-config",
            "package_update: false",
            *(["packages:", *(f"  - {p}" for p in packages)] if packages else []),
            "runcmd:",
            f"  - [install, -d, -m, '0700', -o, {user}, -g, {user}, {app_dir}]",
            "",
        ]
    )


def user_data_b64(app_dir: str = APP_DIR, user: str = APP_USER, packages: Sequence[str] | None = None) -> str:
    """The cloud-init document base64-encoded, as OCI's ``user_data`` metadata expects it."""
    return base64.b64encode(render_cloud_init(app_dir, user, packages).encode()).decode()
