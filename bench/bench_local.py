"""Benchmark: `labctl local up` end to end (plan, namespaces, servers, check, verdicts) and `down`, with the split.

Prints figures; asserts nothing. Needs root and the packages of .ci/services.sh. Usage: python bench/bench_local.py [N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labctl.local import command  # noqa: E402


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dblab-bench-state-") as state:
        rows = []
        for i in range(runs):
            opts = command.Options(stack="dev", state_dir=Path(state), out=lambda _line: None)
            outcome = command.up(opts)
            if not outcome.ok:
                raise SystemExit(f"run {i + 1}: the lab failed: {outcome.message}")
            t = time.monotonic()
            command.down(opts)
            split = dict(outcome.timings, down=time.monotonic() - t)
            rows.append(split)
            parts = "  ".join(f"{k} {v:.2f}s" for k, v in split.items())
            print(f"run {i + 1}: {parts}")
    keys = list(rows[0])
    print("median: " + "  ".join(f"{k} {statistics.median(r[k] for r in rows):.2f}s" for k in keys))
    total = statistics.median(r["up"] + r["down"] for r in rows)
    print(f"in process, labctl local up + down, median of {runs}: {total:.2f}s")
    with tempfile.TemporaryDirectory(prefix="dblab-bench-state-") as state:
        env = {**os.environ, command.STATE_ENV: state}
        t = time.monotonic()
        for verb in ("up", "down"):
            subprocess.run(
                [sys.executable, "-m", "labctl", "local", verb],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        print(
            f"as a command (fresh interpreter each): labctl local up + down {time.monotonic() - t:.2f}s (target < 15 s)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
