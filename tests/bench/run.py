#!/usr/bin/env python3
"""Run every benchmark in tests/bench/ and print their tables.

usage: python tests/bench/run.py [--quick] [--only NAME...]
--quick passes each benchmark its small-data options where it has them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "bench_files.py": ["--many", "20000", "--skip-mixed"],
    "bench_sync.py": ["--skip-mixed", "--many", "20000"],
    "bench_server.py": ["--runs", "4", "--repeat", "2"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small datasets only")
    ap.add_argument("--only", nargs="*", help="benchmark file names (e.g. bench_files.py)")
    args = ap.parse_args()
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if args.only and script.name not in args.only:
            continue
        extra = QUICK.get(script.name, []) if args.quick else []
        print(f"\n=== {script.name} {' '.join(extra)}", flush=True)
        rc = subprocess.call([sys.executable, str(script), *extra])
        if rc != 0:
            print(f"{script.name} exited {rc}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
