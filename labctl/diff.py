"""``labctl diff``: plan two git revisions offline and summarise what changes, security rules first.

Each revision is checked out in a temporary ``git worktree`` and planned in its own process
(``python -m labctl.worker``), so each plan runs that revision's own ``__main__.py`` and ``components``. No
secrets are needed: ``secure:`` values are replaced by placeholders, never decrypted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import ocimodel
from labctl.offline import REPO_ROOT
from labctl.sizing import for_property
from labctl.stackfile import load_stack_config, stack_file

SECURITY_TYPES = (
    ocimodel.SECURITY_LIST,
    ocimodel.DEFAULT_SECURITY_LIST,
    ocimodel.NSG,
    ocimodel.NSG_RULE,
    ocimodel.ROUTE_TABLE,
    ocimodel.SUBNET,
)
RULE_KEYS = ("ingressSecurityRules", "egressSecurityRules", "routeRules")


class DiffError(RuntimeError):
    pass


@dataclass
class ResourceChange:
    kind: str  # added | removed | changed
    urn: str
    type: str
    name: str
    properties: list[tuple[str, Any, Any]] = field(default_factory=list)  # (path, before, after)
    rules_added: list[str] = field(default_factory=list)
    rules_removed: list[str] = field(default_factory=list)
    ignored: frozenset[str] = frozenset()  # the head's ignoreChanges: a `pulumi up` keeps the old value there

    @property
    def security(self) -> bool:
        return self.type in SECURITY_TYPES


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DiffError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


@contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    sha = git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
    tmp = Path(tempfile.mkdtemp(prefix="labctl-diff-"))
    path = tmp / sha[:12]
    git(repo, "worktree", "add", "--detach", "--quiet", str(path), sha)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)  # no `rm`: this runs on Windows too


def plan_tree(project_dir: Path, stack: str) -> dict[str, Any]:
    """Plan ``project_dir`` (a source tree) in a child process with its own ``components``."""
    config, secret = load_stack_config(stack_file(project_dir, stack))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"config": config, "secretKeys": secret}, f)
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "labctl.worker",
                "--project-dir",
                str(project_dir),
                "--stack",
                stack,
                "--config-json",
                f.name,
            ],
            capture_output=True,
            text=True,
            cwd=str(REPO_ROOT),
            env=env,
            timeout=300,
        )
    finally:
        os.unlink(f.name)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise DiffError(f"planning {project_dir} failed:\n{proc.stderr.strip()[-2000:]}") from None
    if "error" in doc:
        raise DiffError(f"the program of {project_dir} fails for stack {stack}:\n{doc['error']}")
    return doc


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{path}.{k}" if path else k))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{path}[{i}]"))
        return out
    return {path: value}


def describe_rule(rule: dict[str, Any], key: str) -> str:
    """One readable line for a security or route rule."""
    if key == "routeRules":
        return f"route {rule.get('destination')} -> {rule.get('networkEntityId')}"
    proto = {"6": "TCP", "17": "UDP", "1": "ICMP", "all": "ALL"}.get(str(rule.get("protocol")), rule.get("protocol"))
    peer = rule.get("source") if key.startswith("ingress") else rule.get("destination")
    opts = rule.get("tcpOptions") or rule.get("udpOptions") or {}
    ports = ""
    if opts:
        lo, hi = opts.get("min"), opts.get("max")
        ports = f" {lo}" if lo == hi else f" {lo}-{hi}"
    elif proto in ("TCP", "UDP"):
        ports = " all ports"
    direction = "ingress from" if key.startswith("ingress") else "egress to"
    state = " (stateless)" if rule.get("stateless") else ""
    return f"{direction} {peer}: {proto}{ports}{state}"


def compare(base: dict[str, Any], head: dict[str, Any]) -> list[ResourceChange]:
    before = {r["urn"]: r for r in base["resources"]}
    after = {r["urn"]: r for r in head["resources"]}
    changes: list[ResourceChange] = []
    for urn in sorted(set(before) | set(after)):
        a, b = before.get(urn), after.get(urn)
        if a is None:
            assert b is not None
            changes.append(ResourceChange("added", urn, b["type"], b["name"]))
            continue
        if b is None:
            changes.append(ResourceChange("removed", urn, a["type"], a["name"]))
            continue
        fa, fb = flatten(a["inputs"]), flatten(b["inputs"])
        props = [(p, fa.get(p), fb.get(p)) for p in sorted(set(fa) | set(fb)) if fa.get(p) != fb.get(p)]
        if not props:
            continue
        ch = ResourceChange(
            "changed", urn, b["type"], b["name"], props, ignored=frozenset(b.get("ignoreChanges") or ())
        )
        for key in RULE_KEYS:
            old = {describe_rule(r, key) for r in a["inputs"].get(key, []) or []}
            new = {describe_rule(r, key) for r in b["inputs"].get(key, []) or []}
            ch.rules_added += sorted(new - old)
            ch.rules_removed += sorted(old - new)
        changes.append(ch)
    # Security-relevant changes first, then added, removed, changed; stable within.
    order = {"added": 1, "removed": 2, "changed": 3}
    return sorted(changes, key=lambda c: (not c.security, order[c.kind], c.type, c.name))


WORKTREE = "WORKTREE"  # --head WORKTREE: the working directory as it is, uncommitted edits included


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def code(value: Any, table: bool = False) -> str:
    """``value`` as a Markdown code span that nothing in it can break (CommonMark 6.1 code spans; GFM tables).

    A backtick run inside is fenced by a longer run (padded with a space when the text starts or ends with a
    backtick); line breaks become ``↵`` (a code span cannot hold one, a table row ends at one); in a table ``|`` is
    escaped as ``\\|``, which GFM reads as a literal pipe even inside a code span.
    """
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "↵")
    if text == "":
        return "(empty)"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    out = f"{fence}{pad}{text}{pad}{fence}"
    return out.replace("|", "\\|") if table else out


def _sizing(rtype: str, path: str, name: str = "") -> str:
    """ " (<key>: in place)" for a property labctl/sizing.py knows of the resource ``name``, else ""."""
    fact = for_property(rtype, path, name)
    return f" ({fact.key}: {fact.verdict})" if fact else ""


def _ignored(c: ResourceChange, path: str) -> str:
    """ " (ignoreChanges: kept as it is)" for a property the resource's ignoreChanges covers, else ""."""
    hit = any(path == i or path.startswith((i + ".", i + "[")) for i in c.ignored)
    return " (ignoreChanges: `pulumi up` keeps the old value)" if hit else ""


def render_markdown(changes: list[ResourceChange], stack: str, base: str, head: str) -> str:
    counts = {k: sum(1 for c in changes if c.kind == k) for k in ("added", "removed", "changed")}
    out = [
        f"## Offline plan diff for stack {code(stack)}: {code(base)} → "
        + ("the working tree (uncommitted edits included)" if head == WORKTREE else code(head)),
        "",
        f"**{counts['added']} to add, {counts['removed']} to remove, {counts['changed']} to change** "
        "(OCI mocked; no secrets used)",
        "",
    ]
    if not changes:
        out.append("No infrastructure changes.")
        return "\n".join(out)
    security = [c for c in changes if c.security]
    if security:
        out += ["### 🔐 Security and routing changes", ""]
        for c in security:
            out.append(f"- **{c.kind}** {code(c.type)} {code(c.name)}")
            out += [f"  - ➕ {code(r)}" for r in c.rules_added]
            out += [f"  - ➖ {code(r)}" for r in c.rules_removed]
            if c.kind == "changed" and not (c.rules_added or c.rules_removed):
                out += [f"  - {code(p)}: {code(_short(x))} → {code(_short(y))}" for p, x, y in c.properties]
        out.append("")
    rest = [c for c in changes if not c.security]
    if rest:
        out += ["### Other changes", "", "| change | type | name | properties |", "|---|---|---|---|"]
        for c in rest:
            props = "<br>".join(
                f"{code(p, True)}: {code(_short(x), True)} → {code(_short(y), True)}"
                f"{_sizing(c.type, p, c.name)}{_ignored(c, p)}"
                for p, x, y in c.properties[:8]
            )
            if len(c.properties) > 8:
                props += f"<br>… {len(c.properties) - 8} more"
            out.append(f"| {c.kind} | {code(c.type, True)} | {code(c.name, True)} | {props} |")
    return "\n".join(out)


def is_dirty(repo: Path) -> bool:
    """Uncommitted edits (tracked or new, not ignored files) in ``repo``'s working tree."""
    return bool(git(repo, "status", "--porcelain"))


@contextmanager
def _tree(repo: Path, rev: str) -> Iterator[Path]:
    if rev == WORKTREE:
        yield Path(git(repo, "rev-parse", "--show-toplevel"))
    else:
        with worktree(repo, rev) as path:
            yield path


def diff_revisions(repo: Path, base: str, head: str, stack: str) -> tuple[list[ResourceChange], str]:
    """Plan ``base`` and ``head`` (a revision, or ``WORKTREE`` for the working directory as it is) and compare."""
    with _tree(repo, base) as base_dir, _tree(repo, head) as head_dir:
        changes = compare(plan_tree(base_dir, stack), plan_tree(head_dir, stack))
    return changes, render_markdown(changes, stack, base, head)
