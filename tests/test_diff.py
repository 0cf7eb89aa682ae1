"""labctl diff: two commits of a temporary git repository, planned in worktrees, compared."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from labctl.diff import compare, describe_rule, diff_revisions
from labctl.stackfile import SECRET_PLACEHOLDER, load_stack_config

PROGRAM = ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py", "components", "engines")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("lab-repo")
    for name in PROGRAM:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    network = repo / "components" / "network.py"
    text = network.read_text()
    assert "_tcp_in(args.public_subnet_cidr, port" in text
    network.write_text(text.replace("_tcp_in(args.public_subnet_cidr, port", "_tcp_in(args.vcn_cidr, port"))
    git(repo, "commit", "-qam", "open the DB ports to the whole VCN")
    return repo


def test_diff_shows_exactly_the_changed_rule(repo):
    changes, markdown = diff_revisions(repo, "HEAD~1", "HEAD", "dev")
    assert [(c.kind, c.name) for c in changes] == [("changed", "lab-private-sl")]
    [change] = changes
    assert change.rules_added == ["ingress from 10.0.0.0/16: TCP 3306", "ingress from 10.0.0.0/16: TCP 33060"]
    assert change.rules_removed == ["ingress from 10.0.0.0/24: TCP 3306", "ingress from 10.0.0.0/24: TCP 33060"]
    assert {p for p, _, _ in change.properties} == {"ingressSecurityRules[0].source", "ingressSecurityRules[1].source"}
    assert "### 🔐 Security and routing changes" in markdown
    assert "➕ `ingress from 10.0.0.0/16: TCP 3306`" in markdown
    assert "**0 to add, 0 to remove, 1 to change**" in markdown
    # the worktrees are gone
    out = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(out.strip().splitlines()) == 1


def test_same_revision_has_no_changes(repo):
    changes, markdown = diff_revisions(repo, "HEAD", "HEAD", "dev")
    assert changes == [] and "No infrastructure changes." in markdown


def test_security_changes_come_first_and_adds_removes_are_seen():
    base = {
        "resources": [
            {"urn": "u:vm", "type": "oci:Core/instance:Instance", "name": "vm", "inputs": {"shape": "A"}},
            {
                "urn": "u:sl",
                "type": "oci:Core/securityList:SecurityList",
                "name": "sl",
                "inputs": {
                    "ingressSecurityRules": [
                        {"protocol": "6", "source": "1.2.3.4/32", "tcpOptions": {"min": 22, "max": 22}}
                    ]
                },
            },
            {"urn": "u:old", "type": "oci:Core/vcn:Vcn", "name": "old", "inputs": {}},
        ]
    }
    head = {
        "resources": [
            {"urn": "u:vm", "type": "oci:Core/instance:Instance", "name": "vm", "inputs": {"shape": "B"}},
            {
                "urn": "u:sl",
                "type": "oci:Core/securityList:SecurityList",
                "name": "sl",
                "inputs": {
                    "ingressSecurityRules": [
                        {"protocol": "6", "source": "0.0.0.0/0", "tcpOptions": {"min": 22, "max": 22}}
                    ]
                },
            },
            {"urn": "u:new", "type": "oci:Core/vcn:Vcn", "name": "new", "inputs": {}},
        ]
    }
    changes = compare(base, head)
    assert [(c.kind, c.name) for c in changes] == [
        ("changed", "sl"),
        ("added", "new"),
        ("removed", "old"),
        ("changed", "vm"),
    ]
    assert changes[0].rules_added == ["ingress from 0.0.0.0/0: TCP 22"]


def test_describe_rule_variants():
    assert (
        describe_rule({"protocol": "all", "destination": "0.0.0.0/0"}, "egressSecurityRules")
        == "egress to 0.0.0.0/0: ALL"
    )
    assert (
        describe_rule({"protocol": "6", "source": "10.0.0.0/24", "stateless": True}, "ingressSecurityRules")
        == "ingress from 10.0.0.0/24: TCP all ports (stateless)"
    )
    assert (
        describe_rule({"destination": "0.0.0.0/0", "networkEntityId": "igw"}, "routeRules") == "route 0.0.0.0/0 -> igw"
    )


def test_secure_values_become_placeholders_never_decrypted(tmp_path):
    f = tmp_path / "Pulumi.s.yaml"
    f.write_text(
        "config:\n  oci-dblab:dbPassword:\n    secure: v1:abc:def\n  oci-dblab:appOcpus: 2\n"
        "  oci-dblab:connectionCheck: false\n"
    )
    config, secret = load_stack_config(f)
    assert config == {
        "oci-dblab:dbPassword": SECRET_PLACEHOLDER,
        "oci-dblab:appOcpus": "2",
        "oci-dblab:connectionCheck": "false",
    }
    assert secret == ["oci-dblab:dbPassword"]


def test_every_value_is_escaped_in_markdown():
    from markdown_it import MarkdownIt

    from labctl.diff import ResourceChange, render_markdown

    nasty = "a`b|c\n<script>alert(1)</script> ``x``"
    changes = [
        ResourceChange("changed", "urn:x", "oci:Core/vcn:Vcn", "lab|vcn`", [("displayName", "old", nasty)]),
        ResourceChange(
            "changed",
            "urn:y",
            "oci:Core/securityList:SecurityList",
            "lab-`sl`",
            [("p", 1, 2)],
            rules_added=[f"ingress from {nasty}"],
        ),
    ]
    md = render_markdown(changes, "dev|x", "main`", "HEAD")
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script>" not in html  # only ever inside code, escaped
    rows = [r for r in html.split("<tr>") if "<td>" in r]
    assert len(rows) == 1 and rows[0].count("<td>") == 4  # the pipe and the newline did not break the table
    assert "a`b|c↵&lt;script&gt;" in rows[0] and "lab|vcn`" in rows[0]
    assert "<code>ingress from a`b|c↵&lt;script&gt;alert(1)&lt;/script&gt; ``x``</code>" in html
    assert "<code>lab-`sl`</code>" in html and "<code>main`</code>" in html


def test_uncommitted_edits_are_diffed_from_the_working_tree(repo, tmp_path, capsys):
    from labctl.cli import main
    from labctl.diff import WORKTREE

    dirty = tmp_path / "dirty"
    subprocess.run(["git", "clone", "-q", str(repo), str(dirty)], check=True)
    network = dirty / "components" / "network.py"
    network.write_text(network.read_text().replace('"SSH from the admin CIDR only"', '"SSH from the admin only"'))
    changes, markdown = diff_revisions(dirty, "HEAD", WORKTREE, "dev")
    assert [c.name for c in changes] == ["lab-public-sl"]
    assert "the working tree (uncommitted edits included)" in markdown
    # the default head is the working tree when it is dirty, with a note
    assert main(["diff", "--base", "HEAD", "--repo", str(dirty)]) == 0
    out = capsys.readouterr()
    assert "comparing them (--head WORKTREE)" in out.err and "lab-public-sl" in out.out
    # and HEAD when it is clean
    subprocess.run(["git", "-C", str(dirty), "checkout", "-q", "--", "."], check=True)
    assert main(["diff", "--base", "HEAD", "--repo", str(dirty)]) == 0
    out = capsys.readouterr()
    assert "WORKTREE" not in out.err and "No infrastructure changes." in out.out
