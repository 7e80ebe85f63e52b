#!/usr/bin/env python3
"""Print issue 12's ratios (ws against its reference, alternating rounds in one run), then optionally every bench.

usage: python tests/bench/run.py [--quick] [--rounds N] [--work DIR] [--only RATIO...] [--all] [--bench NAME...]

Each ratio is the median of at least 3 ALTERNATING rounds (ws, reference, ws, reference, ...)
measured in this one run, so that a disk that swings by 2x from minute to minute moves both
sides alike. Every round is printed, then a closing table with the medians:

  commit    first ``ws commit`` of ``mixed`` (938 MB, 8,016 files)   vs ``cp -r`` + ``sync``
            (and vs ``dvc add`` when ``dvc`` is found: PATH, $ANCHOR_VENV or /tmp/ws-anchor-venv)
  clone     ``ws clone`` of a release from a folder remote into an empty folder
            vs ``restic restore`` of the same files (skipped, with a note, without restic)
  status    ``ws status`` on 100,000 unchanged tiny files vs ``git status --porcelain``
  sitepkgs  ``ws status`` on a copy of a real ``site-packages`` (~9k files) vs ``git status --porcelain``

Datasets are made once and kept under ``--work`` (default /tmp/ws-bench; ``data/``); the
workspaces, git repositories and copies of a run live in ``run/`` and are removed after.
``--quick`` is a smoke test on small data (a few thousand files, a few MB): it checks that the
harness works, its figures mean little. ``--all`` then runs every ``bench_*.py`` too (their
``--quick`` options with ``--quick``), as this script did before; ``--bench`` picks some of them.

Every command runs as its own process: ``ws`` is the one next to this Python (a venv's), else
on PATH; set WS_BENCH_WS to time another checkout's. Take final figures on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MAKE = Path(os.environ.get("WS_BENCH_MAKE", REPO / "tests/bench/make_dataset.py"))
QUICK = {
    "bench_files.py": ["--many", "20000", "--skip-mixed"],
    "bench_sync.py": ["--skip-mixed", "--many", "20000"],
    "bench_server.py": ["--runs", "4", "--repeat", "2"],
    "bench_scale.py": ["--max-files", "10000", "--big-size", str(64 << 20), "--commits", "200", "--jobs", "2000",
                       "--releases", "200"],
}
RATIOS = ("commit", "clone", "status", "sitepkgs")
TARGETS = {"commit": ("cp -r + sync", 0.9), "commit-dvc": ("dvc add", 0.4), "clone": ("restic restore", 0.8),
           "status": ("git status --porcelain", 1.5), "sitepkgs": ("git status --porcelain", 1.5)}


def ws_cmd() -> list[str]:
    """The ws executable next to this Python (a venv's), else on PATH, else ``python -m workspace``."""
    exe = os.environ.get("WS_BENCH_WS") or str(Path(sys.executable).with_name("ws"))
    if not os.path.exists(exe):
        exe = shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def dvc_cmd() -> str | None:
    """A dvc executable if one is installed (never installs it)."""
    for cand in (shutil.which("dvc"), os.path.join(os.environ.get("ANCHOR_VENV", "/tmp/ws-anchor-venv"), "bin/dvc")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def sh(args, cwd=None, env=None) -> None:
    """Run one untimed set-up command; stop the benchmark with its stderr if it fails."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"set-up failed: {' '.join(map(str, args))}: {proc.stderr.decode(errors='replace')[-2000:]}")


def timed(args, cwd=None, env=None, then_sync: bool = False) -> float:
    """Seconds of one command as a new process (plus a ``sync`` when asked); stops on failure."""
    start = time.perf_counter()
    sh(args, cwd, env)
    if then_sync:
        os.sync()
    return time.perf_counter() - start


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- datasets (cached)

def dataset(work: Path, name: str, quick: bool) -> Path:
    """The dataset ``name`` under work/data, made once (a ``.done`` marker beside it says it is whole)."""
    tag = f"{name}-quick" if quick else name
    root = work / "data" / tag
    done = work / "data" / f"{tag}.done"
    if done.exists() and root.is_dir():
        return root
    rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"making dataset {tag} in {root} ...", flush=True)
    if name == "mixed" and not quick:
        sh([sys.executable, MAKE, "mixed", root])
    elif name == "mixed":  # small stand-in: 2 random binaries and 1,500 small files
        sh([sys.executable, MAKE, "many", root / "tables", "1500"])
        for i in range(2):
            (root / "raw").mkdir(parents=True, exist_ok=True)
            (root / "raw" / f"signal{i}.bin").write_bytes(os.urandom(3 << 20))
    elif name == "many":
        sh([sys.executable, MAKE, "many", root, "2000" if quick else "100000"])
    elif name == "sitepkgs":
        src = Path(os.environ.get("WS_BENCH_SITE_PACKAGES")
                   or REPO.parent / "main/.venv/lib/python3.11/site-packages")
        if not src.is_dir():
            src = Path(sysconfig.get_paths()["purelib"])
        if quick:  # a few packages only
            root.mkdir(parents=True)
            for pkg in ("pathspec", "semver", "tomli_w"):
                if (src / pkg).is_dir():
                    shutil.copytree(src / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copytree(src, root, symlinks=True)
        for git_dir in [p for p in root.rglob(".git")]:  # a nested repository would hide files from git
            rmtree(git_dir)
    done.write_text("")
    return root


# ---------------------------------------------------------------- rounds

class Bench:
    """Alternating rounds of one ws command against its references; keeps every round."""

    def __init__(self, name: str, what: str) -> None:
        self.name, self.what = name, what
        self.rounds: list[dict[str, float]] = []

    def add(self, times: dict[str, float]) -> None:
        self.rounds.append(times)
        n = len(self.rounds)
        ws = times["ws"]
        parts = [f"ws {ws:7.3f}s"] + [f"{k} {v:7.3f}s ({ws / v:5.2f}x)" for k, v in times.items() if k != "ws"]
        print(f"  {self.name:<8} round {n}: " + "   ".join(parts), flush=True)

    def medians(self) -> dict[str, tuple[float, float, float, float]]:
        """reference -> (median ratio, lowest, highest, median reference seconds)."""
        out = {}
        for ref in [k for k in self.rounds[0] if k != "ws"]:
            ratios = [r["ws"] / r[ref] for r in self.rounds]
            out[ref] = (statistics.median(ratios), min(ratios), max(ratios),
                        statistics.median(r[ref] for r in self.rounds))
        return out


def bench_commit(work: Path, run_dir: Path, rounds: int, quick: bool, ws: list[str], notes: list[str]) -> Bench:
    data = dataset(work, "mixed", quick)
    dvc = dvc_cmd()
    if dvc is None:
        notes.append("commit vs dvc add: skipped (dvc not installed; compare.sh installs it in /tmp/ws-anchor-venv)")
    b = Bench("commit", f"first commit of {data.name}")
    for _ in range(rounds):
        times = {}
        wsd = run_dir / "commit-ws"
        rmtree(wsd)
        shutil.copytree(data, wsd)
        sh([*ws, "init"], cwd=wsd)
        os.sync()
        times["ws"] = timed([*ws, "commit", "-m", "v1", "-q"], cwd=wsd)
        rmtree(wsd)
        os.sync()
        times["cp -r + sync"] = timed(["cp", "-r", data, run_dir / "commit-copy"], then_sync=True)
        rmtree(run_dir / "commit-copy")
        if dvc:
            dd = run_dir / "commit-dvc"
            rmtree(dd)
            dd.mkdir()
            shutil.copytree(data, dd / "data")
            sh(["git", "init", "-q"], cwd=dd)
            sh([dvc, "init", "-q"], cwd=dd)
            os.sync()
            times["dvc add"] = timed([dvc, "add", "-q", "data"], cwd=dd)
            rmtree(dd)
        b.add(times)
    return b


def bench_clone(work: Path, run_dir: Path, rounds: int, quick: bool, ws: list[str], notes: list[str]) -> Bench | None:
    restic = shutil.which("restic")
    if restic is None:
        notes.append("clone vs restic restore: skipped (restic not installed: apt-get install -y restic)")
        return None
    data = dataset(work, "mixed", quick)
    src, remote, repo = run_dir / "clone-src", run_dir / "clone-remote", run_dir / "restic-repo"
    for p in (src, remote, repo):
        rmtree(p)
    shutil.copytree(data, src)
    sh([*ws, "init"], cwd=src)
    sh([*ws, "commit", "-m", "v1", "-q"], cwd=src)
    sh([*ws, "release", "create", "ds", "--version", "1.0.0"], cwd=src)
    sh([*ws, "remote", "add", "origin", remote], cwd=src)
    sh([*ws, "push", "origin", "-q"], cwd=src)
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=str(repo))
    sh([restic, "init", "-q"], env=env)
    sh([restic, "backup", "-q", "."], cwd=data, env=env)
    b = Bench("clone", f"clone of a release of {data.name} into an empty folder")
    for _ in range(rounds):
        dst = run_dir / "clone-dst"
        rmtree(dst)
        os.sync()
        times = {"ws": timed([*ws, "clone", "-q", remote, "ds@1.0.0", dst])}
        rmtree(dst)
        os.sync()
        times["restic restore"] = timed([restic, "restore", "-q", "latest", "--target", dst], env=env)
        rmtree(dst)
        b.add(times)
    rmtree(src)
    return b


def bench_status(work: Path, run_dir: Path, rounds: int, quick: bool, ws: list[str], name: str) -> Bench:
    data = dataset(work, "many" if name == "status" else "sitepkgs", quick)
    tree = run_dir / f"{name}-tree"
    rmtree(tree)
    shutil.copytree(data, tree, symlinks=True)
    git = ["git", "-c", "user.email=b@b", "-c", "user.name=b"]
    sh([*git, "init", "-q"], cwd=tree)
    with open(tree / ".git" / "info" / "exclude", "a") as f:
        f.write(".ws/\n")  # so that git, too, reports a clean tree (and lists nothing)
    sh([*git, "add", "-A", "-f", "."], cwd=tree)
    sh([*git, "commit", "-q", "-m", "x"], cwd=tree)
    sh([*ws, "init"], cwd=tree)
    sh([*ws, "commit", "-m", "x", "-q"], cwd=tree)
    files = sum(len(f) for _, _, f in os.walk(data))
    sh([*ws, "status"], cwd=tree)  # warm-up: page cache and ws's stat cache
    sh(["git", "status", "--porcelain"], cwd=tree)
    b = Bench(name, f"ws status, {files:,} unchanged files ({data.name})")
    for _ in range(rounds):
        b.add({"ws": timed([*ws, "status"], cwd=tree),
               "git status --porcelain": timed(["git", "status", "--porcelain"], cwd=tree)})
    rmtree(tree)
    return b


def closing(benches: list[Bench], notes: list[str], quick: bool) -> None:
    print("\n=== issue 12 ratios (ws time / reference time: median of the alternating rounds, [lowest-highest])")
    for b in benches:
        for ref, (med, lo, hi, ref_s) in b.medians().items():
            key = b.name if not ref.startswith("dvc") else f"{b.name}-dvc"
            target = TARGETS.get(key, (None, None))[1]
            verdict = "" if target is None else (f"target <= {target}x: " + ("met" if med <= target else "NOT met"))
            print(f"{b.what:<58} vs {ref:<24} {med:5.2f}x  [{lo:.2f}-{hi:.2f}] over {len(b.rounds)} rounds"
                  f" (reference median {ref_s:.3f}s)  {verdict}")
    for note in notes:
        print(f"note: {note}")
    if quick:
        print("note: --quick runs small stand-in datasets; the figures only show that the harness works")
    print("note: disk-bound rounds swing 2x on a shared machine; take final figures on a quiet one")


def run_ratios(args) -> int:
    work = Path(args.work).resolve()
    run_dir = work / "run"
    rmtree(run_dir)
    run_dir.mkdir(parents=True)
    ws = ws_cmd()
    rounds = max(3, args.rounds)
    notes: list[str] = []
    benches: list[Bench] = []
    wanted = args.only or RATIOS
    try:
        print(f"ws: {' '.join(ws)}   rounds: {rounds} (alternating)   work: {work}", flush=True)
        if "commit" in wanted:
            benches.append(bench_commit(work, run_dir, rounds, args.quick, ws, notes))
        if "clone" in wanted:
            b = bench_clone(work, run_dir, rounds, args.quick, ws, notes)
            if b:
                benches.append(b)
        for name in ("status", "sitepkgs"):
            if name in wanted:
                benches.append(bench_status(work, run_dir, max(rounds, 5), args.quick, ws, name))
    finally:
        rmtree(run_dir)
    closing(benches, notes, args.quick)
    return 0


def run_benches(args) -> int:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if args.bench and script.name not in args.bench:
            continue
        extra = QUICK.get(script.name, []) if args.quick else []
        print(f"\n=== {script.name} {' '.join(extra)}", flush=True)
        rc = subprocess.call([sys.executable, str(script), *extra])
        if rc != 0:
            print(f"{script.name} exited {rc}")
            failed += 1
    return 1 if failed else 0


def warm_bytecode() -> None:
    """Time ws as installed for users: with its modules' bytecode written.

    Under PYTHONDONTWRITEBYTECODE (set in some CI and sandbox shells) every ws
    process compiles its modules from source again, ~25 ms of a status that
    takes ~40 ms to start; the benchmark compiles them once and lets the timed
    processes use the result.
    """
    import compileall

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    root = Path(__file__).resolve().parents[2]
    for pkg in ("workspace", "catalog", "sync"):
        compileall.compile_dir(str(root / pkg), quiet=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small stand-in datasets (a smoke test)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per ratio (at least 3; status 5)")
    ap.add_argument("--work", default=os.environ.get("WS_BENCH_WORK", "/tmp/ws-bench"),
                    help="scratch folder; datasets are cached in WORK/data")
    ap.add_argument("--only", nargs="*", choices=RATIOS, help="some of the ratios only")
    ap.add_argument("--no-ratios", action="store_true", help="skip the ratios (with --all: benches only)")
    ap.add_argument("--all", action="store_true", help="then run every bench_*.py as well")
    ap.add_argument("--bench", nargs="*", help="with --all: these bench files only (e.g. bench_files.py)")
    args = ap.parse_args()
    warm_bytecode()
    rc = 0 if args.no_ratios else run_ratios(args)
    if args.all or args.bench:
        rc |= run_benches(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
