"""AWS Batch from a workspace: ``ws run`` through the supervisor, outputs committed with provenance.

The backend is registered under a test name with its options (what ``ws
backend add`` will store); jobs run on the moto server's stand-in compute
environment (tests/sync/batch_moto.py).
"""

from __future__ import annotations

import functools
import os
import uuid

import pytest

from catalog import jobs as q
from sync.compute import registry
from sync.compute.batch import BatchBackend
from sync.staged import batch_backend
from sync.errors import BackendError
from tests.conftest import write


@pytest.fixture
def batch_backend_name(ws, batch_world, tmp_path, monkeypatch):
    """A backend named ``batch-test`` with the options a configured backend would have, for this workspace."""
    opts = batch_world.backend_options(f"ws-{uuid.uuid4().hex[:8]}", job_queue=batch_world.new_queue(),
                                       workspace_root=ws.root, log_root=ws.layout.jobs_dir,
                                       catalog=ws.catalog, tmp_dir=str(tmp_path))
    monkeypatch.setitem(registry._BACKENDS, "batch-test", functools.partial(batch_backend, **opts))
    return "batch-test"


def test_a_sweep_runs_on_batch_and_its_outputs_are_committed_with_provenance(ws, batch_backend_name):
    from workspace.jobs.engine import run_spec
    from workspace.jobs.query import read_log

    write(ws.root, "jobs/make.yaml",
          "name: make\n"
          "command: mkdir -p out && echo \"result {n}\" > out/r{n}.txt && echo \"made {n}\"\n"
          "outputs: [\"out/r{n}.txt\"]\n"
          "params: {n: [1, 2]}\n"
          f"backend: {batch_backend_name}\n")
    result = run_spec(ws, "make", wait=True)
    jobs = result["jobs"]
    assert result["state"] == "SUCCEEDED", [(j["state"], j["reason"]) for j in jobs]
    assert (ws.root / "out" / "r1.txt").read_text() == "result 1\n"
    assert (ws.root / "out" / "r2.txt").read_text() == "result 2\n"
    for job in jobs:
        row = q.get_job(ws.catalog, job["id"])
        assert row["state"] == "SUCCEEDED" and row["output_commit"] and row["backend_id"]
        commit = ws.get_commit(row["output_commit"])
        assert commit.provenance["backend"] == batch_backend_name
        assert commit.provenance["backend_id"] == row["backend_id"]
        assert commit.provenance["job"]["id"] == job["id"]
        n = row["params"]["n"]
        assert read_log(ws, job["id"]) == f"made {n}\n"  # the job's stdout, in its log folder


def test_fetch_job_brings_the_outputs_back_again(ws, batch_backend_name):
    from workspace.jobs.engine import run_spec
    from workspace.jobs.outputs import fetch_job

    write(ws.root, "jobs/one.yaml", "name: one\ncommand: echo fetched > o.txt\noutputs: [o.txt]\n"
                                    f"backend: {batch_backend_name}\n")
    (job,) = run_spec(ws, "one", wait=True)["jobs"]
    assert job["state"] == "SUCCEEDED"
    os.unlink(ws.root / "o.txt")
    got = fetch_job(ws, job["id"][:6])
    assert got["fetched"] == ["o.txt"] and got["output_commit"] == job["output_commit"] and got["problem"] is None
    assert (ws.root / "o.txt").read_text() == "fetched\n"


class FlakyBatch(BatchBackend):
    """A Batch backend whose status polls fail a few times (an unreachable endpoint), then recover."""

    failures = 2

    def status(self, backend_ids):
        if FlakyBatch.failures > 0:
            FlakyBatch.failures -= 1
            raise BackendError("backend 'batch-test': cannot reach http://127.0.0.1:1 (describe_jobs): refused")
        return super().status(backend_ids)


def test_a_failing_status_poll_keeps_the_jobs_and_is_logged_once(ws, batch_world, batch_backend_name, monkeypatch):
    from workspace.jobs.engine import run_spec
    from workspace.jobs.supervisor import workflow_dir

    partial = registry._BACKENDS[batch_backend_name]
    monkeypatch.setitem(registry._BACKENDS, batch_backend_name,
                        functools.partial(batch_backend, FlakyBatch, **partial.keywords))
    FlakyBatch.failures = 2
    write(ws.root, "jobs/slow.yaml", f"name: slow\ncommand: echo ok > s.txt\noutputs: [s.txt]\n"
                                     f"backend: {batch_backend_name}\n")
    result = run_spec(ws, "slow", wait=True)
    assert result["state"] == "SUCCEEDED" and FlakyBatch.failures == 0
    log = open(os.path.join(workflow_dir(ws, result["workflow"]), "supervisor.log")).read()
    assert log.count("status failed, its jobs keep their last known state") == 1


def test_a_submit_the_backend_refuses_fails_that_job_with_the_reason(ws, batch_world, monkeypatch):
    from workspace.jobs.engine import run_spec

    opts = batch_world.backend_options("never", job_queue="no-such-queue", workspace_root=ws.root)
    monkeypatch.setitem(registry._BACKENDS, "batch-bad", functools.partial(batch_backend, **opts))
    write(ws.root, "jobs/bad.yaml", "name: bad\ncommand: 'true'\nbackend: batch-bad\n")
    result = run_spec(ws, "bad", wait=True)
    (job,) = result["jobs"]
    assert result["state"] == "FAILED" and job["state"] == "FAILED"
    assert "no job queue 'no-such-queue'" in job["reason"] and "\n" not in job["reason"]


def test_ws_jobs_logs_follow_shows_a_batch_job_while_it_runs(ws, batch_backend_name):
    """``ws jobs logs --follow`` (query.follow_log): the CloudWatch stream while it runs, read to its end."""
    import threading
    import time

    from workspace.jobs.engine import run_spec
    from workspace.jobs.query import follow_log, read_log

    go = ws.root.parent / "go"
    write(ws.root, "jobs/talk.yaml",
          f"name: talk\ncommand: 'echo first; while [ ! -f {go} ]; do sleep 0.05; done; echo second'\n"
          f"backend: {batch_backend_name}\n")
    done: dict = {}
    supervisor = threading.Thread(target=lambda: done.update(run_spec(ws, "talk", wait=True)), daemon=True)
    supervisor.start()
    deadline = time.monotonic() + 30
    while not (rows := q.list_jobs(ws.catalog)) or not rows[0]["backend_id"]:
        assert time.monotonic() < deadline, "the job was not submitted"
        time.sleep(0.05)  # polling the catalog for a real condition, with a deadline
    seen = ""
    for chunk in follow_log(ws, rows[0]["id"], poll_s=0.05):
        seen += chunk
        if "first\n" in seen and not go.exists():
            go.write_text("")  # the job may go on once the follower saw its first line
    supervisor.join(30)
    assert done["state"] == "SUCCEEDED"
    assert seen.index("first\n") < seen.index("second\n")  # live, in order, from the CloudWatch stream
    assert seen.endswith("second\n")  # read to its end, not mixed with the exact stdout that replaced it
    assert read_log(ws, rows[0]["id"]) == "first\nsecond\n"  # afterwards: the command's own stdout


def test_a_configured_batch_backend_stages_inputs_through_a_configured_remote(ws, batch_world, monkeypatch):
    """``ws backend add aws batch -o staging=stage``: the remote's URL and options, secrets from the environment
    (never .ws/), the spec's inputs staged in, container and labels on the job, outputs committed."""
    import tomllib

    from workspace.jobs.engine import run_spec

    keys = batch_world.keys
    for name in list(os.environ):
        if name.startswith(("AWS_", "WS_REMOTE_", "WS_BACKEND_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WS_REMOTE_STAGE_KEY", keys["key"])
    monkeypatch.setenv("WS_REMOTE_STAGE_SECRET", keys["secret"])
    monkeypatch.setenv("WS_BACKEND_AWS_AWS_ACCESS_KEY_ID", keys["key"])
    monkeypatch.setenv("WS_BACKEND_AWS_AWS_SECRET_ACCESS_KEY", keys["secret"])
    ws.add_remote("stage", f"s3://{batch_world.bucket}/cfg-{uuid.uuid4().hex[:8]}",
                  {"endpoint_url": batch_world.endpoint, "region": batch_world.region})
    queue = batch_world.new_queue()
    ws.add_backend("aws", "batch", {"job_queue": queue, "region": batch_world.region,
                                    "endpoint_url": batch_world.endpoint, "job_role_arn": batch_world.job_role_arn,
                                    "staging": "stage", "poll_interval": "0", "max_attempts": "1"})
    config_text = (ws.root / ".ws" / "config.toml").read_text()
    assert keys["secret"] not in config_text and tomllib.loads(config_text)["backend"]["aws"]["type"] == "batch"
    checks = ws.check_backend("aws")
    assert [(c["check"], c["ok"]) for c in checks] == [("options", True), ("queue", True), ("staging", True)], checks
    ws.add_backend("nowhere", "batch", {"job_queue": "no-such-queue", "region": batch_world.region,
                                        "endpoint_url": batch_world.endpoint, "staging": "stage"})
    bad = {c["check"]: c for c in ws.check_backend("nowhere")}
    assert not bad["queue"]["ok"] and "no AWS credentials" in bad["queue"]["detail"]  # its own secrets: none
    monkeypatch.setenv("WS_BACKEND_NOWHERE_AWS_ACCESS_KEY_ID", keys["key"])
    monkeypatch.setenv("WS_BACKEND_NOWHERE_AWS_SECRET_ACCESS_KEY", keys["secret"])
    bad = {c["check"]: c for c in ws.check_backend("nowhere")}
    assert not bad["queue"]["ok"] and "no job queue 'no-such-queue'" in bad["queue"]["detail"]
    with pytest.raises(Exception, match="no remote of that name"):
        ws.add_backend("typo", "batch", {"job_queue": queue, "staging": "stgae"})
    write(ws.root, "data/in.txt", "12345\n")
    ws.commit("input")
    write(ws.root, "jobs/count.yaml",
          "command: mkdir -p out && wc -c < data/in.txt > out/n.txt\ninputs: [data/in.txt]\n"
          "outputs: [out/n.txt]\ncontainer: {image: 'python:3.12-slim', runtime: docker}\n"
          "labels: {project: demo}\nbackend: aws\n")
    result = run_spec(ws, "count", wait=True)
    (job,) = result["jobs"]
    assert result["state"] == "SUCCEEDED", job["reason"]
    assert (ws.root / "out" / "n.txt").read_text().strip() == "6"
    row = q.get_job(ws.catalog, job["id"])
    assert row["labels"] == {"project": "demo"} and row["container"] == {"image": "python:3.12-slim",
                                                                         "runtime": "docker"}
    assert set(row["input_files"]) == {"data/in.txt"}
    described = batch_world.client("batch").describe_jobs(jobs=[row["backend_id"]])["jobs"][0]
    assert described["tags"] == {"project": "demo"}
    assert ws.get_commit(row["output_commit"]).provenance["backend"] == "aws"
