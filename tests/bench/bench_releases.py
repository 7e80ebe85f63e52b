#!/usr/bin/env python3
"""Benchmark: creating, reading and exporting a release of many tiny files.

usage: python tests/bench/bench_releases.py [N]     (default N = 20000; the issue's scale is 100000)

Builds the ``many`` dataset with /work/shared/bench/make_dataset.py in a temp
folder, commits it, then times the release operations and prints a table.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = str(Path(__file__).with_name("make_dataset.py"))


def timed(label, fn, rows):
    t0 = time.perf_counter()
    result = fn()
    rows.append((label, time.perf_counter() - t0))
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    os.environ.setdefault("WS_AUTHOR", "bench <bench@example.org>")
    from workspace.api import Workspace

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "proj")
        subprocess.run([sys.executable, DATASET, "many", root, str(n)], check=True)
        ws = Workspace.init(root)
        timed(f"commit {n} files", lambda: ws.commit("data"), rows)
        rel = timed("release create (all files)", lambda: ws.releases.create("many", version="1.0.0"), rows)
        with open(os.path.join(root, "ws.toml"), "w") as f:
            f.write('[release.half]\ninclude = ["a0*/**"]\nexclude = ["*/b39/"]\n')
        half = timed("release create (mapping globs)", lambda: ws.releases.create("half", bump="minor"), rows)
        timed("release list", lambda: ws.releases.list(), rows)
        timed("release resolve ^1", lambda: ws.releases.resolve("many", "^1"), rows)
        rec = timed("to_record (with chunk lists)", lambda: rel.to_record(), rows)
        size = len(json.dumps(rec))
        rec2 = dict(rec, version="0.9.0")
        timed("import_record (validate + insert)", lambda: ws.releases.import_record(rec2), rows)
        cli = [sys.executable, "-m", "workspace", "release", "show", "many@latest", "--json"]
        timed("ws release show --json (process)", lambda: subprocess.run(cli, cwd=root, check=True,
                                                                         stdout=subprocess.DEVNULL), rows)
        ws.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'operation':<40} {'seconds':>8}")
    for label, sec in rows:
        print(f"{label:<40} {sec:>8.2f}")
    print(f"files in release: {len(rel.files)}, in mapped release: {len(half.files)}; "
          f"record JSON {size / 1e6:.1f} MB; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
