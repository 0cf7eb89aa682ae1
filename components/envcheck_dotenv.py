""".env rendering for the EnvFile provider: the app's settings as one ``KEY='value'`` line each.

Every engine writes the same keys (``engines.base.DOTENV_KEYS``: DB_ENGINE, DB_HOST, DB_PORT, DB_NAME, DB_USER,
DB_PASSWORD, DB_SSL_MODE, DATABASE_URL). Pure: no Pulumi, no network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engines.base import DOTENV_KEYS, Engine, database_url

# python-dotenv (and docker compose, and most others) expand ${NAME} even inside quotes, with no escape.
DOTENV_INTERPOLATION_RE = re.compile(r"\$\{[^}]*\}")


def quote_dotenv_value(value: str) -> str:
    """Single-quote ``value`` for a .env file: backslash and single quote are escaped, nothing else is special.

    python-dotenv decodes exactly ``\\\\`` and ``\\'`` inside single quotes, so every other character (``#``,
    ``$``, ``"``, ``=``, spaces, newlines) survives as itself. ``${...}`` cannot be escaped in any dotenv dialect
    that interpolates, so such values are refused (see ``dotenv_problem``).
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dotenv_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be written under ``key`` (the value itself is never quoted back), or None."""
    if DOTENV_INTERPOLATION_RE.search(value):
        return (
            f"{key} contains '${{…}}', which dotenv parsers expand as a variable even inside quotes; "
            "use a value without '${' (for generated passwords, leave '$' or '{' out of the special characters)"
        )
    if "\x00" in value:
        return f"{key} contains a NUL character, which no .env file can carry"
    return None


def render_dotenv(values: Mapping[str, str]) -> str:
    """The .env text for ``values`` (insertion order kept), one ``KEY='value'`` line each, with a header."""
    lines = ["# Written by oci-dblab (EnvFile). Holds the app user's password: keep it mode 0600, never commit it."]
    for key, value in values.items():
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise ValueError(f"invalid .env key {key!r}")
        problem = dotenv_problem(key, value)
        if problem:
            raise ValueError(problem)
        lines.append(f"{key}={quote_dotenv_value(value)}")
    return "\n".join(lines) + "\n"


def env_values(
    *,
    engine: Engine,
    db_host: str,
    db_port: int,
    db_name: str,
    app_user: str,
    app_password: str,
    ssl_mode: str,
) -> dict[str, str]:
    """The eight settings the app reads (``engines.base.DOTENV_KEYS``), the same keys for every engine, in a stable
    order. DB_USER is the app user, never the admin; DATABASE_URL is built by the engine (its scheme, user and
    password percent-encoded, the TLS mode as a query parameter)."""
    values = {
        "DB_ENGINE": engine.name,
        "DB_HOST": db_host,
        "DB_PORT": str(db_port),
        "DB_NAME": db_name,
        "DB_USER": app_user,
        "DB_PASSWORD": app_password,
        "DB_SSL_MODE": ssl_mode,
        "DATABASE_URL": database_url(engine.url_scheme, db_host, db_port, db_name, app_user, app_password, ssl_mode),
    }
    assert tuple(values) == DOTENV_KEYS
    return values
