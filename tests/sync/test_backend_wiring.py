"""Configured backends end to end through the real ``ws``: PROMINENCE (the schema-validating server of
tests/sync/prominence_server.py) and Slurm (the real single-node cluster).

``ws backend add`` + ``ws login``, ``ws backend check``, a spec whose container, labels, nodes, disk and
outputs reach the service, the outputs committed with provenance, ``ws jobs fetch``, and a backend that
goes away: its jobs stay in their last known state, marked stale, and ``ws jobs refresh`` says why.
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from catalog import jobs as cj
from tests.conftest import write
from tests.slurm_cluster import poll, slurm_cluster  # noqa: F401
from tests.sync.prominence_server import running
from workspace.jobs import liveness


@pytest.fixture
def keyring_env(tmp_path, monkeypatch):
    """A plaintext file keyring under a temp XDG_DATA_HOME, for the ws subprocesses."""
    data = tmp_path / "xdg"
    data.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    for name in list(os.environ):
        if name.startswith(("WS_BACKEND_", "PROMINENCE_")):
            monkeypatch.delenv(name)
    return data


@pytest.fixture
def server(tmp_path):
    with running(tmp_path / "prominence") as srv:
        yield srv


@pytest.fixture
def cloud(ws, run_ws, server, keyring_env):
    """A configured PROMINENCE backend named ``cloud``, its token stored with ``ws login``."""
    run_ws(ws.root, "backend", "add", "cloud", "prominence", "-o", f"url={server.url}", "-o", "poll_interval=0",
           "-o", "default_image=busybox", check=True)
    stored = run_ws(ws.root, "login", "cloud", "--key", f"token={server.token}", check=True).stdout
    assert "Stored token for backend 'cloud'" in stored
    assert server.token not in (ws.root / ".ws" / "config.toml").read_text()
    return "cloud"


def _kill_supervisor(ws, wf: str) -> None:
    pid = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)  # the supervisor this test's 'ws run' started
    assert poll(lambda: not liveness.pid_alive(pid), 30)


def test_check_reaches_the_service_and_its_token(ws, run_ws, server, cloud):
    ok = run_ws(ws.root, "backend", "check", cloud, check=True).stdout
    assert re.search(r"^ok\s+service\s+PROMINENCE at ", ok, re.M) and re.search(r"^ok\s+token\s+", ok, re.M)
    run_ws(ws.root, "login", cloud, "--key", "token=not-the-token", check=True)
    bad = run_ws(ws.root, "backend", "check", cloud)
    assert bad.returncode == 10 and re.search(r"^FAILED\s+token\s+.*rejected", bad.stderr, re.M), bad.stderr
    assert "not-the-token" not in bad.stdout + bad.stderr
    forgot = run_ws(ws.root, "login", cloud, "--forget", check=True).stdout
    assert "Removed the secrets of backend 'cloud'" in forgot
    none = run_ws(ws.root, "backend", "check", cloud)
    assert none.returncode == 10 and "ws login cloud" in none.stderr


def test_a_spec_runs_on_a_configured_prominence_backend_and_its_outputs_come_back(ws, run_ws, server, cloud):
    write(ws.root, "jobs/hello.yaml",
          "command: python3 -c 'print(42)' > out/answer.txt\n"
          "outputs: [out/answer.txt]\n"
          "container: {image: python:3.12-slim, runtime: singularity}\n"
          "labels: {project: demo}\n"
          "resources: {cpus: 2, memory: 3GB, nodes: 2, disk: 10GB, walltime: 90m}\n"
          "artifacts: ['https://example.org/ref.tgz']\n"
          f"backend: {cloud}\n")
    wf = json.loads(run_ws(ws.root, "run", "hello", "--json", check=True).stdout)["workflow"]
    assert poll(lambda: server.job_ids(), 30), "the supervisor submitted nothing"
    desc = server.received[0]
    assert desc["labels"]["project"] == "demo"
    assert desc["resources"] == {"cpus": 2, "memory": 3, "nodes": 2, "disk": 10, "walltime": 90}
    assert desc["tasks"][0]["image"] == "python:3.12-slim" and desc["tasks"][0]["runtime"] == "singularity"
    assert desc["artifacts"] == [{"url": "https://example.org/ref.tgz"}]
    (jid,) = server.job_ids()
    server.advance(jid, "completed", exit_code=0, stdout="done\n", files={"out/answer.txt": b"42\n"})
    waited = run_ws(ws.root, "jobs", "wait", wf, "--timeout", "60", "--json")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    (job,) = json.loads(run_ws(ws.root, "jobs", "--json", "--label", "project=demo", check=True).stdout)
    assert job["state"] == "SUCCEEDED" and job["output_commit"] and job["backend"] == cloud
    assert (ws.root / "out" / "answer.txt").read_text() == "42\n"
    commit = ws.get_commit(job["output_commit"])
    assert commit.provenance["backend"] == cloud and commit.provenance["job"]["id"] == job["id"]
    os.unlink(ws.root / "out" / "answer.txt")
    got = json.loads(run_ws(ws.root, "jobs", "fetch", job["id"][:6], "--json", check=True).stdout)
    assert got["fetched"] == ["out/answer.txt"] and got["output_commit"] == job["output_commit"]
    assert (ws.root / "out" / "answer.txt").read_text() == "42\n"


def test_what_the_backend_cannot_honour_is_refused_before_anything_runs(ws, run_ws, server, cloud):
    write(ws.root, "jobs/g.yaml", f"command: nvidia-smi\nresources: {{gpus: 1}}\nbackend: {cloud}\n")
    proc = run_ws(ws.root, "run", "g")
    assert proc.returncode == 9 and "field 'resources.gpus'" in proc.stderr
    write(ws.root, "jobs/r.yaml", f"command: x\ncontainer: {{image: busybox, runtime: docker}}\nlabels: "
                                  f"{{'a.b': x}}\nbackend: {cloud}\n")
    proc = run_ws(ws.root, "jobs", "validate", "r")
    assert proc.returncode == 9 and "field 'labels'" in proc.stderr
    assert server.log == []


def test_an_unreachable_backend_leaves_its_jobs_stale_never_lost(ws, run_ws, server, cloud):
    write(ws.root, "jobs/slow.yaml", f"command: sleep 1000\nbackend: {cloud}\n")
    wf = json.loads(run_ws(ws.root, "run", "slow", "--json", check=True).stdout)["workflow"]
    assert poll(lambda: server.job_ids(), 30)
    (jid,) = server.job_ids()
    server.advance(jid, "running")
    assert poll(lambda: json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)[0]["state"] == "RUNNING", 30)
    server.stop()  # the service goes away: the supervisor's next poll fails
    rows = poll(lambda: [r for r in json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)
                         if r.get("stale")], 30)
    assert rows, "the job was never marked stale"
    (row,) = rows
    assert row["state"] == "RUNNING" and row["stale"]["since"] and "cannot reach PROMINENCE" in row["stale"]["error"]
    table = run_ws(ws.root, "jobs", check=True).stdout
    assert "RUNNING?" in table and f"backend {cloud} unreachable" in table
    show = run_ws(ws.root, "jobs", "show", row["id"], check=True).stdout
    assert "(stale)" in show and re.search(r"stale:\s+backend unreachable; last answer", show)
    _kill_supervisor(ws, wf)
    refreshed = run_ws(ws.root, "jobs", "refresh")
    assert refreshed.returncode == 10 and "cannot reach PROMINENCE" in refreshed.stderr
    assert len(refreshed.stderr.strip().splitlines()) == 1
    after = json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)
    assert [(r["id"], r["state"]) for r in after] == [(row["id"], "LOST")]  # its supervisor died: LOST, kept
    assert after[0]["stale"]["error"]


def test_refresh_makes_one_status_request_per_backend(ws, run_ws, server, cloud):
    for name in ("a", "b", "c"):
        write(ws.root, f"jobs/{name}.yaml", f"command: sleep 1000\nbackend: {cloud}\n")
    wfs = [json.loads(run_ws(ws.root, "run", n, "--json", check=True).stdout)["workflow"] for n in "abc"]
    assert poll(lambda: len(server.job_ids()) == 3, 30)
    for wf in wfs:
        _kill_supervisor(ws, wf)
    before = len(server.calls("GET", "/v1/jobs"))
    run_ws(ws.root, "jobs", "refresh", check=True)  # hands the LOST jobs to new supervisors, which then poll
    # the refresh asks about its three jobs in one request; the supervisors it hands them to then poll
    # their own workflow's job (each its own request, so they are told apart by the ids they name)
    new = server.calls("GET", "/v1/jobs")[before:]
    ids = [str(i) for i in sorted(server.job_ids())]
    assert [c for c in new if len(c[2]["id"].split(",")) > 1] == [("GET", "/v1/jobs", {"id": ",".join(ids),
                                                                                        "detail": "true"})]
    assert cj.backend_poll(ws.catalog, cloud)["error"] is None
    run_ws(ws.root, "jobs", "cancel", "--all", check=True)
    for wf in wfs:  # the supervisors the refresh started see the cancel on the server and end
        pid = cj.get_workflow(ws.catalog, wf)["supervisor_pid"]
        assert poll(lambda: not liveness.pid_alive(pid), 60), f"the supervisor of {wf} did not end"


def test_refresh_waits_out_the_poll_interval_of_a_backend(ws, cloud):
    import time

    from workspace.jobs.engine import rate_limit

    class Polled:
        poll_interval_s = 0.5

    cj.record_poll(ws.catalog, cloud)
    last = cj.backend_poll(ws.catalog, cloud)["last_try_ns"]
    rate_limit(ws, cloud, Polled())
    assert time.time_ns() - last >= 0.5e9
    started = time.monotonic()
    rate_limit(ws, "never-polled", Polled())  # nothing recorded: no wait
    assert time.monotonic() - started < 0.5


def test_check_a_configured_slurm_backend(ws, run_ws, slurm_cluster):  # noqa: F811
    run_ws(ws.root, "backend", "add", "cluster", "slurm", "-o", "partition=debug", check=True)
    ok = run_ws(ws.root, "backend", "check", "cluster", check=True).stdout
    assert [ln.split()[:2] for ln in ok.strip().splitlines()] == [
        ["ok", "options"], ["ok", "controller"], ["ok", "partition"], ["ok", "submit"]]
    run_ws(ws.root, "backend", "add", "wrong", "slurm", "-o", "partition=nope", check=True)
    bad = run_ws(ws.root, "backend", "check", "wrong")
    assert bad.returncode == 10
    assert re.search(r"^FAILED\s+partition\s+no partition 'nope' \(partitions: debug\)", bad.stderr, re.M), bad.stderr
    assert re.search(r"^FAILED\s+submit\s+sbatch", bad.stderr, re.M), bad.stderr


def test_a_configured_slurm_backend_runs_a_labelled_sweep(ws, run_ws, slurm_cluster):  # noqa: F811
    run_ws(ws.root, "backend", "add", "cluster", "slurm", "-o", "partition=debug", "-o", "array_throttle=2",
           check=True)
    write(ws.root, "jobs/sq.yaml", "command: mkdir -p out && echo $(( {n} * {n} )) > out/{n}.txt\n"
                                   "outputs: ['out/{n}.txt']\nparams: {n: [1, 2, 3]}\nlabels: {kind: square}\n"
                                   "resources: {nodes: 1}\nbackend: cluster\n")
    res = json.loads(run_ws(ws.root, "run", "sq", "--wait", "--json", check=True).stdout)
    assert {j["state"] for j in res["jobs"]} == {"SUCCEEDED"}
    assert (ws.root / "out" / "3.txt").read_text() == "9\n"
    listed = json.loads(run_ws(ws.root, "jobs", "--json", "-l", "kind=square", check=True).stdout)
    assert len(listed) == 3 and {r["backend"] for r in listed} == {"cluster"}
    script = next((ws.root / ".ws" / "jobs" / "slurm").glob("*/array.sh")).read_text()
    assert "--array=0-2%2" in script  # the test node has no TmpDisk: resources.disk (--tmp) would be refused
    write(ws.root, "jobs/c.yaml", "command: x\ncontainer: {image: busybox}\nbackend: cluster\n")
    refused = run_ws(ws.root, "run", "c")
    assert refused.returncode == 9 and "field 'container.image'" in refused.stderr
