"""labctl local for real: namespaces, nftables, sshd, MariaDB with TLS, the EnvFile provider, packets.

Needs root and the packages of ``.ci/services.sh`` (iproute2, nftables, openssh-server, mariadb-server), as the
whole suite does. Every lab runs with its own state directory; the module fixture checks, after the last test, that
no namespace, process or run directory of any run id used here is left.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from components.ocimodel import SECURITY_LIST
from labctl.local import command, drills, netns, servers
from policy import rules

# Linux as root only (namespaces, nftables, sshd, MariaDB): deselected on the macOS/Windows matrix, run by make test.
pytestmark = pytest.mark.real_servers

RUN_ID = re.compile(r"\(run ([0-9a-f]{6})")


class Runs:
    """Collects the output and run ids of every lab a test starts."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.ids: set[str] = set()
        self.lines: list[str] = []

    def out(self, line: str) -> None:
        self.lines.append(line)
        self.ids.update(RUN_ID.findall(line))

    def options(self, **kw: Any) -> command.Options:
        return command.Options(state_dir=self.state_dir, out=self.out, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    r = Runs(tmp_path_factory.mktemp("local-state"))
    yield r
    # after the module: nothing of ours anywhere
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert r.ids, "no lab ran"
    for rid in r.ids:
        assert f"dblab-{rid}-" not in listed, listed
        assert not list(Path("/tmp").glob(f"dblab-{rid}-*")) and not list(Path("/dev/shm").glob(f"dblab-{rid}-*"))
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert f"dblab-{rid}-" not in ps
    assert not list(r.state_dir.iterdir())


def _private_sl(resources: list[Any]) -> Any:
    [sl] = [r for r in resources if r.resource_type == SECURITY_LIST and r.name == "lab-private-sl"]
    return sl


def test_up_check_down_of_the_default_stack(runs: Runs):
    opts = runs.options(stack="dev")
    outcome = command.up(opts)
    state = command._read_state(command._state_path(opts))
    try:
        assert outcome.ok, outcome.message
        assert outcome.check and outcome.check["ok"] is True
        assert any("via the SDK's provider host" in line for line in runs.lines)
        assert outcome.check["tls"]["version"].startswith("TLS")
        assert outcome.rows and all(r.agree for r in outcome.rows)
        by_id = {r.case.id: r for r in outcome.rows}
        assert by_id["internet->app:22"].packet == "ALLOWED"
        assert by_id["internet-other->app:22"].packet == "DENIED"
        assert by_id["app-subnet->db:3306"].packet == "ALLOWED"
        assert by_id["internet->db:3306"].packet == "DENIED"
        assert by_id["db->internet:443"].packet == "DENIED"
        assert "no route" in by_id["db->internet:443"].detail
        assert by_id["app->db-closed-port:3307"].packet == "DENIED"
        assert by_id["vcn-other->db:3306"].packet == "DENIED"

        assert state is not None
        run_dir = Path(state["runDir"])
        local_env = run_dir / "project" / ".env"
        remote_env = run_dir / "vm" / "home" / "opc" / "app" / ".env"
        for env in (local_env, remote_env):
            assert stat.S_IMODE(env.stat().st_mode) == 0o600
            values = dotenv_values(env)
            assert values["DB_HOST"] == "10.0.1.2" and values["DB_USER"] == "lab_app"
            assert values["DB_ENGINE"] == "mysql" and values["DATABASE_URL"].startswith("mysql://lab_app:")
        # the servers run inside their namespaces, on the private IPs, and survive the end of `up`
        for pid in state["pids"].values():
            assert servers.alive(int(pid))
        ns_of_sshd = os.readlink(f"/proc/{state['pids']['sshd']}/ns/net")
        assert ns_of_sshd != os.readlink("/proc/self/ns/net")

        # a second lab of the same stack is refused while this one is up
        with pytest.raises(command.LocalError, match="already up"):
            command.up(runs.options(stack="dev"))

        again = command.check(opts)
        assert again.ok, again.message
        assert all(r.agree for r in again.rows)
    finally:
        assert command.down(opts) or not outcome.ok
    assert state is not None
    assert not netns.existing(f"dblab-{state['runId']}-")
    assert not Path(state["runDir"]).exists()
    assert not any(servers.alive(int(pid)) for pid in state["pids"].values())
    assert command._read_state(command._state_path(opts)) is None
    assert not command.down(opts)  # nothing left to remove


@pytest.mark.parametrize("name", sorted(drills.DRILLS))
def test_each_drill_fails_the_check_naming_the_hop_and_the_concept(runs: Runs, name: str):
    opts = runs.options(stack="dev", drill=name)
    outcome = command.up(opts)
    assert not outcome.ok
    for word in drills.DRILLS[name].expect:
        assert word in outcome.message, (word, outcome.message)
    # the model still agrees with the packets: it sees the broken rule too
    assert outcome.rows and all(r.agree for r in outcome.rows), command.verdicts.disagreements(outcome.rows)
    # a failed up removed everything at once
    assert command._read_state(command._state_path(opts)) is None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [rid for rid in runs.ids if f"dblab-{rid}-" in listed]


def test_db_port_open_to_the_whole_vcn_reaches_the_db_from_outside_the_app_subnet(runs: Runs):
    seen: list[Any] = []

    def open_to_vcn(resources: list[Any]) -> None:
        sl = _private_sl(resources)
        sl.props["ingressSecurityRules"] = [{**r, "source": "10.0.0.0/16"} for r in sl.props["ingressSecurityRules"]]
        seen.extend(resources)

    first = runs.options(stack="dev")
    wide = runs.options(stack="vcnwide", config_file=Path(command.REPO_ROOT) / "Pulumi.dev.yaml", mutate=open_to_vcn)
    assert command.up(first).ok  # two labs at once, same addresses, separate namespaces
    try:
        outcome = command.up(wide)
        try:
            assert outcome.ok, outcome.message
            assert all(r.agree for r in outcome.rows)
            by_id = {r.case.id: r for r in outcome.rows}
            for port in (3306, 33060):
                row = by_id[f"vcn-other->db:{port}"]
                assert (row.case.model, row.packet) == ("ALLOWED", "ALLOWED")
                assert row.case.expected == "DENIED"  # reachable, and not intended
            assert command.check(first).ok  # the first lab is untouched by the second
        finally:
            command.down(wide)
    finally:
        command.down(first)
    flagged = [f for f in rules.evaluate(seen) if f.rule == "db-port-only-from-app-subnet"]
    assert flagged and "10.0.0.0/16" in flagged[0].message


def test_a_failure_after_the_namespaces_exist_removes_everything(runs: Runs, monkeypatch: pytest.MonkeyPatch):
    def broken(*_a: Any, **_k: Any) -> Any:
        raise servers.ServerError("mariadbd exited before it was ready: (simulated)")

    monkeypatch.setattr(command, "_start_servers", broken)
    opts = runs.options(stack="dev")
    with pytest.raises(servers.ServerError):
        command.up(opts)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [rid for rid in runs.ids if f"dblab-{rid}-" in listed]
    assert command._read_state(command._state_path(opts)) is None


def test_cli_errors_are_one_clear_line(runs: Runs, tmp_path: Path):
    env = {**os.environ, command.STATE_ENV: str(runs.state_dir)}

    def labctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "labctl", "local", *args],
            cwd=command.REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    missing = labctl("up", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1
    assert "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr
    bad = labctl("up", "--break", "everything")
    assert bad.returncode == 2 and "invalid choice: 'everything'" in bad.stderr
    assert "is not up: nothing to remove" in labctl("down").stdout
    assert "no local lab of stack 'dev' is up" in labctl("check").stderr
