"""A supervisor killed (kill -9) at the exact step between starting a job and recording it.

``WS_CRASH_AT`` (workspace.faults) stops the real detached supervisor there.
The job keeps running in its own session; ``ws jobs refresh`` must find and
adopt it, and ``ws jobs cancel`` must reach it, although the dead supervisor
never recorded its backend id.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from catalog import jobs as cj
from tests.conftest import write
from workspace.jobs import liveness

CRASH = {"WS_CRASH_AT": "jobs:submitted"}


@pytest.fixture(autouse=True)
def _reap(ws):
    """Whatever a failing test leaves running (jobs, supervisors) is killed at the end."""
    yield
    jobs_dir = ws.root / ".ws" / "jobs"
    for pid_file in [*jobs_dir.glob("*/pid"), *jobs_dir.glob("wf-*/supervisor.pid")]:
        try:
            pid = int(pid_file.read_text().split()[0].removeprefix("pid="))
            os.killpg(pid, signal.SIGKILL) if pid_file.name == "pid" else os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def _spec(root, name: str, body: str) -> None:
    write(root, f"jobs/{name}.yaml", f"name: {name}\n" + body)


def _poll(predicate, timeout: float = 20.0):
    """Poll a real condition with a deadline (no sleeps as synchronization)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def _start_and_crash(ws, run_ws, body: str) -> dict:
    """``ws run`` whose supervisor dies right after starting the job; returns the job (LOST by then)."""
    _spec(ws.root, "hang", body)
    wf = json.loads(run_ws(ws.root, "run", "hang", "--json", env=CRASH, check=True).stdout)["workflow"]
    assert _poll(lambda: (ws.root / "started").exists()), "the job never started"
    sup = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
    assert _poll(lambda: not liveness.pid_alive(sup)), "the supervisor did not die at the crash point"
    rows = json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)
    assert [r["state"] for r in rows] == ["LOST"]
    return cj.get_job(ws.catalog, rows[0]["id"])


def _job_pid(ws, job: dict) -> int:
    """The job's wrapper pid, from the pid file its wrapper wrote in the job's folder."""
    from sync.compute.local_files import read_pid_file

    return read_pid_file(job["log_dir"]).pid


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def test_cancel_reaches_a_job_whose_supervisor_died_before_recording_it(ws, run_ws):
    job = _start_and_crash(ws, run_ws, "command: touch started; sleep 60\n")
    pid = _job_pid(ws, job)
    assert _group_alive(pid)
    out = run_ws(ws.root, "jobs", "cancel", job["id"], "--json", check=True)
    assert json.loads(out.stdout)["cancelled"] == [job["id"]]
    assert _poll(lambda: not _group_alive(pid)), "cancel did not stop the orphaned job"
    after = cj.get_job(ws.catalog, job["id"])
    assert after["state"] == "CANCELLED" and after["backend_id"] and after["backend_id"].startswith(f"{pid}@")


def test_refresh_adopts_a_job_whose_supervisor_died_before_recording_it(ws, run_ws):
    job = _start_and_crash(ws, run_ws, "command: touch started; while [ ! -f go ]; do sleep 0.02; done; "
                                        "echo done > out.txt\noutputs: [out.txt]\n")
    changes = json.loads(run_ws(ws.root, "jobs", "refresh", "--json", check=True).stdout)
    assert {"id": job["id"], "old": "LOST", "new": "RUNNING"} in changes
    assert cj.get_job(ws.catalog, job["id"])["backend_id"].startswith(f"{_job_pid(ws, job)}@")
    write(ws.root, "go", "")
    waited = run_ws(ws.root, "jobs", "wait", job["id"], "--timeout", "30", "--json")
    assert waited.returncode == 0, waited.stderr
    done = cj.get_job(ws.catalog, job["id"])
    assert done["state"] == "SUCCEEDED" and done["attempts"] == 1 and done["output_commit"]


def test_supervisor_killed_before_submitting_leaves_nothing_running(ws, run_ws):
    _spec(ws.root, "never", "command: touch started\n")
    wf = json.loads(run_ws(ws.root, "run", "never", "--json", env={"WS_CRASH_AT": "jobs:intent"},
                           check=True).stdout)["workflow"]
    sup = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
    assert _poll(lambda: not liveness.pid_alive(sup))
    rows = json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)
    assert [r["state"] for r in rows] == ["LOST"] and rows[0]["backend_id"] is None
    # refresh asks the backend: nothing was started, so nothing is adopted or resubmitted
    assert json.loads(run_ws(ws.root, "jobs", "refresh", "--json", check=True).stdout) == []
    assert not (ws.root / "started").exists()
    assert cj.get_job(ws.catalog, rows[0]["id"])["state"] == "LOST"
