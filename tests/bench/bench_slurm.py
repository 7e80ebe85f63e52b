"""Benchmark: a 1,000-member sweep on the real single-node Slurm (scripts/slurm-up.sh starts it).

Targets: submitting the sweep is one ``sbatch --array`` and takes under 2 s;
``ws jobs --json`` stays under 0.5 s. Usage:
    python tests/bench/bench_slurm.py [--jobs N] [--polls P] [--finish]

Measures, for N members of ``true``:
- the backend alone: ``submit_many`` of N requests (writing every job's files
  and the one sbatch call), and the cost of one status poll of all N ids
  (one ``squeue``), best and median of P polls;
- through the real ``ws``: ``ws run`` (detached) until every job has its Slurm
  id in the catalog, the supervisor's poll cycle as seen from outside, and
  ``ws jobs --json`` afterwards.
The sweeps are cancelled afterwards unless ``--finish`` lets them run to the
end (minutes: a 2-core node runs two members at a time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from catalog import jobs as cj  # noqa: E402
from sync.compute.base import SubmitRequest  # noqa: E402
from sync.compute.slurm import SlurmBackend  # noqa: E402
from workspace.api import Workspace  # noqa: E402


def start_slurm() -> str:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "slurm-up.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_slurm: no Slurm here: {proc.stderr.strip()}")
    conf = proc.stdout.strip().splitlines()[-1]
    os.environ["SLURM_CONF"] = conf
    return conf


def ws_cmd() -> list[str]:
    exe = shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


def backend_alone(tmp: str, n: int, polls: int) -> dict:
    backend = SlurmBackend(poll_interval_s=0)
    reqs = [SubmitRequest(job_id=f"b{i:05d}", name="bench", command="true", workdir=tmp,
                          log_dir=os.path.join(tmp, "jobs", f"b{i:05d}")) for i in range(n)]
    t0 = time.perf_counter()
    ids = backend.submit_many(reqs)
    submit = time.perf_counter() - t0
    arrays = {str(b).partition("_")[0] for b in ids}
    times = []
    for _ in range(polls):
        t0 = time.perf_counter()
        backend.status(ids)
        times.append(time.perf_counter() - t0)
    backend.cancel(ids)
    return {"submit": submit, "arrays": len(arrays), "poll_best": min(times), "poll_median": statistics.median(times)}


def through_ws(tmp: str, n: int, finish: bool) -> dict:
    ws = Workspace.init(os.path.join(tmp, "proj"))
    os.makedirs(ws.root / "jobs")
    (ws.root / "jobs" / "sweep.yaml").write_text(
        "name: sweep\nbackend: slurm\ncommand: 'true'\nresources: {memory: 32MB}\nparams:\n  i: ["
        + ", ".join(str(i) for i in range(n)) + "]\n")
    env = dict(os.environ, WS_SLURM_POLL_INTERVAL=os.environ.get("WS_SLURM_POLL_INTERVAL", "2"))
    t0 = time.perf_counter()
    subprocess.run([*ws_cmd(), "run", "sweep"], cwd=ws.root, check=True, capture_output=True, env=env)
    ran = time.perf_counter() - t0
    while True:  # the detached supervisor records the Slurm ids after its one sbatch
        rows = cj.list_jobs(ws.catalog)
        if all(r["backend_id"] for r in rows):
            break
        if time.perf_counter() - t0 > 120:
            sys.exit("bench_slurm: the sweep was not submitted within 120 s")
        time.sleep(0.02)
    submitted = time.perf_counter() - t0
    arrays = {r["backend_id"].partition("_")[0] for r in rows}
    wf = cj.latest_workflow(ws.catalog)
    cycles = supervisor_cycles(ws, wf)
    listing = []
    for _ in range(3):
        t1 = time.perf_counter()
        subprocess.run([*ws_cmd(), "jobs", "--json"], cwd=ws.root, check=True, capture_output=True)
        listing.append(time.perf_counter() - t1)
    if finish:
        subprocess.run([*ws_cmd(), "jobs", "wait", wf], cwd=ws.root, capture_output=True)
    else:
        subprocess.run([*ws_cmd(), "jobs", "cancel", wf], cwd=ws.root, check=True, capture_output=True)
    states = cj.count_by_state(ws.catalog)
    ws.close()
    return {"run": ran, "submitted": submitted, "arrays": len(arrays), "list": min(listing),
            "states": states, "total": time.perf_counter() - t0, "cycles": cycles}


def supervisor_cycles(ws, wf: str, cycles: int = 4) -> list[float]:
    """Seconds of the supervisor's poll step (one squeue for all jobs, then their state changes, such as
    new pending reasons, in one transaction), measured on a second Supervisor of the same workflow that
    is never run."""
    from workspace.jobs.supervisor import Supervisor

    os.environ["WS_SLURM_POLL_INTERVAL"] = "0"  # this process only: every cycle asks squeue
    sup = Supervisor(ws, wf)
    sup._load()
    times = []
    for _ in range(cycles):
        t0 = time.perf_counter()
        sup._poll()
        times.append(time.perf_counter() - t0)
    for backend in sup.backends.values():
        backend.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--polls", type=int, default=5)
    ap.add_argument("--finish", action="store_true", help="let the ws sweep run to its end instead of cancelling it")
    args = ap.parse_args()
    start_slurm()
    tmp = tempfile.mkdtemp(prefix="ws-bench-slurm-")
    try:
        alone = backend_alone(tmp, args.jobs, args.polls)
        ws = through_ws(tmp, args.jobs, args.finish)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.jobs
    ok = "ok" if alone["submit"] < 2 and alone["arrays"] == 1 else "MISSED"
    rows = [
        ("members", f"{n}"),
        ("backend: submit_many (files + sbatch)", f"{alone['submit']:.2f} s in {alone['arrays']} sbatch call(s) "
                                                 f"(target for 1,000: < 2 s, one array: {ok})"),
        ("backend: one status poll of all ids", f"best {alone['poll_best'] * 1000:.0f} ms, "
                                                f"median {alone['poll_median'] * 1000:.0f} ms (one squeue)"),
        ("ws run (returns, supervisor detached)", f"{ws['run']:.2f} s"),
        ("ws run until every job has its Slurm id", f"{ws['submitted']:.2f} s in {ws['arrays']} array(s)"),
        ("supervisor poll cycle (all jobs)", f"first {ws['cycles'][0] * 1000:.0f} ms, "
                                             f"then median {statistics.median(ws['cycles'][1:]) * 1000:.0f} ms"),
        ("ws jobs --json afterwards", f"{ws['list'] * 1000:.0f} ms (target < 0.5 s: "
                                      f"{'ok' if ws['list'] < 0.5 else 'MISSED'})"),
        ("final states", ", ".join(f"{k}={v}" for k, v in sorted(ws["states"].items()))),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
