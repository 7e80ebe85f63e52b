"""``ws run`` and ``ws jobs cancel|wait|rerun|refresh`` through the real executable and in-process."""

from __future__ import annotations

import json
import time

from tests.conftest import write


def _spec(root, name: str, body: str) -> None:
    write(root, f"jobs/{name}.yaml", f"name: {name}\n" + body)


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: "), proc.stderr
    return lines[0]


def test_detached_run_outlives_the_command(ws, run_ws):
    # the jobs cannot end before the test creates 'go', so `ws run` must have returned while they run
    _spec(ws.root, "bg", "command: while [ ! -e go ]; do sleep 0.05; done; echo {who} > {who}.txt\n"
                         "outputs: ['{who}.txt']\nparams: {who: [a, b]}\n")
    proc = run_ws(ws.root, "run", "bg", "--json", check=True)
    res = json.loads(proc.stdout)
    assert len(res["jobs"]) == 2 and all(j["state"] in ("PENDING", "RUNNING") for j in res["jobs"])
    write(ws.root, "go", "")
    waited = run_ws(ws.root, "jobs", "wait", res["workflow"], "--timeout", "60", "--json")
    assert waited.returncode == 0, waited.stderr
    assert {j["state"] for j in json.loads(waited.stdout)} == {"SUCCEEDED"}
    listed = json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)
    assert sorted(j["params"]["who"] for j in listed if j["state"] == "SUCCEEDED") == ["a", "b"]
    made_by = [c.provenance["job"]["name"] for c in ws.log() if c.provenance]
    assert made_by == ["bg", "bg"]


def test_run_wait_json_and_failure_exit_code(ws, cli):
    _spec(ws.root, "mixed", "command: exit {c}\nparams: {c: [0, 5]}\n")
    res = cli(ws.root, "run", "mixed", "--wait", "--json")
    assert res.exit_code == 1
    body = json.loads(res.stdout)
    assert body["state"] == "FAILED"
    assert sorted((j["params"]["c"], j["state"], j["exit_code"]) for j in body["jobs"]) == \
        [(0, "SUCCEEDED", 0), (5, "FAILED", 5)]


def test_run_wait_human_output_and_skip(ws, cli):
    _spec(ws.root, "ok", "command: echo {n}\nparams: {n: [1]}\n")
    first = cli(ws.root, "run", "ok", "--wait")
    assert first.exit_code == 0 and "SUCCEEDED" in first.stdout
    again = cli(ws.root, "run", "ok", "--wait")
    assert again.exit_code == 0 and "SKIPPED" in again.stdout


def test_dry_run_records_nothing_and_param_override(ws, cli):
    _spec(ws.root, "greet", "command: echo hi {who}\nparams: {who: [a, b, c]}\n")
    res = cli(ws.root, "run", "greet", "--dry-run", "--param", "who=zed", "--json")
    assert res.exit_code == 0, res.output
    jobs = json.loads(res.stdout)["jobs"]
    assert [j["command"] for j in jobs] == ["echo hi zed"]
    human = cli(ws.root, "run", "greet", "--dry-run")
    assert "3 to run" in human.stdout and "echo hi b" in human.stdout
    assert json.loads(cli(ws.root, "jobs", "--json").stdout) == []


def test_run_errors_are_one_line_with_exit_codes(ws, run_ws):
    _spec(ws.root, "x", "command: 'true'\n")
    cases = [
        (("run", "nosuch"), 4),
        (("run", "x", "--backend", "nowhere"), 9),
        (("run", "x", "--param", "nope=1"), 2),
        (("jobs", "cancel", "deadbeef"), 4),
        (("jobs", "wait", "deadbeef"), 4),
        (("jobs", "rerun", "--failed"), 4),  # no workflow yet
    ]
    for args, code in cases:
        proc = run_ws(ws.root, *args)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        _one_error_line(proc)
    assert run_ws(ws.root, "jobs", "cancel").returncode == 2
    assert run_ws(ws.root, "jobs", "rerun").returncode == 2


def test_cancel_wait_timeout_rerun_refresh(ws, cli):
    _spec(ws.root, "nap", "command: test -f ok || sleep 30\n")
    started = json.loads(cli(ws.root, "run", "nap", "--json").stdout)
    wf = started["workflow"]
    timed_out = cli(ws.root, "jobs", "wait", wf, "--timeout", "0.3")
    assert timed_out.exit_code == 1 and "timed out" in timed_out.stderr
    cancelled = cli(ws.root, "jobs", "cancel", "--all", "--json")
    assert json.loads(cancelled.stdout)["cancelled"] == [started["jobs"][0]["id"]]
    waited = cli(ws.root, "jobs", "wait", wf, "--timeout", "30")
    assert waited.exit_code == 1 and "CANCELLED" in waited.stdout
    write(ws.root, "ok", "")
    rerun = cli(ws.root, "jobs", "rerun", "--failed", wf, "--wait", "--json")
    assert rerun.exit_code == 0, rerun.output
    new_wf = json.loads(rerun.stdout)["workflow"]
    rows = json.loads(cli(ws.root, "jobs", "--workflow", new_wf, "--json").stdout)
    assert [r["state"] for r in rows] == ["SUCCEEDED"]
    nothing = cli(ws.root, "jobs", "rerun", "--failed", new_wf)
    assert nothing.exit_code == 1 and "no failed" in nothing.stderr
    refreshed = cli(ws.root, "jobs", "refresh", "--json")
    assert refreshed.exit_code == 0 and json.loads(refreshed.stdout) == []


def test_dead_supervisor_shows_lost_in_ws_jobs(ws, run_ws):
    import os
    import signal

    from catalog import jobs as cj
    from sync.compute.local_files import read_pid_file

    _spec(ws.root, "hang", "command: touch started; sleep 30\n")
    wf = json.loads(run_ws(ws.root, "run", "hang", "--json", check=True).stdout)["workflow"]
    deadline = time.monotonic() + 20
    while not (ws.root / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a file with a deadline
    sup = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
    os.kill(sup, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        rows = json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)
        if rows[0]["state"] == "LOST" or time.monotonic() > deadline:
            break
    assert rows[0]["state"] == "LOST"
    run_ws(ws.root, "jobs", "cancel", "--all", check=True)  # LOST is final: --all leaves it
    job = cj.get_job(ws.catalog, rows[0]["id"])
    assert job["state"] == "LOST"
    # the job's own record of itself: there even when the supervisor died before recording the backend id
    pid = read_pid_file(job["log_dir"]).pid
    assert _group_alive(pid)  # the job itself still runs in its own session
    named = run_ws(ws.root, "jobs", "cancel", job["id"], "--json", check=True)
    assert json.loads(named.stdout)["cancelled"] == [job["id"]]
    assert cj.get_job(ws.catalog, job["id"])["backend_id"].startswith(f"{pid}@")
    deadline = time.monotonic() + 10
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the process table with a deadline
    assert not _group_alive(pid)


def _group_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # members may be zombies of the (killed) supervisor's children, reaped by init shortly
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


def test_ctrl_c_on_run_wait_stops_the_jobs(ws):
    import os
    import signal
    import subprocess

    from catalog import jobs as cj
    from tests.conftest import ws_exe

    _spec(ws.root, "hang", "command: touch started; sleep 30\n")
    proc = subprocess.Popen([*ws_exe(), "run", "hang", "--wait"], cwd=ws.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (ws.root / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a file with a deadline
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    job = cj.list_jobs(ws.catalog)[0]
    assert job["state"] == "CANCELLED" and "interrupted" in job["reason"]
    assert not _group_alive(int(job["backend_id"].split("@")[0]))
