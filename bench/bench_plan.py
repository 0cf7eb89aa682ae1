"""Benchmark (prints figures; not a test): cold `labctl plan`, offline plan of one stack vs a class of 40 (and 100),
per-stack overhead and the workers' memory.

.venv/bin/python bench/bench_plan.py [--students 40,100] [--parallel N]

Targets (issue 12): cold `labctl plan` <= 1.0 s; offline class of 40 <= 2.5 s wall and of 100 <= 4 s at the default
parallelism on 2 CPUs; peak PSS of a 40-student offline run <= 400 MiB. Wall figures depend on what else the machine
runs: each line carries the load average and the CPU seconds spent, which do not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import full_keys, good_raw, make_ssh_public_key  # noqa: E402
from rich.console import Console  # noqa: E402

from labctl.classrun import ClassOptions, run_class  # noqa: E402
from labctl.offline import run_program  # noqa: E402
from labctl.runners import OfflineRunner, StackJob  # noqa: E402


def load() -> str:
    try:
        return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "load n/a"


def cold_plan(runs: int = 5) -> None:
    """`python -m labctl plan` in a new process each time: wall and CPU (user+sys of the child) per run."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "labctl", "plan", "--stack", "dev"], cwd=ROOT, check=True, capture_output=True
        )
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(
        f"cold `labctl plan --stack dev`: wall median {statistics.median(walls):.2f} s (min {min(walls):.2f}), "
        f"CPU median {statistics.median(cpus):.2f} s (min {min(cpus):.2f}); target <= 1.0 s; {load()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=40)
    ap.add_argument("--parallel", type=int, default=4)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {load()}")
    cold_plan()

    t = time.perf_counter()
    run_program(full_keys(good_raw()), stack="warmup")
    cold = time.perf_counter() - t
    warm = []
    for i in range(10):
        t = time.perf_counter()
        run_program(full_keys(good_raw()), stack=f"s{i}")
        warm.append(time.perf_counter() - t)
    med = statistics.median(warm) * 1000
    print(f"one stack, in process: first {cold * 1000:.0f} ms (imports), then median {med:.1f} ms")

    proc = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pulumi, pulumi_oci, pulumi_random"], check=True)
        proc.append(time.perf_counter() - t)
    print(f"a new process importing pulumi + pulumi_oci: median {statistics.median(proc) * 1000:.0f} ms")

    jobs = []
    for i in range(args.students):
        raw = good_raw(
            studentId=f"s{i:02d}", sshPublicKey=make_ssh_public_key(f"s{i}"), adminCidr=f"198.51.100.{i + 1}/32"
        )
        jobs.append(StackJob(f"s{i:02d}", f"student-s{i:02d}", full_keys(raw)))
    for n in (1, args.students):
        with tempfile.TemporaryDirectory() as d:
            runner = OfflineRunner(processes=args.parallel)
            quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
            t = time.perf_counter()
            res = run_class(jobs[:n], runner, ClassOptions("preview", Path(d), parallel=args.parallel), console=quiet)
            wall = time.perf_counter() - t
            runner.close()
        per = statistics.median(r.seconds for r in res.results) * 1000
        print(
            f"class of {n:>2} (offline, --parallel {args.parallel}): wall {wall:.2f} s = "
            f"{wall / n * 1000:.0f} ms/student; "
            f"per-stack median {per:.0f} ms vs {med:.0f} ms in process (the rest: worker start-up, queueing, IPC); "
            f"all ok: {res.ok}"
        )


if __name__ == "__main__":
    main()
