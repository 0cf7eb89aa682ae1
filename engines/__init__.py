"""The database engines of the lab: one module per engine, listed here in a fixed order.

Everything outside this package asks the registry (``get``, ``ENGINES``, ``engine_of_type``) and never names an
engine's resource types, shapes or rules itself (``tests/test_engine_seam.py`` keeps this true). Pure at import time:
stdlib only (engines/base.py, IMPORT RULE).

Adding an engine: README.md, "Adding an engine".
"""

from __future__ import annotations

from engines import mariadb_vm, mysql, mysql_vm, postgresql, postgresql_vm
from engines.base import DOTENV_KEYS, EndpointModel, Engine

ENGINES: dict[str, Engine] = {
    e.name: e for e in (mysql.ENGINE, mysql_vm.ENGINE, mariadb_vm.ENGINE, postgresql_vm.ENGINE, postgresql.ENGINE)
}

DEFAULT = mysql.ENGINE.name  # dbEngine when the stack does not say

# Engines planned but not built yet: named so the error for them can say so instead of "unknown" (README, "Database
# engines": why Oracle NoSQL is not an engine of this lab yet).
PLANNED: dict[str, str] = {
    "nosql": "Oracle NoSQL Database Cloud (reached over a public HTTPS endpoint, not a private IP)",
}

# Every engine-specific type token (resources and invokes): the neutral code never names one of these.
ENGINE_RESOURCE_TYPES: frozenset[str] = frozenset(t for e in ENGINES.values() for t in e.resource_types)


def get(name: str) -> Engine:
    """The engine called ``name`` (the dbEngine value); KeyError names the known ones."""
    try:
        return ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown database engine {name!r}; known: {', '.join(ENGINES)}") from None


def find(value: object) -> Engine | None:
    """The engine a dbEngine config value names, read as the config validation reads it (trimmed, any case; empty:
    the default), or None when it names none (components/config.py reports that with its message)."""
    name = str(value or "").strip().lower() or DEFAULT
    return ENGINES.get(name)


def engine_of_type(type_token: str) -> Engine | None:
    """The engine whose resource (or invoke) type ``type_token`` is, or None for a neutral OCI type."""
    for engine in ENGINES.values():
        if type_token in engine.resource_types:
            return engine
    return None


__all__ = [
    "DEFAULT",
    "DOTENV_KEYS",
    "ENGINES",
    "ENGINE_RESOURCE_TYPES",
    "PLANNED",
    "Engine",
    "EndpointModel",
    "engine_of_type",
    "find",
    "get",
]
