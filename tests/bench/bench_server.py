#!/usr/bin/env python3
"""Benchmark push and clone through a ws server against a folder remote, and the server's peak memory.

usage: python tests/bench/bench_server.py [--work DIR] [--runs N]

The ``mixed`` dataset (make_dataset.py: 16 x 48 MiB binaries + 8,000 small files, ~1 GiB);
``--runs N`` keeps only N of the 16 binaries (a smaller, quicker run; the table says which).
One release, pushed and cloned once each way, every ws command its own process:

- folder remote (hard links, the default), and folder remote with ``-o link=false`` (bytes copied,
  as on another filesystem);
- the ws server (``python -m sync.server`` on 127.0.0.1:<free port>, plain gRPC), a writer token
  to push, a reader token to clone.

Then a load phase on the same server: 8 clients (one connection each) upload and then download 32
packs of 16 MiB, 32 streams at once, to show that the server's memory stays bounded.

Prints one table; targets: through the server at least 70% of the folder remote's throughput,
peak server memory (VmHWM of the server process) under 200 MB. Loopback only.
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
sys.path.insert(0, str(HERE))
from bench_sync import MAKE, identical, run, tree_size, ws_cmd  # noqa: E402

HEAD = ("step", "data", "time", "throughput", "client RSS", "note")


def peak_rss(pid: int) -> int:
    """The peak resident memory of a running process (VmHWM), bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def start_server(root: Path) -> tuple[subprocess.Popen, str, str, str]:
    """A server process on a free loopback port: (process, url, writer token, reader token)."""
    tokens = []
    for role in ("writer", "reader"):
        out = subprocess.run([sys.executable, "-m", "sync.server", "token", "create", "--root", str(root),
                              "--role", role, f"bench-{role}"], check=True, capture_output=True, text=True)
        tokens.append(out.stdout.strip().splitlines()[-1])
    log = open(root.parent / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sync.server", "--root", str(root), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        raise SystemExit(f"server did not start: {line!r}; see {root.parent / 'server.log'}")
    return proc, line.split()[-1], tokens[0], tokens[1]


def load_phase(work: Path, url: str, token: str, clients: int = 8, count: int = 32) -> tuple[float, float, int]:
    """``count`` packs of 16 MiB up, then down, through ``clients`` connections, all at once:
    (upload s, download s, bytes each way)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from sync.remote import pack_key
    from sync.storage import LocalFile
    from sync.storage.grpc_backend import GrpcBackend
    from workspace.objects import packs

    folder = work / "load"
    made = []
    for i in range(count):
        writer = packs.PackWriter(folder / "tmp")
        for k in range(4):
            data = hashlib.sha256(f"{i}/{k}".encode()).digest() * (1 << 17)  # 4 MiB, distinct per pack
            writer.add(hashlib.sha256(data).hexdigest(), len(data), packs.CODEC_RAW, data)
        made.append(writer.finish(lambda pid: str(folder / pid)))
    backends = [GrpcBackend(url, {"token": token}) for _ in range(clients)]
    jobs = [(backends[i % clients], pack_id, path) for i, (pack_id, path, _) in enumerate(made)]
    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda j: j[0].put(pack_key(j[1]), LocalFile(j[2])), jobs))
    up = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda j: j[0].get_file(pack_key(j[1]), j[2] + ".back"), jobs))
    down = time.perf_counter() - start
    total = sum(os.path.getsize(path) for _, path, _ in made)
    shutil.rmtree(folder)
    return up, down, total


def prepare(src: Path, runs: int) -> None:
    subprocess.run([sys.executable, str(MAKE), "mixed", str(src)], check=True)
    for i in range(runs, 16):
        shutil.rmtree(src / "raw" / f"run{i:02d}")
    run([*ws_cmd(), "init", str(src)], src.parent)
    run([*ws_cmd(), "commit", "-q", "-m", "dataset"], src)
    run([*ws_cmd(), "release", "create", "ds", "--version", "1.0.0"], src)


def timed_pair(src: Path, work: Path, name: str, url: str, options: list[str], env: dict | None = None,
               clone_env: dict | None = None) -> tuple[float, int, float, int, bool]:
    """Push the release to ``url`` and clone it back: (push s, push RSS, clone s, clone RSS, identical)."""
    saved = dict(os.environ)
    try:
        os.environ.update(env or {})
        run([*ws_cmd(), "remote", "add", name, url, *options], src)
        os.sync()
        push_t, push_rss = run([*ws_cmd(), "push", "-q", name], src)
        os.environ.update(clone_env or {})
        os.sync()
        clone = work / f"clone-{name}"
        clone_t, clone_rss = run([*ws_cmd(), "clone", "-q", url, "ds", str(clone), *options], work)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    same = identical(src, clone)
    shutil.rmtree(clone)
    return push_t, push_rss, clone_t, clone_rss, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temp folder, removed after)")
    ap.add_argument("--runs", type=int, default=16, help="48 MiB binaries of the mixed dataset to keep (1-16)")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ws-bench-server-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list = []
    proc = None
    try:
        src = work / "mixed"
        prepare(src, max(1, min(16, args.runs)))
        size, files = tree_size(src)
        mb = size / 1e6
        label = "mixed" if args.runs >= 16 else f"mixed, {args.runs} of 16 binaries"
        results = {}
        results["folder"] = timed_pair(src, work, "folder", str(work / "remote-folder"), [])
        results["folder-copy"] = timed_pair(src, work, "copying", str(work / "remote-copy"), ["-o", "link=false"])
        proc, url, writer, reader = start_server(work / "server-root")
        results["server"] = timed_pair(src, work, "server", url, [], {"WS_TOKEN": writer}, {"WS_TOKEN": reader})
        server_peak = peak_rss(proc.pid)
        load_up, load_down, load_bytes = load_phase(work, url, writer)
        load_peak = peak_rss(proc.pid)
        base_push, base_clone = results["folder"][0], results["folder"][2]
        for key, title in (("folder", "folder remote"), ("folder-copy", "folder, link=false"),
                           ("server", "ws server (grpc)")):
            push_t, push_rss, clone_t, clone_rss, same = results[key]
            rows.append((f"push to {title}", f"{label}: {mb:.0f} MB, {files} files", f"{push_t:.2f} s",
                         f"{mb / push_t:.0f} MB/s", f"{push_rss / 1e6:.0f} MB",
                         f"{100 * base_push / push_t:.0f}% of folder"
                         + (f", {100 * results['folder-copy'][0] / push_t:.0f}% of link=false" if key == "server"
                            else "")))
            rows.append((f"clone from {title}", "", f"{clone_t:.2f} s", f"{mb / clone_t:.0f} MB/s",
                         f"{clone_rss / 1e6:.0f} MB", f"{100 * base_clone / clone_t:.0f}% of folder"
                         + (f", {100 * results['folder-copy'][2] / clone_t:.0f}% of link=false"
                            if key == "server" else "") + f"; identical={same}"))
        rows.append(("ws server peak memory", "VmHWM", "-", "-", f"{server_peak / 1e6:.0f} MB", "target < 200 MB"))
        lmb = load_bytes / 1e6
        rows.append(("load: 8 clients, 32 uploads at once", f"{lmb:.0f} MB", f"{load_up:.2f} s",
                     f"{lmb / load_up:.0f} MB/s", "-", "32 packs of 16 MiB"))
        rows.append(("load: 32 downloads at once", f"{lmb:.0f} MB", f"{load_down:.2f} s",
                     f"{lmb / load_down:.0f} MB/s", "-", ""))
        rows.append(("ws server peak memory after load", "VmHWM", "-", "-", f"{load_peak / 1e6:.0f} MB",
                     "target < 200 MB"))
        rows.append(("target", "", "", "", "", "server >= 70% of the folder remote's throughput"))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    widths = [max(len(str(r[i])) for r in rows + [HEAD]) for i in range(len(HEAD))]
    for r in [HEAD] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
