"""``backend: slurm`` end to end: the real ``ws`` and its supervisor on a real single-node Slurm.

A sweep is one job array; outputs are committed with provenance as on the
local backend; a supervisor killed (kill -9) mid-array, even between sbatch
and recording the ids, is replaced and the running jobs are adopted, each run
once; pending reasons show in ``ws jobs show``; an unreachable controller
loses no job (submit, status and cancel); Slurm refusing a job is one clear line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from catalog import jobs as cj
from sync.compute import registry
from sync.compute.slurm import SlurmBackend
from sync.errors import BackendError
from tests.conftest import write
from tests.slurm_cluster import poll
from workspace.api import Workspace
from workspace.jobs import engine, liveness


def _spec(ws, name: str, body: str) -> None:
    write(ws.root, f"jobs/{name}.yaml", f"name: {name}\nbackend: slurm\n" + body)


def _rows(run_ws, ws) -> list[dict]:
    return json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)


@pytest.fixture(autouse=True)
def _no_leftovers(ws):
    """Whatever a failing test leaves in the Slurm queue is cancelled."""
    yield
    ids = [r["backend_id"] for r in cj.list_jobs(ws.catalog) if r["backend"] == "slurm" and r["backend_id"]]
    if ids:
        try:
            SlurmBackend().cancel(ids)
        except BackendError:
            pass  # no cluster (the tests that need one skipped), or it is gone: nothing to clean


GATED = ('command: touch started-{i}; while [ ! -e go ]; do sleep 0.1; done; echo "{i} done" > out/{i}.txt\n'
         'outputs: ["out/{i}.txt"]\nresources: {memory: 64MB}\n')


@pytest.mark.slow
def test_ws_run_on_slurm_is_one_array_and_commits_outputs_with_provenance(ws, run_ws, slurm_cluster):
    _spec(ws, "square", 'command: mkdir -p out && echo $(( {n} * {n} )) > out/{n}.txt\n'
                        'outputs: ["out/{n}.txt"]\nparams: {n: [1, 2, 3, 4, 5]}\nresources: {memory: 64MB, walltime: 5m}\n')
    wf = json.loads(run_ws(ws.root, "run", "square", "--json", check=True).stdout)["workflow"]
    waited = run_ws(ws.root, "jobs", "wait", wf, "--timeout", "120", "--json")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = _rows(run_ws, ws)
    assert {r["state"] for r in rows} == {"SUCCEEDED"} and {r["backend"] for r in rows} == {"slurm"}
    assert len({r["backend_id"].partition("_")[0] for r in rows}) == 1  # one sbatch --array
    for r in rows:
        n = r["params"]["n"]
        commit = ws.get_commit(r["output_commit"])
        prov = commit.provenance
        assert prov["job"]["id"] == r["id"] and prov["backend"] == "slurm" and prov["params"] == {"n": n}
        assert ws.read(commit.id, f"out/{n}.txt") == f"{n * n}\n".encode()
        show = run_ws(ws.root, "jobs", "show", r["id"], check=True).stdout
        assert f"slurm ({r['backend_id']})" in show and "ran:          -" not in show  # Slurm's start time


def test_pending_reason_shows_in_ws_jobs_show_and_cancel_stops_the_array(ws, run_ws, slurm_cluster):
    # three members asking for every cpu of the node: at most one runs, the others wait for resources
    _spec(ws, "wide", GATED.replace("{memory: 64MB}", f"{{memory: 64MB, cpus: {os.cpu_count()}}}") +
          "params: {i: [0, 1, 2]}\n")
    wf = json.loads(run_ws(ws.root, "run", "wide", "--json", check=True).stdout)["workflow"]
    waiting = poll(lambda: [r for r in _rows(run_ws, ws) if (r["reason"] or "").startswith("pending: ")], 60)
    assert waiting, _rows(run_ws, ws)
    job = waiting[0]
    assert job["state"] == "QUEUED"
    show = run_ws(ws.root, "jobs", "show", job["id"], check=True).stdout
    assert job["reason"] in show and ("Resources" in job["reason"] or "Priority" in job["reason"])
    done = json.loads(run_ws(ws.root, "jobs", "cancel", wf, "--json", check=True).stdout)["cancelled"]
    assert len(done) == 3
    ids = [r["backend_id"] for r in _rows(run_ws, ws)]
    assert poll(lambda: {s.state for s in SlurmBackend().status(ids).values()} == {"CANCELLED"}, 30), \
        SlurmBackend().status(ids)
    assert not list((ws.root / "out").glob("*.txt")) if (ws.root / "out").exists() else True


def _kill_supervisor(ws, wf: str) -> None:
    sup = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
    os.kill(sup, signal.SIGKILL)  # the detached supervisor this test started
    assert poll(lambda: not liveness.pid_alive(sup), 10), "the supervisor did not die"


def _finish_and_check(ws, run_ws, wf: str, n: int) -> None:
    write(ws.root, "go", "")
    waited = run_ws(ws.root, "jobs", "wait", wf, "--timeout", "120", "--json")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = _rows(run_ws, ws)
    assert {r["state"] for r in rows} == {"SUCCEEDED"} and {r["attempts"] for r in rows} == {1}
    assert all(r["output_commit"] for r in rows)
    for i in range(n):  # each member ran exactly once
        assert (ws.root / "out" / f"{i}.txt").read_text() == f"{i} done\n"
    assert len({r["backend_id"].partition("_")[0] for r in rows}) == 1


@pytest.mark.slow
def test_supervisor_killed_mid_array_is_replaced_and_adopts_the_running_jobs(ws, run_ws, slurm_cluster):
    (ws.root / "out").mkdir()
    _spec(ws, "gate", GATED + "params: {i: [0, 1, 2, 3, 4, 5]}\n")
    wf = json.loads(run_ws(ws.root, "run", "gate", "--json", check=True).stdout)["workflow"]
    assert poll(lambda: list(ws.root.glob("started-*")), 60), "no member started"
    assert poll(lambda: any(r["state"] == "RUNNING" for r in _rows(run_ws, ws)), 30)
    _kill_supervisor(ws, wf)
    assert {r["state"] for r in _rows(run_ws, ws)} == {"LOST"}  # 'ws jobs' noticed the dead supervisor
    changes = json.loads(run_ws(ws.root, "jobs", "refresh", "--json", check=True).stdout)
    assert len(changes) == 6 and {c["new"] for c in changes} == {"RUNNING"}
    _finish_and_check(ws, run_ws, wf, 6)


def test_supervisor_killed_between_sbatch_and_recording_the_ids(ws, run_ws, slurm_cluster):
    (ws.root / "out").mkdir()
    _spec(ws, "gate", GATED + "params: {i: [0, 1, 2]}\n")
    wf = json.loads(run_ws(ws.root, "run", "gate", "--json", env={"WS_CRASH_AT": "jobs:submitted"},
                           check=True).stdout)["workflow"]
    sup = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
    assert poll(lambda: not liveness.pid_alive(sup), 60), "the supervisor did not die at the crash point"
    rows = _rows(run_ws, ws)
    assert {r["state"] for r in rows} == {"LOST"} and {r["backend_id"] for r in rows} == {None}
    changes = json.loads(run_ws(ws.root, "jobs", "refresh", "--json", check=True).stdout)
    assert len(changes) == 3  # found on Slurm from the job ids and attempts alone, adopted, not resubmitted
    assert all(r["backend_id"] for r in _rows(run_ws, ws))
    _finish_and_check(ws, run_ws, wf, 3)


@pytest.fixture
def flaky(slurm_cluster, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port where no slurmctld listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead.conf"
    dead.write_text(Path(slurm_cluster.conf).read_text() + f"SlurmctldPort={port}\nMessageTimeout=2\n")
    backend = SlurmBackend(slurm_conf=str(dead), command_timeout_s=20)  # its SLURM_CONF is switched by the test
    monkeypatch.setitem(registry._BACKENDS, "slurm", lambda **_: backend)
    return backend, str(dead), slurm_cluster.conf


@pytest.mark.slow
def test_an_unreachable_controller_loses_no_job_and_the_supervisor_retries(ws, flaky, cli):
    backend, dead, alive = flaky
    (ws.root / "out").mkdir()
    _spec(ws, "gate", GATED + "params: {i: [0]}\n")
    result = {}

    def supervise():  # 'ws run --wait', in this process so that it uses the switchable backend
        other = Workspace.open(ws.root)
        try:
            result.update(engine.run_spec(other, "gate", wait=True, cwd=str(ws.root)))
        finally:
            other.close()

    thread = threading.Thread(target=supervise, daemon=True)
    thread.start()

    def job():
        return (cj.list_jobs(ws.catalog) or [{}])[0]

    assert poll(lambda: "unreachable" in (job().get("reason") or ""), 60), job()
    assert job()["state"] == "PENDING" and job()["attempts"] == 0  # back in line, no attempt used up
    backend.slurm_conf = alive  # the controller is back: the next retry submits it
    assert poll(lambda: job().get("state") == "RUNNING", 60), job()
    backend.slurm_conf = dead  # gone again while the job runs: it stays RUNNING, the error is recorded
    assert poll(lambda: any("status failed, its jobs keep their last known state" in (e["detail"] or "")
                            for e in cj.job_events(ws.catalog, job()["id"])), 60)
    assert job()["state"] == "RUNNING"
    res = cli(ws.root, "jobs", "cancel", job()["id"])  # scancel cannot reach it: the job is not given up
    assert res.exit_code == 10 and "Unable to contact slurm controller" in res.output
    assert job()["state"] == "RUNNING" and job()["reason"] is None
    assert "cancel failed: scancel: " in cj.job_events(ws.catalog, job()["id"])[-1]["detail"]
    backend.slurm_conf = alive
    write(ws.root, "go", "")
    thread.join(120)
    assert not thread.is_alive() and result["state"] == "SUCCEEDED"
    assert job()["state"] == "SUCCEEDED" and job()["attempts"] == 1 and job()["output_commit"]


def test_a_bad_partition_fails_the_job_with_one_clear_line(ws, cli, slurm_cluster, monkeypatch):
    monkeypatch.setitem(registry._BACKENDS, "slurm", lambda **_: SlurmBackend(partition="no-such-partition"))
    _spec(ws, "lost", "command: echo never\n")
    res = cli(ws.root, "run", "lost", "--wait", "--json")
    assert res.exit_code != 0
    row = cj.list_jobs(ws.catalog)[0]
    assert row["state"] == "FAILED" and "\n" not in row["reason"]
    assert row["reason"].startswith("backend slurm refused the job: sbatch: ") and "Invalid partition" in row["reason"]


def test_without_slurm_commands_the_job_fails_with_one_clear_line(ws, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch here (and no cluster needed)
    _spec(ws, "nowhere", "command: echo never\n")
    res = cli(ws.root, "run", "nowhere", "--wait", "--json")
    assert res.exit_code != 0
    row = cj.list_jobs(ws.catalog)[0]
    assert row["state"] == "FAILED" and row["reason"].startswith("backend slurm refused the job: sbatch not found")
