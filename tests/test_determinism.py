"""Plans are reproducible: two runs of ``labctl plan`` in separate processes print the same bytes, and the
offline runner leaves no event loop behind (no ``Exception ignored in BaseEventLoop.__del__`` at exit)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _plan(*python_flags: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "labctl", "plan"], cwd=ROOT, capture_output=True, timeout=120
    )


def test_two_plans_of_the_same_inputs_are_byte_identical_and_exit_cleanly():
    # ResourceWarning on: an event loop left unclosed is reported deterministically, not only when the
    # interpreter's shutdown order happens to break its __del__.
    first = _plan("-W", "always::ResourceWarning")
    second = _plan()
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    assert first.stdout == second.stdout
    assert b"Critical path" in first.stdout
    for proc in (first, second):
        assert b"Exception ignored" not in proc.stderr
        assert b"unclosed event loop" not in proc.stderr
