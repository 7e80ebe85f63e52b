"""``resources`` on the local backend: memory is enforced (OUT_OF_MEMORY), gpus are checked at validation."""

from __future__ import annotations

import json
import os
import sys

import pytest

from catalog import jobs as cj
from sync.compute import local_limits
from tests.conftest import write
from workspace.jobs import engine

ALLOC = f"{sys.executable} -c 'x = bytearray({{mb}} * 1024 * 1024); print(len(x))'"
needs_cgroup = pytest.mark.skipif(not local_limits.cgroup_available(),
                                  reason="no writable cgroup v1 memory controller here (memory falls back to "
                                         "RLIMIT_AS, tested in tests/sync/test_local_limits.py)")
no_gpus = pytest.mark.skipif(local_limits.gpu_count() > 0, reason="this machine has gpus")


def spec(ws, name: str, body: str) -> None:
    write(ws.root, f"jobs/{name}.yaml", f"name: {name}\n" + body)


def run(ws, name: str, **kw) -> dict:
    kw.setdefault("wait", True)
    return engine.run_spec(ws, name, cwd=str(ws.root), **kw)


@needs_cgroup
def test_job_beyond_its_memory_limit_ends_out_of_memory(ws, cli):
    spec(ws, "hog", f"command: \"{ALLOC}\"\nparams: {{mb: [1024]}}\nresources: {{memory: 100MB}}\n")
    res = run(ws, "hog")
    job = res["jobs"][0]
    assert res["state"] == "FAILED"
    assert job["state"] == "OUT_OF_MEMORY" and job["exit_code"] == 137, job
    assert "out of memory" in job["reason"] and "100 MiB" in job["reason"]
    cgroup = local_limits.read_cgroup_record(job["log_dir"])[0]
    assert not os.path.exists(cgroup), "the job's cgroup was left behind"
    listed = json.loads(cli(ws.root, "jobs", "--state", "out_of_memory", "--json").stdout)
    assert [r["id"] for r in listed] == [job["id"]]
    # 'rerun --failed' runs it again (here with the same limit, so it ends the same way)
    new_wf = engine.rerun_failed(ws, res["workflow"], wait=True)
    assert [j["state"] for j in cj.list_jobs(ws.catalog, workflow=new_wf)] == ["OUT_OF_MEMORY"]


@needs_cgroup
def test_job_within_its_memory_limit_succeeds(ws):
    spec(ws, "fits", f"command: \"{ALLOC}\"\nparams: {{mb: [32]}}\nresources: {{memory: 256MB}}\n")
    job = run(ws, "fits")["jobs"][0]
    assert job["state"] == "SUCCEEDED", job
    assert not os.path.exists(local_limits.read_cgroup_record(job["log_dir"])[0])


@no_gpus
def test_more_gpus_than_the_machine_has_is_refused(ws, run_ws):
    spec(ws, "train", "command: python train.py\nresources: {gpus: 1}\n")
    for args in (("jobs", "validate", "train"), ("run", "train")):
        proc = run_ws(ws.root, *args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 9, (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("ws: error: jobs/train.yaml: field 'resources.gpus': "), lines
        assert "asks for 1 gpu but this machine has 0" in lines[0]
    assert cj.list_jobs(ws.catalog) == []  # nothing recorded, nothing started


def test_out_of_memory_counts_as_a_failure_of_a_workflow():
    from workspace.jobs.api import combined_state

    assert combined_state(["SUCCEEDED", "OUT_OF_MEMORY"]) == "OUT_OF_MEMORY"
    assert combined_state(["FAILED", "OUT_OF_MEMORY"]) == "FAILED"
