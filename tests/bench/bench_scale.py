#!/usr/bin/env python3
"""How ws's cost grows with the work: time and peak RSS at each size (issue 12, "At scale").

usage: python tests/bench/bench_scale.py [--work DIR] [--max-files N] [--big-size BYTES]
                                          [--commits N] [--jobs N] [--releases N] [--skip PART...]

1. files:  ``ws commit`` (first) then ``ws status`` (unchanged, after a warm-up) of 10k, 100k and
   1,000,000 tiny files (``make_dataset.py many``), sizes up to ``--max-files``; targets: time
   roughly linear, peak RSS at 1M files < 600 MB.
2. big:    ``ws commit`` of one incompressible file of ``--big-size`` bytes (default 8 GiB), then
   ``ws push`` to a folder remote and ``ws clone`` of that release; target: peak RSS < 300 MB
   whatever the size, throughput close to the ``mixed`` figures (run.py).
3. history: ``ws log``, ``ws jobs --json``, ``ws release list`` with ``--commits``/``--jobs``/
   ``--releases`` records (default 100,000 each); target < 0.5 s each. Commits and releases are
   made through the Python API one by one (as users make them), so building 100k of each takes
   a long while; pass smaller numbers for a quick look (jobs are recorded in bulk, as a sweep does).

Every ws command runs as its own process; peak RSS is the child's own (wait4). Take final figures
on a quiet machine: on a shared one, compare the growth between sizes, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
MAKE = Path(os.environ.get("WS_BENCH_MAKE", REPO / "tests/bench/make_dataset.py"))
PARTS = ("files", "big", "history")


def ws_cmd() -> list[str]:
    """The ws executable next to this Python (a venv's), else on PATH, else ``python -m workspace``."""
    exe = os.environ.get("WS_BENCH_WS") or str(Path(sys.executable).with_name("ws"))
    if not os.path.exists(exe):
        exe = shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def run(args, cwd) -> tuple[float, int]:
    """(seconds, the child's peak RSS in bytes) of one command; stops the benchmark if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed: {err.decode(errors='replace')[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def row(label: str, seconds: float, rss: int | None = None, note: str = "") -> None:
    rss_text = f"{rss / 2**20:9.0f}" if rss is not None else f"{'-':>9}"
    print(f"{label:<46}{seconds:>10.3f}{rss_text}  {note}", flush=True)


def bench_files(work: Path, max_files: int, ws: list[str]) -> None:
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= max_files] or [max_files]
    for n in sizes:
        tree = work / f"many-{n}"
        subprocess.run([sys.executable, MAKE, "many", tree, str(n)], check=True)
        run([*ws, "init"], tree)
        t, rss = run([*ws, "commit", "-q", "-m", "x"], tree)
        row(f"commit, {n:,} tiny files", t, rss, f"{n / t:,.0f} files/s" + (
            "  (target RSS < 600 MB)" if n >= 1_000_000 else ""))
        run([*ws, "status"], tree)  # warm-up: page cache, status snapshot
        best = min((run([*ws, "status"], tree) for _ in range(3)), key=lambda r: r[0])
        row(f"status, {n:,} unchanged tiny files (best of 3)", *best,
            "(target RSS < 600 MB)" if n >= 1_000_000 else "")
        shutil.rmtree(tree, ignore_errors=True)


def bench_big(work: Path, size: int, ws: list[str]) -> None:
    src = work / "big"
    src.mkdir()
    block = 8 << 20
    with open(src / "big.bin", "wb") as f:  # incompressible, written in blocks: the bench's own RSS stays small
        left = size
        while left > 0:
            f.write(os.urandom(min(block, left)))
            left -= block
    os.sync()
    run([*ws, "init"], src)
    t, rss = run([*ws, "commit", "-q", "-m", "big"], src)
    row(f"commit, one {size / 2**30:.2f} GiB file", t, rss, f"{size / t / 2**20:,.0f} MB/s (target RSS < 300 MB)")
    run([*ws, "release", "create", "big", "--version", "1.0.0"], src)
    run([*ws, "remote", "add", "origin", work / "big-remote"], src)
    t, rss = run([*ws, "push", "-q", "origin"], src)
    row("push to a folder remote", t, rss, f"{size / t / 2**20:,.0f} MB/s")
    shutil.rmtree(src)
    os.sync()
    t, rss = run([*ws, "clone", "-q", work / "big-remote", "big@1.0.0", work / "big-clone"], work)
    row(f"clone, one {size / 2**30:.2f} GiB file", t, rss, f"{size / t / 2**20:,.0f} MB/s (target RSS < 300 MB)")
    shutil.rmtree(work / "big-clone", ignore_errors=True)
    shutil.rmtree(work / "big-remote", ignore_errors=True)


def bench_history(work: Path, commits: int, jobs: int, releases: int, ws: list[str]) -> None:
    from workspace.api import Workspace

    sys.path.insert(0, str(HERE))
    from bench_jobs_list import populate  # the jobs bench's bulk recorder (one transaction per workflow)

    root = work / "history"
    w = Workspace.init(root)
    t0 = time.perf_counter()
    for i in range(commits):
        (root / "n.txt").write_text(f"{i}\n")
        w.commit(f"commit {i}")
    made_commits = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(releases):
        w.releases.create("ds", version=f"{i // 1000}.{i % 1000}.0")
    made_releases = time.perf_counter() - t0
    populate(w, jobs)
    w.close()
    print(f"(made {commits:,} commits in {made_commits:.0f} s and {releases:,} releases in {made_releases:.0f} s)")
    for label, args in ((f"ws log, {commits:,} commits", ["log"]),
                        (f"ws jobs --json, {jobs:,} jobs", ["jobs", "--json"]),
                        (f"ws release list, {releases:,} releases", ["release", "list"])):
        run([*ws, *args], root)
        best = min((run([*ws, *args], root) for _ in range(3)), key=lambda r: r[0])
        row(label + " (best of 3)", *best, "(target < 0.5 s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temp folder, removed after)")
    ap.add_argument("--max-files", type=int, default=1_000_000, help="largest tiny-file tree (10k, 100k, 1M up to it)")
    ap.add_argument("--big-size", type=int, default=8 << 30, help="bytes of the one big file (default 8 GiB)")
    ap.add_argument("--commits", type=int, default=100_000)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--releases", type=int, default=100_000)
    ap.add_argument("--skip", nargs="*", choices=PARTS, default=[])
    args = ap.parse_args()
    ws = ws_cmd()
    work = Path(args.work or tempfile.mkdtemp(prefix="ws-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"ws: {' '.join(ws)}   {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
        print(f"{'workload':<46}{'seconds':>10}{'RSS MB':>9}")
        if "files" not in args.skip:
            bench_files(work, args.max_files, ws)
        if "big" not in args.skip:
            bench_big(work, args.big_size, ws)
        if "history" not in args.skip:
            bench_history(work, args.commits, args.jobs, args.releases, ws)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
