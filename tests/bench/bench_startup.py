#!/usr/bin/env python3
"""Benchmark what ``ws status`` costs before it looks at a single file: imports and start-up.

usage: python tests/bench/bench_startup.py [--work DIR] [--runs N]

1. ``python -X importtime -c "import workspace.cli.entry"``: the console script's own import.
2. ``python -X importtime <ws> status``: every module ``ws status`` imports (sum of the
   top-level cumulative times), in a small workspace that has a remote and a release, so the
   per-remote rows are computed too.
3. Wall time of that ``ws status`` as a new process, against ``python -c pass``.
4. Whether the status path loaded a module DESIGN.md keeps off it (sqlmodel, sqlalchemy,
   fsspec, boto3, typer).

Best of ``--runs`` for every timing. Set WS_BENCH_WS to bench another checkout's ``ws``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("sqlmodel", "sqlalchemy", "fsspec", "boto3", "typer")


def ws_cmd() -> list[str]:
    """The ws executable (WS_BENCH_WS overrides), else the one on PATH."""
    exe = os.environ.get("WS_BENCH_WS") or shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def python_of(cmd: list[str]) -> list[str]:
    """The interpreter and script of the ws command, so it can run with -X options."""
    if cmd[0] == sys.executable:
        return cmd
    return [sys.executable, cmd[0]]


def import_total(args: list[str], cwd: Path, name: str | None = None) -> float:
    """Seconds of imports: ``name``'s cumulative time, or the sum over top-level imports."""
    proc = subprocess.run([*args[:1], "-X", "importtime", *args[1:]], cwd=cwd, capture_output=True,
                          text=True, check=True)
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, module = line[len("import time:"):].split("|")
        if name is not None:
            if module.strip() == name:
                total = int(cumulative)
        elif not module.startswith("  "):  # top level: one space after the bar, no nesting
            total += int(cumulative)
    return total / 1e6


def best(fn, runs: int) -> float:
    fn()  # warm-up: page cache, .pyc files
    return min(fn() for _ in range(runs))


def wall(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def make_workspace(work: Path) -> Path:
    """A workspace with 200 files, one commit, a release and a folder remote."""
    root = work / "startup-ws"
    if (root / ".ws").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(200):
        p = root / f"d{i % 10}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n")
    ws = ws_cmd()
    for args in (["init"], ["commit", "-m", "v1", "-q"], ["release", "create", "ds", "--version", "1.0.0"],
                 ["remote", "add", "origin", str(work / "startup-remote")]):
        subprocess.run(ws + args, cwd=root, check=True, stdout=subprocess.DEVNULL)
    return root


def heavy_modules(cwd: Path) -> list[str]:
    """Modules of HEAVY that ``ws status`` loaded."""
    code = ("import sys, atexit\n"
            f"atexit.register(lambda: print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr))\n"
            "sys.argv = ['ws', 'status']\n"
            "from workspace.cli.entry import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    return proc.stderr.strip().splitlines()[-1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("WS_BENCH_WORK", "/tmp/ws-bench")))
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    root = make_workspace(args.work)
    status = python_of(ws_cmd()) + ["status"]
    rows = [
        ("import workspace.cli.entry (ms)",
         best(lambda: import_total([sys.executable, "-c", "import workspace.cli.entry"], root,
                                   "workspace.cli.entry"), args.runs) * 1e3, "-X importtime, cumulative"),
        ("imports of ws status (ms)", best(lambda: import_total(status, root), args.runs) * 1e3,
         "-X importtime, sum of top-level cumulative"),
        ("ws status, new process (ms)", best(lambda: wall(ws_cmd() + ["status"], root), args.runs) * 1e3,
         "200 files, one remote, one release"),
        ("python -c pass (ms)", best(lambda: wall([sys.executable, "-c", "pass"], root), args.runs) * 1e3,
         "the floor"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'start-up benchmark':<{width}}  {'value':>8}  note  (best of {args.runs})")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>8.1f}  {note}")
    print(f"{'heavy modules on the status path':<{width}}  {' '.join(heavy_modules(root)):>8}  "
          f"of {', '.join(HEAVY)}; target []")


if __name__ == "__main__":
    main()
