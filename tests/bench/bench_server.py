#!/usr/bin/env python3
"""Benchmark push and clone through a ws server against a folder remote, and the server's peak memory.

usage: python tests/bench/bench_server.py [--work DIR] [--runs N] [--repeat K] [--cache DIR] [--no-load]

The ``mixed`` dataset (make_dataset.py: 16 x 48 MiB binaries + 8,000 small files, ~1 GiB);
``--runs N`` keeps only N of the 16 binaries (a smaller, quicker run; the table says which). The
dataset, committed and released as ds@1.0.0, is built once into ``--cache`` (default
``$WS_BENCH_CACHE`` or ``/tmp/ws-bench-cache``) and copied from there for every run.
One release, pushed and cloned ``--repeat`` times each way (each time to a fresh remote, the
two kinds interleaved), every ws command its own process:

- a folder remote (packs copied, the default);
- the ws server (``ws serve`` on 127.0.0.1:<free port>, plain gRPC), a writer token made with
  ``ws serve token create`` to push, a reader token to clone; a fresh server root per repeat.

Then a load phase on the last server: 8 clients (one connection each) upload and then download 32
packs of 16 MiB, 32 streams at once, to show that the server's memory stays bounded.

Prints one table (best and worst of the repeats); targets: through the server at least 70% of the
folder remote's throughput, peak server memory (VmHWM of the ws serve process) under 200 MB.
Loopback only.
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


def start_server(root: Path, log_path: Path) -> tuple[subprocess.Popen, str, str, str]:
    """``ws serve`` on a free loopback port: (process, url, writer token, reader token)."""
    tokens = []
    for role in ("writer", "reader"):
        out = subprocess.run([*ws_cmd(), "serve", "token", "create", "--root", str(root), "--role", role,
                              f"bench-{role}"], check=True, capture_output=True, text=True)
        tokens.append(out.stdout.strip().splitlines()[-1])
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*ws_cmd(), "serve", "--root", str(root), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()  # the server is ready once it printed its address
    if not line.startswith("listening on "):
        raise SystemExit(f"server did not start: {line!r}; see {log_path}")
    return proc, line.split()[-1], tokens[0], tokens[1]


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)
    proc.stdout.close()


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


def prepared(cache: Path, runs: int) -> Path:
    """The mixed dataset with ``runs`` binaries as a workspace holding release ds@1.0.0, built once in ``cache``."""
    done = cache / f"mixed-{runs}"
    if (done / ".ws" / "bench-ready").exists():
        return done
    shutil.rmtree(done, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(MAKE), "mixed", str(done)], check=True)
    for i in range(runs, 16):
        shutil.rmtree(done / "raw" / f"run{i:02d}")
    run([*ws_cmd(), "init", str(done)], cache)
    run([*ws_cmd(), "commit", "-q", "-m", "dataset"], done)
    run([*ws_cmd(), "release", "create", "ds", "--version", "1.0.0"], done)
    (done / ".ws" / "bench-ready").write_text("ok\n")
    return done


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


def span(values: list[float]) -> str:
    """'best-worst' of a few measurements (one decimal below 10)."""
    lo, hi = min(values), max(values)
    fmt = "{:.1f}" if hi < 10 else "{:.0f}"
    low, high = fmt.format(lo), fmt.format(hi)
    return low if low == high else f"{low}-{high}"


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temp folder, removed after)")
    ap.add_argument("--runs", type=int, default=16, help="48 MiB binaries of the mixed dataset to keep (1-16)")
    ap.add_argument("--repeat", type=int, default=3, help="push/clone pairs per remote kind (fresh remote each)")
    ap.add_argument("--cache", default=os.environ.get("WS_BENCH_CACHE", "/tmp/ws-bench-cache"),
                    help="where the prepared dataset is kept between runs")
    ap.add_argument("--no-load", action="store_true", help="skip the 8-client load phase")
    args = ap.parse_args()
    runs = max(1, min(16, args.runs))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ws-bench-server-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list = []
    proc = None
    try:
        cached = prepared(Path(args.cache), runs)
        size, files = tree_size(cached)
        mb = size / 1e6
        label = "mixed" if runs >= 16 else f"mixed, {runs} of 16 binaries"
        results: dict[str, list] = {"folder": [], "server": []}
        peaks = []
        src = work / "mixed"
        shutil.copytree(cached, src, symlinks=True)
        for k in range(max(1, args.repeat)):  # interleaved: a busy spell of the machine hits both kinds
            for kind in ("folder", "server"):  # a new remote name each time: the catalog knows nothing of it
                if kind == "folder":
                    results[kind].append(timed_pair(src, work, f"folder{k}", str(work / "remote-folder"), []))
                    shutil.rmtree(work / "remote-folder")
                    continue
                if proc is not None:
                    stop_server(proc)
                    shutil.rmtree(work / "server-root")
                proc, url, writer, reader = start_server(work / "server-root", work / "server.log")
                results[kind].append(timed_pair(src, work, f"server{k}", url, [], {"WS_TOKEN": writer},
                                                {"WS_TOKEN": reader}))
                peaks.append(peak_rss(proc.pid))
        load = None if args.no_load else load_phase(work, url, writer)
        load_peak = peak_rss(proc.pid)
        for key, title in (("folder", "folder remote (copies)"), ("server", "ws serve (grpc)")):
            rs = results[key]
            rows.append((f"push to {title}", f"{label}: {mb:.0f} MB, {files} files",
                         span([r[0] for r in rs]) + " s", span([mb / r[0] for r in rs]) + " MB/s",
                         span([r[1] / 1e6 for r in rs]) + " MB", f"{len(rs)} runs"))
            rows.append((f"clone from {title}", "", span([r[2] for r in rs]) + " s",
                         span([mb / r[2] for r in rs]) + " MB/s", span([r[3] / 1e6 for r in rs]) + " MB",
                         "identical=" + str(all(r[4] for r in rs))))
        for i, what in ((0, "push"), (2, "clone")):
            f_rate = [mb / r[i] for r in results["folder"]]
            s_rate = [mb / r[i] for r in results["server"]]
            rows.append((f"server / folder, {what}", "median; best vs best", "-",
                         f"{100 * median(s_rate) / median(f_rate):.0f}%; {100 * max(s_rate) / max(f_rate):.0f}%",
                         "-", "target >= 70%"))
        rows.append(("ws serve peak memory", "VmHWM, one push + one clone", "-", "-",
                     span([p / 1e6 for p in peaks]) + " MB", "target < 200 MB"))
        if load:
            load_up, load_down, load_bytes = load
            lmb = load_bytes / 1e6
            rows.append(("load: 8 clients, 32 uploads at once", f"{lmb:.0f} MB", f"{load_up:.2f} s",
                         f"{lmb / load_up:.0f} MB/s", "-", "32 packs of 16 MiB"))
            rows.append(("load: 32 downloads at once", f"{lmb:.0f} MB", f"{load_down:.2f} s",
                         f"{lmb / load_down:.0f} MB/s", "-", ""))
            rows.append(("ws serve peak memory after load", "VmHWM", "-", "-", f"{load_peak / 1e6:.0f} MB",
                         "target < 200 MB"))
    finally:
        if proc is not None:
            stop_server(proc)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    widths = [max(len(str(r[i])) for r in rows + [HEAD]) for i in range(len(HEAD))]
    for r in [HEAD] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
