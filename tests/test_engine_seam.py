"""The engine seam (issue 11): engines live in engines/, the registry is consistent, and the modules the policy pack
imports stay pure (stdlib only at import time), so they load where only pulumi-policy is installed."""

from __future__ import annotations

import ast
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
BEFORE = set(sys.modules)
BLOCKED = set(json.loads(sys.argv[1]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, Blocker())
for module in json.loads(sys.argv[2]):
    __import__(module)
OURS = {"components", "engines", "policy", "__main__"}
NEW = {m.split(".")[0] for m in set(sys.modules) - BEFORE}
print(json.dumps(sorted(NEW - set(sys.stdlib_module_names) - OURS)))
"""


def _import_blocked(modules: list[str], blocked: tuple[str, ...] = BLOCKED) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", "-c", BLOCKER, json.dumps(blocked), json.dumps(modules)],  # -S: no site-packages
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def _engine_modules() -> list[str]:
    return sorted(f"engines.{p.stem}" for p in (ROOT / "engines").glob("*.py") if p.stem != "__init__")


def test_the_registry_and_every_engine_module_import_without_pulumi_or_drivers():
    """Blocked or not, importing them loads nothing but the standard library and the project's own packages."""
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


# --- nothing outside an engine's module names it ------------------------------------------------------------------

NEUTRAL_SOURCES = ("components", "labctl", "policy")
ENGINE_WORDS = re.compile(r"mysql|mariadb|postgres|psql|heatwave", re.IGNORECASE)
# Files outside engines/ that may name an engine in code, each with the reason. Docstrings and comments are free.
ALLOWED_ENGINE_WORDS: dict[str, str] = {
    "components/config.py": "the config schema's descriptions (Pulumi.yaml's config block is generated from them) tell "
    "the student which shapes each dbEngine takes",
    "labctl/local/servers.py": "the loopback servers that play the engines in `labctl local` (MariaDB, PostgreSQL: "
    "Engine.local_server names them)",
    "labctl/local/command.py": "starts the loopback server the plan's engine asks for (Engine.local_server) and says "
    "how to install it",
    "labctl/savings.py": "cites the DB service's billing page for stopped DB systems (issue 13 savings)",
}


def _neutral_files() -> list[Path]:
    files = [p for d in NEUTRAL_SOURCES for p in sorted((ROOT / d).rglob("*.py"))]
    return [*files, ROOT / "__main__.py"]


def _code_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every identifier and string literal of a module except docstrings: what the code names."""
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    out = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((line, node.value))
        elif isinstance(node, ast.Name):
            out.append((line, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((line, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((line, node.name))
        elif isinstance(node, ast.arg):
            out.append((line, node.arg))
        elif isinstance(node, ast.alias):
            out.append((line, node.name))
    return out


def _engine_module(engine: Engine) -> Path:
    """The module that defines ``engine`` (where its build hook lives, or, for engines made by a shared factory, the
    module the registry imported it from)."""
    for path in (ROOT / "engines").glob("*.py"):
        if re.search(rf"\bname=\"{re.escape(engine.name)}\"", path.read_text(encoding="utf-8")):
            return path
    return ROOT / "engines" / f"{engine.build.__module__.rsplit('.', 1)[-1]}.py"


def test_no_module_outside_an_engine_names_its_resource_types():
    sources = {p: p.read_text(encoding="utf-8") for p in _neutral_files()}
    sources |= {p: p.read_text(encoding="utf-8") for p in (ROOT / "engines").glob("*.py")}
    found = []
    for engine in engines.ENGINES.values():
        owner = _engine_module(engine)
        for token in engine.resource_types:
            found += [
                f"{p.relative_to(ROOT)} names {token}" for p, text in sources.items() if p != owner and token in text
            ]
    assert found == []


def test_no_module_outside_engines_names_an_engine_except_the_allowed_ones():
    found = []
    for path in _neutral_files():
        rel = str(path.relative_to(ROOT))
        if rel in ALLOWED_ENGINE_WORDS:
            continue
        for line, text in _code_texts(ast.parse(path.read_text(encoding="utf-8"))):
            if ENGINE_WORDS.search(text):
                found.append(f"{rel}:{line}: {text[:80]!r}")
    assert found == [], "ask the registry (engines.get(name).<field>) instead of naming an engine:\n" + "\n".join(found)


def test_the_scan_can_fail(tmp_path):
    """The scans read code, not docstrings: a literal naming an engine is caught, a docstring saying it is not."""
    code = '"""Talks about MySQL."""\nPORT = {"mysql": 3306}\n'
    texts = [t for _, t in _code_texts(ast.parse(code))]
    assert "mysql" in texts and not any("MySQL." in t for t in texts)


def test_every_allowed_file_still_needs_its_entry():
    for rel in ALLOWED_ENGINE_WORDS:
        texts = [t for _, t in _code_texts(ast.parse((ROOT / rel).read_text(encoding="utf-8")))]
        assert any(ENGINE_WORDS.search(t) for t in texts), f"{rel} no longer names an engine: drop its allow-list entry"


def test_the_policy_rules_and_the_resource_model_import_where_only_pulumi_policy_is_installed():
    """policy/rules.py runs in the policy pack's own virtualenv: it, components.ocimodel and the registry must import
    with pulumi, pulumi_oci, the drivers and paramiko unavailable."""
    done = _import_blocked(["policy.rules", "components.ocimodel", "engines"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
