"""Stack settings files (``Pulumi.<stack>.yaml``): where they are, and their config with secrets never decrypted.

The reading itself, as the Pulumi CLI reads it, lives in ``labctl/cliconfig.py``; ``load_stack_config`` is the
plain view (full keys -> the strings the program sees, plus the encrypted keys) for callers that merge later.
"""

from __future__ import annotations

from pathlib import Path

# Stands in for every `secure:` value: an offline plan never decrypts anything. It satisfies the password rule so
# that a stack with an encrypted dbPassword plans like the real one would.
SECRET_PLACEHOLDER = "Offline#Secret0-placeholder"


class StackFileError(ValueError):
    pass


def load_stack_config(path: Path | str) -> tuple[dict[str, str], list[str]]:
    """Config map (full keys -> string values) and the secret keys of a stack settings file."""
    from labctl.cliconfig import read_stack_file

    values = read_stack_file(path)
    return {k: v.text for k, v in values.items()}, sorted(k for k, v in values.items() if v.secure)


def stack_file(project_dir: Path, stack: str) -> Path:
    return Path(project_dir) / f"Pulumi.{stack}.yaml"


def with_key_lines(message: str, path: Path | str) -> str:
    """``message`` (a ConfigError's text) with each problem line ``  - oci-dblab:<key>: ...`` prefixed by
    ``<path>:<line>:`` where the stack file sets that key (a key the file does not set keeps its line as it is)."""
    import re

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return message
    where: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s+([A-Za-z0-9_-]+:[A-Za-z0-9_]+)\s*:", line)
        if m:
            where.setdefault(m[1], n)
    out = []
    for line in message.splitlines():
        m = re.match(r"^(\s+- )([A-Za-z0-9_-]+:[A-Za-z0-9_]+):", line)
        if m and m[2] in where:
            line = f"{m[1]}{path}:{where[m[2]]}: {line[len(m[1]) :]}"
        out.append(line)
    return "\n".join(out)
