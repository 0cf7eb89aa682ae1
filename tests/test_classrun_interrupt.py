"""Ctrl-C during a 100-student offline class run: exit 130, valid state, reports written, no stack started after
the signal. The signal goes to a real `python -m labctl class up --offline` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import COMPARTMENT, ROOT, instructor_yaml, make_ssh_public_key

N = 100


def test_sigint_during_a_100_student_offline_run(tmp_path):
    rows = ["student_id,name,email,ssh_public_key,admin_cidr"]
    for i in range(N):
        rows.append(f"s{i:03d},Student {i},s{i}@x.example.org,{make_ssh_public_key(f's{i}')},81.2.{i}.7/32")
    (tmp_path / "roster.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "class.yaml").write_text(f"compartmentId: {COMPARTMENT}\n" + instructor_yaml(cidr="81.3.0.1/32"))
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "labctl", "class", "up", str(tmp_path / "roster.csv")]
    argv += ["--class-config", str(tmp_path / "class.yaml"), "--offline", "--parallel", "2", "--out-dir", str(out)]
    # its own process group, signalled as a whole: what a terminal's Ctrl-C does (the offline workers get it too)
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    state_file = out / "class-state.json"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:  # wait until a few stacks are done
            try:
                if len(json.loads(state_file.read_text())["stacks"]) >= 3:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        sent_at = time.time()
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by SIGINT" in stderr and "--resume" in stderr

    state = json.loads(state_file.read_text())  # valid JSON: written atomically
    stopped = state["lastInterrupt"]
    assert stopped["signal"] == "SIGINT" and stopped["at"] >= sent_at
    done = state["stacks"]
    assert 3 <= len(done) < N
    assert all(rec["startedAt"] <= stopped["at"] for rec in done.values())  # nothing started after the signal
    assert len(list((out / "logs").glob("*.log"))) == len(done)  # a stack that never started has no log

    md = (out / "class-report.md").read_text()
    assert "INTERRUPTED by SIGINT" in md and f"not started: **{N - len(done)}**" in md
    assert md.count("| not started |") == N - len(done)
    assert f"{N - len(done)} not started" in stdout
