"""The engine seam (issue 11): engines live in engines/, the registry is consistent, and the modules the policy pack
imports stay pure (stdlib only at import time), so they load where only pulumi-policy is installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import engines
from components import ocimodel
from engines.base import DOTENV_KEYS, Engine

ROOT = Path(__file__).resolve().parent.parent

BLOCKED = ("pulumi", "pulumi_oci", "pulumi_random", "pulumi_policy", "pymysql", "pg8000", "paramiko", "cryptography")

BLOCKER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, Blocker())
for module in json.loads(sys.argv[2]):
    __import__(module)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
"""


def _import_blocked(modules: list[str], blocked: tuple[str, ...] = BLOCKED) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, json.dumps(blocked), json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def _engine_modules() -> list[str]:
    return sorted(f"engines.{p.stem}" for p in (ROOT / "engines").glob("*.py") if p.stem != "__init__")


def test_the_registry_and_every_engine_module_import_without_pulumi_or_drivers():
    done = _import_blocked(["engines", *_engine_modules()])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_blocker_can_fail():
    """The check above proves something: a module that imports pulumi at top level is refused."""
    done = _import_blocked(["components.database"])
    assert done.returncode != 0 and "blocked for this test: pulumi" in done.stderr


def test_every_engine_is_registered_under_its_name_and_its_spec_holds_together():
    assert engines.ENGINES and engines.DEFAULT in engines.ENGINES
    for name, engine in engines.ENGINES.items():
        assert isinstance(engine, Engine) and engine.name == name
        assert engine.family in ("mysql", "postgresql")
        assert engine.shape_ok(engine.default_shape) and engine.shape_ok(engine.example_shape), name
        assert not engine.shape_ok(engine.default_shape + "x"), name  # a full match, not a prefix
        # a DB-VM engine's endpoint is a core instance: a neutral type (the app VM is one too), claimed by no engine
        assert engine.endpoint_type in engine.resource_types or engine.endpoint_type == ocimodel.INSTANCE, name
        assert engine.min_storage_gbs <= engine.max_storage_gbs
        for shape, gbs in engine.fixed_storage_gbs.items():
            assert engine.shape_ok(shape) and engine.min_storage_gbs <= gbs <= engine.max_storage_gbs
        assert engine.default_admin_user.lower() not in engine.reserved_users
        assert engine.password_specials and all(not c.isalnum() for c in engine.password_specials)
        assert name not in engines.PLANNED
        for token in engine.resource_types:
            assert engines.engine_of_type(token) is engine
    # no two engines claim the same type token
    claimed = [t for e in engines.ENGINES.values() for t in e.resource_types]
    assert len(claimed) == len(set(claimed)) and set(claimed) == engines.ENGINE_RESOURCE_TYPES
    assert engines.engine_of_type("oci:Core/vcn:Vcn") is None
    with pytest.raises(KeyError, match="known: "):
        engines.get("no-such-engine")


@pytest.mark.parametrize("name", sorted(engines.ENGINES))
def test_a_generated_style_password_passes_the_rule_and_the_rule_never_echoes(name):
    engine = engines.get(name)
    secret = "Qx7" + engine.password_specials[0] + "zR4" + engine.password_specials[-1] + "mk9T"
    assert engine.password_problem(secret, engine.default_admin_user) is None
    why = engine.password_problem("short", engine.default_admin_user)
    assert why and "short" not in why


def test_database_url_percent_encodes_user_and_password_and_names_the_tls_mode():
    engine = engines.get(engines.DEFAULT)
    url = engine.database_url("10.0.1.5", 3306, "lab", "app", "p@ss:w/rd%")
    assert url.startswith(f"{engine.url_scheme}://app:p%40ss%3Aw%2Frd%25@10.0.1.5:3306/lab?")
    assert re.search(r"\?(ssl-mode|sslmode)=", url)
    assert len(DOTENV_KEYS) == 8 and DOTENV_KEYS[-1] == "DATABASE_URL"
