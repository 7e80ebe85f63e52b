#!/usr/bin/env python3
"""Benchmark the foundation: commit throughput and memory, incremental commit, status at scale.

usage: python tests/bench/bench_files.py [--work DIR] [--many N] [--skip-mixed] [--skip-many]

1. ``mixed`` (~940 MB, 8,016 files): single-thread hashlib.sha256 over the same bytes (streamed),
   then ``ws commit`` of the tree; throughput of each, the ratio (target >= 0.60), peak RSS
   (target <= 300 MB).
2. ``make_dataset.py change`` then a second commit: bytes read (only the changed files).
3. ``many`` (100,000 tiny files): ``ws status`` vs ``git status --porcelain`` on the same tree,
   best of 5 each after one warm-up (target: ws <= 2x git).

Every ws command runs as its own process (the installed ``ws``); RSS comes from wait4.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE = Path(os.environ.get("WS_BENCH_MAKE", REPO / "tests/bench/make_dataset.py"))


def ws_cmd() -> list[str]:
    """The ws executable next to this Python (a venv's), else on PATH."""
    exe = os.environ.get("WS_BENCH_WS") or str(Path(sys.executable).with_name("ws"))
    if not os.path.exists(exe):
        exe = shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def run(args, cwd) -> tuple[float, int, str]:
    """(seconds, 0, stdout) of one command; exits on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({proc.returncode}): {err.decode()}")
    return elapsed, 0, out.decode()


def run_rss(args, cwd) -> tuple[float, int, str]:
    """Like run(), with the child's own peak RSS from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({proc.returncode})")
    return elapsed, usage.ru_maxrss * 1024, out.decode()


def sha256_tree(root: Path) -> tuple[float, int]:
    """Seconds and bytes to SHA-256 every file under root on one thread, streamed."""
    total = 0
    buf = bytearray(1 << 20)
    start = time.perf_counter()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".ws", ".git")]
        for name in files:
            h = hashlib.sha256()
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(memoryview(buf)[:n])
                    total += n
    return time.perf_counter() - start, total


def durable_write(work: Path, nbytes: int) -> float:
    """Seconds to write ``nbytes`` of random data to a file and fsync it (what a commit must do)."""
    block = os.urandom(8 << 20)
    path = work / "durable-write.tmp"
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(nbytes // len(block) + 1):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    os.sync()
    return elapsed


def bench_mixed(work: Path, rows: list) -> None:
    src = work / "mixed-src"
    if not src.exists():
        subprocess.run([sys.executable, str(MAKE), "mixed", str(src)], check=True)
    tree = work / "mixed"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(src, tree)
    os.sync()  # the copy's own writeback must not be charged to the commit
    run(ws_cmd() + ["init"], tree)
    sha_s, nbytes = sha256_tree(tree)  # also warms the page cache for both
    write_s = durable_write(work, nbytes)
    ws_s, rss, out = run_rss(ws_cmd() + ["commit", "-m", "v1", "--json", "-q"], tree)
    mb = nbytes / 1e6
    ratio = (mb / ws_s) / (mb / sha_s)
    rows.append(("sha256 single thread (MB/s)", f"{mb / sha_s:.0f}", ""))
    rows.append(("durable write, same bytes (MB/s)", f"{mb / write_s:.0f}", "write + fsync: the disk's ceiling"))
    rows.append(("ws commit mixed (MB/s)", f"{mb / ws_s:.0f}", f"{ws_s:.2f} s"))
    rows.append(("commit / sha256 throughput", f"{ratio:.2f}", "target >= 0.60 " + ("ok" if ratio >= 0.6 else "MISSED")))
    rows.append(("commit peak RSS (MB)", f"{rss / 1e6:.0f}", "target <= 300 " + ("ok" if rss <= 300e6 else "MISSED")))
    subprocess.run([sys.executable, str(MAKE), "change", str(tree)], check=True)
    s2, _, out2 = run_rss(ws_cmd() + ["commit", "-m", "v2", "--json", "-q"], tree)
    res = json.loads(out2)
    changed = 2 * 48 * (1 << 20) + 4096 * 2 + 10 * 100_000  # two edited binaries, new files (+ small edits)
    rows.append(("2nd commit after change: bytes read", f"{res['bytes_read'] / 1e6:.1f} MB",
                 f"{s2:.2f} s; changed files hold ~{changed / 1e6:.0f} MB of {mb:.0f} MB"))
    rows.append(("2nd commit: bytes stored", f"{res['bytes_stored'] / 1e6:.2f} MB", ""))


def best_of(args, cwd, n=5) -> float:
    run(args, cwd)  # warm-up
    return min(run(args, cwd)[0] for _ in range(n))


def bench_many(work: Path, n: int, rows: list) -> None:
    tree = work / f"many-{n}"
    if not (tree / ".ws").exists():
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run([sys.executable, str(MAKE), "many", str(tree), str(n)], check=True)
        env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
                   GIT_COMMITTER_EMAIL="b@b")
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
            subprocess.run(cmd, cwd=tree, check=True, env=env)
        run(ws_cmd() + ["init"], tree)
        commit_s = run(ws_cmd() + ["commit", "-m", "x", "-q"], tree)[0]
        rows.append((f"ws commit {n:,} tiny files (s)", f"{commit_s:.2f}", ""))
    git_s = best_of(["git", "status", "--porcelain"], tree)
    ws_s = best_of(ws_cmd() + ["status"], tree)
    rows.append((f"git status --porcelain, {n:,} files (s)", f"{git_s:.3f}", "best of 5"))
    rows.append((f"ws status, {n:,} files (s)", f"{ws_s:.3f}", "best of 5"))
    rows.append(("ws status / git status", f"{ws_s / git_s:.2f}", "target <= 2.0 " + ("ok" if ws_s <= 2 * git_s else "MISSED")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("WS_BENCH_WORK", "/tmp/ws-bench")))
    ap.add_argument("--many", type=int, default=100_000)
    ap.add_argument("--skip-mixed", action="store_true")
    ap.add_argument("--skip-many", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    if not args.skip_mixed:
        bench_mixed(args.work, rows)
    if not args.skip_many:
        bench_many(args.work, args.many, rows)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'foundation benchmark':<{width}}  {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")


if __name__ == "__main__":
    main()
