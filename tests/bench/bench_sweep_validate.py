"""Benchmark: validating and dry-running big sweeps; wall time and peak RSS of the real ``ws``.

Three specs, each ``command: echo {a} {b}`` with ``outputs: ['out/{a}/{b}.txt']``:
10 x 10 (100 jobs), the default cap ``[jobs] max_jobs_per_run`` (100 x 1000 =
100,000 jobs) and 1000 x 1000 (1,000,000 jobs: refused at once by the cap).
Each command runs as its own process (``ws jobs validate NAME``, ``ws run NAME
--dry-run`` with stdout to /dev/null); its peak RSS comes from ``wait4``.
Targets: the 1000 x 1000 refusal under 1 s, peak RSS flat in the sweep size
(within 40 MB of the 100-job run). Usage:
    python tests/bench/bench_sweep_validate.py [--skip-dry-run] [--timeout S] [--max-mb MB]
``--max-mb`` caps each process's address space, so that a version of ws that
expands eagerly fails fast instead of swapping the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [("10x10", 10, 10), ("cap (100x1000)", 100, 1000), ("1000x1000", 1000, 1000)]


def ws_command() -> list[str]:
    exe = shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def measure(cwd: str, args: list[str], timeout: float, max_mb: int) -> dict:
    """Run ws once: wall seconds, peak RSS (MB), exit code, last line of stderr."""

    def limit() -> None:
        if max_mb:
            resource.setrlimit(resource.RLIMIT_AS, (max_mb * 1024 * 1024, max_mb * 1024 * 1024))

    with tempfile.TemporaryFile() as err, open(os.devnull, "wb") as devnull:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*ws_command(), *args], cwd=cwd, stdout=devnull, stderr=err, preexec_fn=limit)
        deadline = t0 + timeout
        while True:  # wait4 with a deadline: poll with WNOHANG (a benchmark, not a test)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        last = (err.read().decode(errors="replace").strip().splitlines() or [""])[-1]
    timed_out = wall > timeout
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "code": proc.returncode, "last": last,
            "timed_out": timed_out}


def setup(root: str) -> None:
    subprocess.run([*ws_command(), "init", root], check=True, capture_output=True)
    os.makedirs(os.path.join(root, "jobs"))
    for name, a, b in SIZES:
        with open(os.path.join(root, "jobs", f"{_slug(name)}.yaml"), "w") as f:
            f.write(f"command: echo {{a}} {{b}}\noutputs: ['out/{{a}}/{{b}}.txt']\n"
                    f"params:\n  a: {list(range(a))}\n  b: {list(range(b))}\n")


def _slug(name: str) -> str:
    return name.split(" ")[0].replace("x", "-by-")


def _outcome(r: dict) -> str:
    if r["timed_out"]:
        return "killed (timeout)"
    if r["code"] == 0:
        return "ok"
    if "max_jobs_per_run" in r["last"]:
        return "refused: over the cap"
    return f"exit {r['code']}: {r['last'][:60]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-dry-run", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a command is killed")
    ap.add_argument("--max-mb", type=int, default=3000, help="address-space limit per process (0: none)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ws-bench-sweepval-")
    try:
        root = os.path.join(tmp, "proj")
        setup(root)
        rows = []
        for name, a, b in SIZES:
            commands = [("validate", ["jobs", "validate", _slug(name)])]
            if not args.skip_dry_run:
                commands.append(("run --dry-run", ["run", _slug(name), "--dry-run"]))
            for what, cmd in commands:
                r = measure(root, cmd, args.timeout, args.max_mb)
                rows.append((f"{name} ({a * b:,} jobs)", what, f"{r['wall']:.2f} s", f"{r['rss']:.0f} MB",
                             _outcome(r)))
        widths = [max(len(str(r[i])) for r in rows + [_HEAD]) for i in range(len(_HEAD))]
        for r in [_HEAD, *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_HEAD = ("sweep", "command", "wall", "peak RSS", "outcome")

if __name__ == "__main__":
    main()
