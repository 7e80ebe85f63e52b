"""The PROMINENCE backend end to end against the local REST API (tests/sync/prominence_server.py).

The server plays back what the test tells it (running, completed, failed,
killed, with logs and output files), or, where said, runs the commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.compute import registry
from sync.compute.base import CANCELLED, FAILED, LOST, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, SubmitRequest
from sync.compute.prominence_api import ProminenceAuthError
from sync.errors import BackendError
from tests.sync.prominence_server import running


@pytest.fixture
def root(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def server(tmp_path):
    with running(tmp_path / "prominence") as srv:
        yield srv


def backend_for(server, root, **options):
    opts = dict(url=server.url, token=server.token, poll_interval=0, default_image="busybox", workspace_root=root)
    opts.update(options)
    return registry.get("prominence", **opts)


@pytest.fixture
def backend(server, root):
    b = backend_for(server, root)
    yield b
    b.close()


def req(root, job_id, command="true", **kw) -> SubmitRequest:
    return SubmitRequest(job_id=job_id, name=kw.pop("name", "align"), command=command, workdir=str(root),
                         log_dir=str(root / ".ws" / "jobs" / job_id), **kw)


def sweep(root, samples) -> list[SubmitRequest]:
    return [req(root, f"5e3d00000{i:03d}", f"python align.py --sample {s} > out/{s}.txt", params={"sample": s},
                output_files=[f"out/{s}.txt"], output_dirs=[f"plots/{s}/"]) for i, s in enumerate(samples)]


def test_constructing_contacts_nothing(server, root):
    b = registry.get("prominence", url=server.url, workspace_root=root)  # no token: only a call would need one
    b.check_request(req(root, "000000000001", image="busybox"))
    assert server.log == [] and b.api.requests_made == 0
    with pytest.raises(BackendError, match="no PROMINENCE URL"):
        registry.get("prominence", url=None).status(["1"])


def test_a_sweep_runs_as_one_workflow_end_to_end(server, backend, root):
    members = sweep(root, ["a", "b", "c", "d"])
    ids = backend.submit_many(members)
    assert len(server.calls("POST")) == 1 and server.calls("POST")[0][1] == "/v1/workflows"
    (wf,) = server.received
    assert wf["factories"][0]["type"] == "zip" and len(wf["jobs"]) == 1
    wf_id = ids[0].split("/")[0]
    assert ids == [f"{wf_id}/{wf['jobs'][0]['name']}/{i}" for i in range(4)]

    assert {s.state for s in backend.status(ids).values()} == {QUEUED}
    jobs = server.job_ids(int(wf_id))
    server.advance(jobs[0], "running")
    server.advance(jobs[1], "running")
    assert [s.state for s in backend.status(ids).values()] == [RUNNING, RUNNING, QUEUED, QUEUED]

    server.advance(jobs[0], "completed", exit_code=0, stdout="aligned a\n", stderr="warn a\n",
                   files={"out/a.txt": b"A" * 100, "plots/a/p1.png": b"png", "plots/a/deep/p2.png": b"png2"})
    server.advance(jobs[1], "completed", exit_code=3, stdout="oops\n")
    server.advance(jobs[2], "killed", reason="Job used too much memory")
    before = len(server.calls("GET", "/v1/jobs"))
    st = backend.status(ids)
    assert len(server.calls("GET", "/v1/jobs")) == before + 1  # every instance resolved: one list request
    assert [st[i].state for i in ids] == [SUCCEEDED, FAILED, OUT_OF_MEMORY, QUEUED]
    assert st[ids[1]].exit_code == 3 and st[ids[1]].reason == "exit code 3"
    assert st[ids[0]].finished_ns >= st[ids[0]].started_ns > 0

    assert backend.logs(ids[0]) == ("aligned a\n", "warn a\n")
    written = backend.fetch_outputs(ids[0], members[0], str(root))
    assert sorted(written) == ["out/a.txt", "plots/a/deep/p2.png", "plots/a/p1.png"]
    assert (root / "out/a.txt").read_bytes() == b"A" * 100 and (root / "plots/a/deep/p2.png").read_bytes() == b"png2"
    assert (Path(members[0].log_dir) / "stdout").read_text() == "aligned a\n"
    assert not [p for p in root.rglob(".ws-fetch-*")]

    backend.cancel([ids[3]])
    assert backend.status([ids[3]])[ids[3]].state == CANCELLED
    backend.cancel([ids[0]])  # already finished: harmless
    assert backend.status([ids[0]])[ids[0]].state == SUCCEEDED


def test_a_fresh_instance_finds_and_follows_sweep_members(server, root):
    members = sweep(root, ["a", "b"])
    first = backend_for(server, root)
    ids = first.submit_many(members)
    server.advance(server.job_ids()[1], "completed", exit_code=0)
    fresh = backend_for(server, root)
    assert [fresh.find(m) for m in members] == ids
    again = SubmitRequest(**{**members[1].__dict__, "attempt": 2})
    assert fresh.find(again) is None
    assert fresh.status(ids)[ids[1]].state == SUCCEEDED


def test_status_is_one_request_per_poll_and_rate_limited(server, root):
    b = backend_for(server, root, poll_interval=3600)
    ids = [b.submit(req(root, f"00000000000{i}", f"exit {i}")) for i in range(5)]
    assert len(server.calls("POST", "/v1/jobs")) == 5
    before = len(server.log)
    assert {s.state for s in b.status(ids).values()} == {QUEUED}
    assert len(server.log) == before + 1
    (method, path, query) = server.log[-1]
    assert path == "/v1/jobs" and sorted(query["id"].split(",")) == sorted(ids) and "detail" in query
    server.advance(int(ids[0]), "completed", exit_code=0)
    assert b.status(ids)[ids[0]].state == QUEUED  # within poll_interval: the last answer
    assert len(server.log) == before + 1
    b.poll_interval_s = 0
    assert b.status(ids)[ids[0]].state == SUCCEEDED
    b.status(ids)
    assert ids[0] not in server.log[-1][2]["id"].split(",")  # a final state is never asked again


def test_single_jobs_states_and_unknown_ids(server, backend, root):
    ids = [backend.submit(req(root, f"00000000000{i}")) for i in range(4)]
    server.advance(int(ids[0]), "killed", reason="Walltime limit exceeded")
    server.advance(int(ids[1]), "failed", reason="Container image pull failed")
    server.advance(int(ids[2]), "running")
    st = backend.status(ids + ["424242"])
    assert (st[ids[0]].state, st[ids[0]].reason) == (FAILED, "timed out: Walltime limit exceeded")
    assert (st[ids[1]].state, st[ids[1]].reason) == (FAILED, "Container image pull failed")
    assert st[ids[2]].state == RUNNING and st[ids[3]].state == QUEUED
    assert st["424242"].state == LOST
    backend.cancel([ids[2], ids[3]])
    st = backend.status(ids)
    assert st[ids[2]].state == st[ids[3]].state == CANCELLED and st[ids[2]].reason == "Job deleted by user"


def test_pending_state_and_jobs_a_workflow_has_not_created_yet(tmp_path, root):
    with running(tmp_path / "p", pending_state=True, max_idle=1) as srv:
        b = backend_for(srv, root)
        ids = b.submit_many(sweep(root, ["a", "b", "c"]))
        st = b.status(ids)
        assert st[ids[0]].state == QUEUED and st[ids[0]].reason == "pending"
        assert st[ids[2]].state == QUEUED and "not created yet" in st[ids[2]].reason
        with pytest.raises(BackendError, match="not created"):
            b.cancel([ids[2]])  # only part of the workflow, and PROMINENCE has no job for it yet
        b.cancel(ids)  # all of it: the workflow goes
        assert {s.state for s in b.status(ids).values()} == {CANCELLED}
        assert srv.calls("DELETE", "/v1/workflows")


def test_dependencies_hold_back_and_cancel_dependents(server, backend, root):
    members = sweep(root, ["a", "b"])
    report = req(root, "5e3d0000r000", "python report.py", name="report", depends_on=[m.job_id for m in members])
    ids = backend.submit_many(members + [report])
    assert server.received[0]["dependencies"]
    wf_jobs = server.job_ids(int(ids[0].split("/")[0]))
    assert len(wf_jobs) == 2  # the report waits for its parents
    assert "not created yet" in backend.status(ids)[ids[2]].reason
    server.advance(wf_jobs[0], "completed", exit_code=0)
    server.advance(wf_jobs[1], "failed", exit_code=1)
    st = backend.status(ids)
    assert st[ids[1]].state == FAILED
    assert st[ids[2]].state == CANCELLED and "never started" in st[ids[2]].reason


def test_members_that_cannot_share_a_template_go_as_single_jobs(server, backend, root):
    a = req(root, "000000000001", "run a", params={"x": "a"})
    b = req(root, "000000000002", "run b", params={"x": "b"}, cpus=8)
    ids = backend.submit_many([a, b])
    assert [c[1] for c in server.calls("POST")] == ["/v1/jobs", "/v1/jobs"] and all(i.isdigit() for i in ids)
    assert backend.find(b) == ids[1]


def test_a_refused_description_is_a_backend_error_with_the_services_reason(server, root):
    b = backend_for(server, root, default_runtime="udocker")
    b.defaults.memory_gb = 0  # what a broken mapping would send: the server must say no
    with pytest.raises(BackendError, match="resources.memory must be at least 1"):
        b.submit(req(root, "000000000001"))


def test_commands_really_run_and_outputs_come_back(tmp_path, root):
    """Execute mode: each job in its own home, so outputs exist here only once fetched."""
    with running(tmp_path / "p", execute=True) as srv:
        b = backend_for(srv, root)
        members = [req(root, f"e0000000000{i}", f"mkdir -p out/{s} && echo $WS_JOB_ID {s} > out/{s}/r.txt",
                       params={"s": s}, output_dirs=[f"out/{s}"]) for i, s in enumerate(["x", "y"])]
        ids = b.submit_many(members)
        st = b.status(ids)
        while not all(s.final for s in st.values()):
            b.wait(ids, 0.05)
            st = b.status(ids)
        assert {s.state for s in st.values()} == {SUCCEEDED}
        assert not (root / "out").exists()
        for bid, m in zip(ids, members):
            b.fetch_outputs(bid, m, str(root))
        assert (root / "out/x/r.txt").read_text() == "e00000000000 x\n"
        assert (root / "out/y/r.txt").read_text() == "e00000000001 y\n"


# -- the token ---------------------------------------------------------------------
@pytest.fixture
def keyring_file(tmp_path, monkeypatch):
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("WS_BACKEND_") or name == "PROMINENCE_TOKEN":
            monkeypatch.delenv(name)
    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    yield
    keyring.set_keyring(previous)


def test_token_from_the_keyring_entry_of_the_backend_name(server, root, keyring_file, monkeypatch):
    from sync.credentials import store_secrets

    b = backend_for(server, root, token=None, backend_name="hpc-eu")
    with pytest.raises(ProminenceAuthError) as info:
        b.status(["1"])
    assert info.value.exit_code == 11 and "WS_BACKEND_HPC_EU_TOKEN" in str(info.value)
    assert "backend:hpc-eu" in str(info.value) and server.log == []

    store_secrets("backend:hpc-eu", {"token": server.token})
    assert backend_for(server, root, token=None, backend_name="hpc-eu").status(["1"])["1"].state == LOST

    monkeypatch.setenv("WS_BACKEND_HPC_EU_TOKEN", "expired")
    with pytest.raises(ProminenceAuthError, match="rejected the token") as info:
        backend_for(server, root, token=None, backend_name="hpc-eu").status(["1"])
    assert info.value.exit_code == 11 and "expired" not in str(info.value)


def test_many_ids_are_asked_in_chunks_of_one_request_each(server, backend, root, monkeypatch):
    from sync.compute import prominence

    monkeypatch.setattr(prominence, "IDS_PER_REQUEST", 2)
    ids = [backend.submit(req(root, f"00000000000{i}")) for i in range(5)]
    before = len(server.calls("GET", "/v1/jobs"))
    assert len(backend.status(ids)) == 5
    assert len(server.calls("GET", "/v1/jobs")) == before + 3


def test_a_batch_with_one_refused_member_submits_nothing(server, backend, root):
    members = sweep(root, ["a", "b"])
    members[1].gpus = 1
    with pytest.raises(BackendError) as info:
        backend.submit_many(members)
    assert info.value.exit_code == 9 and not server.calls("POST")
