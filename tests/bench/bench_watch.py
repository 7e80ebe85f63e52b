#!/usr/bin/env python3
"""Benchmark ``ws status`` with ``ws watch`` running against ``git status --porcelain``, side by side.

usage: python tests/bench/bench_watch.py [--work DIR] [--many N] [--runs R]

One tree of N tiny files (default 100,000, from shared/bench/make_dataset.py
``many``) is both a git repository and a ws workspace, with ``ws watch
--daemon`` running. Each round times ``git status --porcelain`` and ``ws
status`` (as new processes) one after the other, the order alternating
between rounds; medians are printed.

1. Unchanged tree. Target: ws <= 1.0x git.
2. Before every round 10 files (in 10 folders) get new content. Target: ws <= 1.5x git.

The watcher needs one inotify watch per folder: the benchmark checks
/proc/sys/fs/inotify/max_user_watches first and says so if it is too low.
Set WS_BENCH_WS to bench another checkout's ``ws``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE = Path(os.environ.get("WS_BENCH_MAKE", REPO / "tests/bench/make_dataset.py"))


def ws_cmd() -> list[str]:
    exe = os.environ.get("WS_BENCH_WS") or shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def timed(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def make_tree(work: Path, n: int) -> Path:
    tree = work / f"watch-many-{n}"
    if (tree / ".ws").exists() and (tree / ".git").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run([sys.executable, str(MAKE), "many", str(tree), str(n)], check=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@b")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=tree, check=True, env=env)
    subprocess.run(ws_cmd() + ["init", "."], cwd=tree, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(ws_cmd() + ["commit", "-m", "x", "-q"], cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return tree


def folders_and_files(tree: Path) -> tuple[int, list[Path]]:
    folders, files = 0, []
    for top, dirs, names in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in (".ws", ".git")]
        folders += 1
        if names:
            files.append(Path(top) / sorted(names)[0])
    return folders, files


def side_by_side(tree: Path, runs: int, before_round=None) -> tuple[float, float]:
    """Median seconds of (git status --porcelain, ws status) over ``runs`` alternating rounds."""
    git, ws = [], []
    for i in range(runs):
        if before_round:
            before_round(i)
        pair = [("git", ["git", "status", "--porcelain"]), ("ws", ws_cmd() + ["status"])]
        for name, cmd in (pair if i % 2 == 0 else pair[::-1]):
            (git if name == "git" else ws).append(timed(cmd, tree))
    return statistics.median(git), statistics.median(ws)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("WS_BENCH_WORK", "/tmp/ws-bench")))
    ap.add_argument("--many", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tree = make_tree(args.work, args.many)
    folders, samples = folders_and_files(tree)
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except OSError:
        limit = None
    if limit is not None and folders > limit:
        print(f"bench_watch: the tree has {folders} folders but fs.inotify.max_user_watches is {limit}; "
              "raise it (sudo sysctl fs.inotify.max_user_watches=524288) to run this benchmark", file=sys.stderr)
        return 2
    subprocess.run(ws_cmd() + ["watch", "--stop"], cwd=tree, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(ws_cmd() + ["watch", "--daemon"], cwd=tree, check=True, stdout=subprocess.DEVNULL)
    rows = []
    try:
        subprocess.run(["git", "status", "--porcelain"], cwd=tree, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(ws_cmd() + ["status"], cwd=tree, check=True, stdout=subprocess.DEVNULL)  # the snapshot
        g, w = side_by_side(tree, args.runs)
        rows += [(f"git status --porcelain, {args.many:,} unchanged files (s)", f"{g:.3f}", f"median of {args.runs}"),
                 (f"ws status, watcher running (s)", f"{w:.3f}", f"median of {args.runs}"),
                 ("ws / git, unchanged", f"{w / g:.2f}", "target <= 1.0 " + ("ok" if w <= g else "MISSED"))]
        edited = samples[:: max(1, len(samples) // 10)][:10]

        def edit(i: int) -> None:
            for p in edited:
                p.write_text(f"edited in round {i}\n")

        g, w = side_by_side(tree, args.runs, edit)
        rows += [(f"git status --porcelain, {len(edited)} files edited (s)", f"{g:.3f}", f"median of {args.runs}"),
                 (f"ws status, watcher running, {len(edited)} files edited (s)", f"{w:.3f}",
                  f"median of {args.runs}"),
                 ("ws / git, 10 edited", f"{w / g:.2f}", "target <= 1.5 " + ("ok" if w <= 1.5 * g else "MISSED"))]
    finally:
        subprocess.run(ws_cmd() + ["watch", "--stop"], cwd=tree, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=tree, check=False)
    rows.append(("folders watched", f"{folders:,}", f"max_user_watches {limit}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'ws watch benchmark':<{width}}  {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
