"""Read a ``Pulumi.<stack>.yaml`` the way the offline tools need it: config values, with secrets never decrypted."""

from __future__ import annotations

import json
from pathlib import Path

from labctl.inputs import InputFileError, load_yaml, read_input_file

# Stands in for every `secure:` value: an offline plan never decrypts anything. It satisfies the password rule so
# that a stack with an encrypted dbPassword plans like the real one would.
SECRET_PLACEHOLDER = "Offline#Secret0-placeholder"


class StackFileError(ValueError):
    pass


def load_stack_config(path: Path | str) -> tuple[dict[str, str], list[str]]:
    """Config map (full keys -> string values) and the secret keys of a stack settings file."""
    path = Path(path)
    try:
        text = read_input_file(
            path,
            "stack settings",
            "create it with `pulumi stack init <name>` or pass --config FILE (example: --config Pulumi.dev.yaml)",
        )
        doc = load_yaml(text, str(path))
    except InputFileError as e:
        raise StackFileError(str(e)) from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise StackFileError(f"{path}: expected a mapping with a 'config:' section, like Pulumi.dev.yaml")
    config: dict[str, str] = {}
    secret: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET_PLACEHOLDER
            secret.append(key)
        elif isinstance(value, str):
            config[key] = value
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        else:
            config[key] = json.dumps(value)
    return config, secret


def stack_file(project_dir: Path, stack: str) -> Path:
    return Path(project_dir) / f"Pulumi.{stack}.yaml"
