#!/usr/bin/env python3
"""Benchmark push/clone against ``cp -r`` in the same run, and the dedup of a second push.

usage: python tests/bench/bench_sync.py [--work DIR] [--many N] [--skip-mixed] [--skip-many]

1. ``mixed`` dataset (~1 GiB): ``cp -r`` of the tree, then ``ws push`` of its release to a
   folder remote and ``ws clone`` into a fresh folder; throughput of each and peak RSS
   (each ws command runs as its own process; RSS from wait4). Packs are copied (reflink or
   copy_file_range) by default; the same is then measured with the opt-in ``-o link=true``.
2. ``make_dataset.py change`` + a new release: bytes the second push adds to the remote.
3. ``many`` (100,000 tiny files): objects on the remote after the push; clone identical.

Prints one table; targets: push and clone >= 50% of cp throughput, RSS <= 300 MB,
second push <= 4 MB, many-files push a few hundred objects at most.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MAKE = Path(os.environ.get("WS_BENCH_MAKE", Path(__file__).with_name("make_dataset.py")))


def ws_cmd() -> list[str]:
    """The ws executable (WS_BENCH_WS overrides, e.g. to bench another checkout)."""
    exe = os.environ.get("WS_BENCH_WS") or shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def run(args: list[str], cwd: Path) -> tuple[float, int]:
    """Run a command; returns (seconds, peak RSS in bytes). Fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{out.decode()}{err.decode()}")
    return elapsed, usage.ru_maxrss * 1024


def tree_size(root: Path) -> tuple[int, int]:
    """(bytes, files) under root, outside .ws/."""
    total = count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".ws"]
        for name in files:
            total += os.path.getsize(os.path.join(folder, name))
            count += 1
    return total, count


def remote_stats(root: Path) -> tuple[int, int]:
    """(bytes, objects) of a folder remote."""
    total = count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.path.getsize(os.path.join(folder, name))
            count += 1
    return total, count


def identical(a: Path, b: Path) -> bool:
    """Whether two trees hold the same files with the same bytes (ignoring .ws/)."""
    cmp = filecmp.dircmp(a, b, ignore=[".ws"])
    stack = [cmp]
    while stack:
        c = stack.pop()
        if c.left_only or c.right_only or c.funny_files:
            return False
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        if mismatch or errors:
            return False
        stack.extend(c.subdirs.values())
    return True


def prepare(ws_dir: Path, dataset: list[str]) -> None:
    subprocess.run([sys.executable, str(MAKE), *dataset], check=True)
    run([*ws_cmd(), "init", str(ws_dir)], ws_dir.parent)
    run([*ws_cmd(), "commit", "-q", "-m", "dataset"], ws_dir)
    run([*ws_cmd(), "release", "create", "ds", "--version", "1.0.0"], ws_dir)


def bench_mixed(work: Path, rows: list) -> None:
    src, remote, clone = work / "mixed", work / "remote-mixed", work / "clone-mixed"
    prepare(src, ["mixed", str(src)])
    size, files = tree_size(src)
    cp_dir = work / "cp-mixed"
    os.sync()
    cp_t, _ = run(["cp", "-r", str(src), str(cp_dir)], work)
    # cp leaves its writes in the page cache while ws fsyncs what it must; show both
    start = time.perf_counter()
    os.sync()
    cp_sync_t = cp_t + time.perf_counter() - start
    shutil.rmtree(cp_dir)
    run([*ws_cmd(), "remote", "add", "origin", str(remote)], src)
    os.sync()
    push_t, push_rss = run([*ws_cmd(), "push", "-q"], src)
    os.sync()
    clone_t, clone_rss = run([*ws_cmd(), "clone", "-q", str(remote), "ds", str(clone)], work)
    same = identical(src, clone)
    shutil.rmtree(clone)
    # the same with the opt-in hard links (packs shared with the remote: faster, but no second copy)
    run([*ws_cmd(), "remote", "add", "linking", str(work / "remote-link"), "-o", "link=true"], src)
    os.sync()
    pushc_t, pushc_rss = run([*ws_cmd(), "push", "-q", "linking"], src)
    os.sync()
    clonec_t, clonec_rss = run([*ws_cmd(), "clone", "-q", str(work / "remote-link"), "ds", str(clone),
                                "-o", "link=true"], work)
    same_c = identical(src, clone)
    shutil.rmtree(work / "remote-link")
    mb = size / 1e6
    rows.append(("mixed: cp -r", f"{mb:.0f} MB, {files} files", f"{cp_t:.2f} s", f"{mb / cp_t:.0f} MB/s", "-", "-"))
    rows.append(("mixed: cp -r, then sync", "", f"{cp_sync_t:.2f} s", f"{mb / cp_sync_t:.0f} MB/s", "-",
                 "cp's bytes on disk, as ws's are"))
    rows.append(("mixed: push to folder", f"{mb:.0f} MB", f"{push_t:.2f} s", f"{mb / push_t:.0f} MB/s",
                 f"{push_rss / 1e6:.0f} MB", f"{100 * cp_t / push_t:.0f}% of cp (target >= 50%)"))
    rows.append(("mixed: clone from folder", f"{mb:.0f} MB", f"{clone_t:.2f} s", f"{mb / clone_t:.0f} MB/s",
                 f"{clone_rss / 1e6:.0f} MB", f"{100 * cp_t / clone_t:.0f}% of cp; identical={same}"))
    rows.append(("mixed: push, link=true", f"{mb:.0f} MB", f"{pushc_t:.2f} s", f"{mb / pushc_t:.0f} MB/s",
                 f"{pushc_rss / 1e6:.0f} MB", f"{100 * cp_t / pushc_t:.0f}% of cp (packs hard-linked)"))
    rows.append(("mixed: clone, link=true", f"{mb:.0f} MB", f"{clonec_t:.2f} s", f"{mb / clonec_t:.0f} MB/s",
                 f"{clonec_rss / 1e6:.0f} MB", f"{100 * cp_t / clonec_t:.0f}% of cp; identical={same_c}"))
    before, _ = remote_stats(remote)
    subprocess.run([sys.executable, str(MAKE), "change", str(src)], check=True)
    run([*ws_cmd(), "commit", "-q", "-m", "change"], src)
    run([*ws_cmd(), "release", "create", "ds", "--version", "1.1.0"], src)
    t, rss = run([*ws_cmd(), "push", "-q"], src)
    after, objects = remote_stats(remote)
    rows.append(("change: second push", "1% edit", f"{t:.2f} s", "-", f"{rss / 1e6:.0f} MB",
                 f"added {(after - before) / 1e6:.2f} MB (target <= 4 MB; restic ~4.0 MB)"))
    shutil.rmtree(clone)


def bench_many(work: Path, n: int, rows: list) -> None:
    src, remote, clone = work / "many", work / "remote-many", work / "clone-many"
    prepare(src, ["many", str(src), str(n)])
    run([*ws_cmd(), "remote", "add", "origin", str(remote)], src)
    push_t, push_rss = run([*ws_cmd(), "push", "-q"], src)
    _, objects = remote_stats(remote)
    clone_t, clone_rss = run([*ws_cmd(), "clone", "-q", str(remote), "ds", str(clone)], work)
    same = identical(src, clone)
    rows.append((f"many: push {n} files", f"{objects} remote objects", f"{push_t:.2f} s", "-",
                 f"{push_rss / 1e6:.0f} MB", "target: a few hundred objects at most"))
    rows.append((f"many: clone {n} files", "", f"{clone_t:.2f} s", "-", f"{clone_rss / 1e6:.0f} MB",
                 f"identical={same}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temp folder, removed after)")
    ap.add_argument("--many", type=int, default=100_000, help="files in the many-files release")
    ap.add_argument("--skip-mixed", action="store_true")
    ap.add_argument("--skip-many", action="store_true")
    args = ap.parse_args()
    import tempfile

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ws-bench-sync-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list = []
    try:
        if not args.skip_mixed:
            bench_mixed(work, rows)
        if not args.skip_many:
            bench_many(work, args.many, rows)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    widths = [max(len(str(r[i])) for r in rows + [HEAD]) for i in range(len(HEAD))]
    for r in [HEAD] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


HEAD = ("step", "data", "time", "throughput", "peak RSS", "note")

if __name__ == "__main__":
    main()
