"""Benchmark: a sweep of N jobs of ``true`` on the local backend; scheduling overhead per job.

Target: under 20 ms of overhead per job. Usage:
    python tests/bench/bench_jobs_sweep.py [--jobs N] [--cpus C]

The sweep runs with the supervisor in-process (``ws run --wait``), so the
wall time covers expanding, recording, starting, polling, finishing and the
catalog writes of every job. The baseline starts the same number of
``/bin/sh -c true`` processes with the same parallelism and nothing else;
overhead = (sweep wall time - baseline) / N. The same sweep is then run through
the real CLI, detached (``ws run`` + ``ws jobs wait latest``). Prints a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from catalog import jobs as cj
from workspace.api import Workspace
from workspace.jobs import engine


def baseline(n: int, cpus: int) -> float:
    """Seconds to run n ``sh -c true`` processes, ``cpus`` at a time, with nothing else around them."""
    t0 = time.perf_counter()
    running: list[subprocess.Popen] = []
    for _ in range(n):
        if len(running) >= cpus:
            running.pop(0).wait()
        running.append(subprocess.Popen(["/bin/sh", "-c", "/bin/sh -c true"], start_new_session=True))
    for p in running:
        p.wait()
    return time.perf_counter() - t0


def _workspace(tmp: str, n: int, cpus: int) -> Workspace:
    ws = Workspace.init(os.path.join(tmp, "proj"))
    cfg = dict(ws.config)
    cfg["jobs"] = {"max_cpus": cpus}
    ws.save_config(cfg)
    os.makedirs(ws.root / "jobs")
    (ws.root / "jobs" / "sweep.yaml").write_text(
        "name: sweep\ncommand: 'true'\nparams:\n  i: [" + ", ".join(str(i) for i in range(n)) + "]\n")
    return ws


def sweep(n: int, cpus: int) -> dict:
    """One sweep of n jobs in a fresh workspace, supervised in this process (ws run --wait)."""
    tmp = tempfile.mkdtemp(prefix="ws-bench-sweep-")
    try:
        ws = _workspace(tmp, n, cpus)
        t0 = time.perf_counter()
        res = engine.run_spec(ws, "sweep", wait=True, cwd=str(ws.root))
        total = time.perf_counter() - t0
        states = cj.count_by_state(ws.catalog, workflow=res["workflow"])
        ws.close()
        return {"total": total, "states": states}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sweep_cli(n: int, cpus: int) -> float:
    """The same through the real CLI, detached: 'ws run sweep' then 'ws jobs wait latest'."""
    tmp = tempfile.mkdtemp(prefix="ws-bench-sweep-")
    try:
        ws = _workspace(tmp, n, cpus)
        ws.close()
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workspace", "run", "sweep"], cwd=ws.root, check=True,
                       capture_output=True)
        subprocess.run([sys.executable, "-m", "workspace", "jobs", "wait", "latest"], cwd=ws.root, check=True,
                       capture_output=True)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    base = baseline(args.jobs, args.cpus)
    res = sweep(args.jobs, args.cpus)
    cli = sweep_cli(args.jobs, args.cpus)
    n = args.jobs
    overhead_ms = (res["total"] - base) / n * 1000
    rows = [
        ("jobs", f"{n}"),
        ("max_cpus", f"{args.cpus}"),
        ("states", ", ".join(f"{k}={v}" for k, v in sorted(res["states"].items()))),
        ("sweep wall time", f"{res['total']:.2f} s"),
        ("baseline (bare sh -c true)", f"{base:.2f} s"),
        ("wall per job", f"{res['total'] / n * 1000:.1f} ms"),
        ("scheduling overhead per job", f"{overhead_ms:.1f} ms  (target < 20 ms: "
                                        f"{'ok' if overhead_ms < 20 else 'MISSED'})"),
        ("CLI, detached (run + jobs wait)", f"{cli:.2f} s = {cli / n * 1000:.1f} ms per job, "
                                            f"{(cli - base) / n * 1000:.1f} ms overhead"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
