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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import full_keys, good_raw, make_ssh_public_key  # noqa: E402
from rich.console import Console  # noqa: E402

from labctl.classrun import DEFAULT_PARALLEL, ClassOptions, run_class  # noqa: E402
from labctl.offline import run_program  # noqa: E402
from labctl.runners import OfflineRunner, StackJob, child_pids, process_memory  # noqa: E402


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


class PeakPss:
    """Samples the PSS of this process and all its descendants (forkserver, workers) every 50 ms; keeps the peak."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.kind = ""
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds (user+sys) last seen, from /proc/<pid>/stat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _tree(self) -> list[int]:
        pids, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(child_pids(pid))
        return pids

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(0.05)

    def sample_once(self) -> None:
        total, kinds = 0.0, set()
        for pid in self._tree():
            if pid != os.getpid():
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                except (OSError, ValueError, IndexError):
                    pass
            got = process_memory(pid)
            if got:
                total += got[0]
                kinds.add(got[1])
        if total > self.peak:
            self.peak, self.kind = total, "/".join(sorted(kinds))

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", default="40,100", help="class sizes, comma-separated")
    ap.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="as `labctl class --parallel` (capped)")
    ap.add_argument("--cold-runs", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(x) for x in args.students.split(",")]
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {load()}")
    cold_plan(args.cold_runs)

    t = time.perf_counter()
    run_program(full_keys(good_raw()), stack="warmup")
    cold = time.perf_counter() - t
    warm, warm_cpu = [], []
    for i in range(10):
        t, c = time.perf_counter(), time.process_time()
        run_program(full_keys(good_raw()), stack=f"s{i}")
        warm.append(time.perf_counter() - t)
        warm_cpu.append(time.process_time() - c)
    med = statistics.median(warm) * 1000
    print(
        f"one stack, in process: first {cold * 1000:.0f} ms (imports), then median {med:.1f} ms "
        f"(CPU {statistics.median(warm_cpu) * 1000:.1f} ms)"
    )

    jobs = []
    for i in range(max(sizes)):
        raw = good_raw(
            studentId=f"s{i:03d}",
            sshPublicKey=make_ssh_public_key(f"s{i}"),
            adminCidr=f"198.51.{i // 200}.{i % 200 + 1}/32",
        )
        jobs.append(StackJob(f"s{i:03d}", f"student-s{i:03d}", full_keys(raw)))
    targets = {40: "<= 2.5 s wall, <= 400 MiB PSS", 100: "<= 4 s wall"}
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            runner = OfflineRunner(processes=args.parallel)  # a new pool: worker start-up is part of the figure
            quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
            with PeakPss() as mem:
                t = time.perf_counter()
                opts = ClassOptions("preview", Path(d), parallel=runner.processes)
                res = run_class(jobs[:n], runner, opts, console=quiet)
                wall = time.perf_counter() - t
                mem.sample_once()
                runner.close()
        # CPU of the forkserver's children (the workers; the forkserver's own preload is paid once per labctl run)
        cpu = sum(mem.cpu.values())
        per = statistics.median(r.seconds for r in res.results) * 1000
        print(
            f"class of {n:>3} (offline, --parallel {args.parallel} -> {runner.processes} {runner.start_method} "
            f"workers): wall {wall:.2f} s = {wall / n * 1000:.0f} ms/student, "
            f"CPU of labctl's children {cpu:.2f} s "
            f"(/ {runner.processes} = {cpu / runner.processes:.2f} s); "
            f"per-stack median {per:.0f} ms vs {med:.0f} ms in process; peak {mem.kind} of labctl and its workers "
            f"{mem.peak:.0f} MiB; {runner.memory_summary()}; all ok: {res.ok}; target {targets.get(n, '-')}; {load()}"
        )


if __name__ == "__main__":
    main()
