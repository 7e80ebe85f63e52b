"""The Python jobs API on a real workspace with the real local backend (waiting in-process)."""

from __future__ import annotations

import pytest

from tests.conftest import write
from workspace.jobs.api import Job, JobPolicies, Resources, Task, Workflow, combined_state
from workspace.jobs.spec import InvalidSpec


def test_combined_state():
    assert combined_state([]) is None
    assert combined_state(["SUCCEEDED", "SKIPPED"]) == "SUCCEEDED"
    assert combined_state(["SUCCEEDED", "RUNNING", "FAILED"]) == "RUNNING"
    assert combined_state(["SUCCEEDED", "LOST"]) == "LOST"
    assert combined_state(["FAILED", "LOST"]) == "FAILED"


def test_job_built_in_python_runs_and_reports(ws):
    job = Job("hello", 'mkdir -p out && echo "hi {who}" > out/{who}.txt && echo said {who} && echo oops >&2',
              params={"who": ["a", "b"]}, outputs=["out/{who}.txt"], resources=Resources(cpus=1),
              policies=JobPolicies(retries=0))
    assert job.tasks == [] and job.status is None
    assert [e.command.split("&&")[1].strip() for e in job.expand(ws)] == ['echo "hi a" > out/a.txt',
                                                                         'echo "hi b" > out/b.txt']
    job.submit(ws, wait=True)
    assert job.status == "SUCCEEDED" and job.done() and len(job.tasks) == 2
    task = job.tasks[0]
    assert isinstance(task, Task) and task.params == {"who": "a"} and task.exit_code == 0
    assert task.stdout() == "said a\n" and task.stderr() == "oops\n"
    assert "said b" in job.stdout() and job.stdout().startswith("==> ")
    outs = job.outputs()
    assert sorted(outs) == ["out/a.txt", "out/b.txt"]
    assert ws.read(ws.jobs.show(task.id)["output_commit"], "out/a.txt") == b"hi a\n"
    assert [e["state"] for e in task.events()][-1] == "SUCCEEDED"
    assert ws.jobs.get(task.id[:8]).id == task.id


def test_workflow_rerun_and_load(ws):
    write(ws.root, "jobs/flaky.yaml", "command: test -e ok.flag\n")
    job = Job.load(ws, "flaky")
    job.submit(wait=True)
    assert job.status == "FAILED" and job.tasks[0].exit_code == 1
    wf = Workflow.load(ws, job.workflow_id)
    assert wf.status == "FAILED" and ws.jobs.workflow("latest").id == wf.id
    write(ws.root, "ok.flag", "")
    again = wf.rerun(wait=True)
    assert again.id != wf.id and again.status == "SUCCEEDED"


def test_spec_from_dict_and_errors(ws):
    job = Job.from_dict({"name": "d", "command": "echo {x}", "params": {"x": [1]}, "resources": {"memory": "1GB"}})
    assert job.spec.resources.memory_mb == 1024
    with pytest.raises(InvalidSpec, match="unknown template field"):
        Job("bad", "echo {nope}")
    with pytest.raises(InvalidSpec, match="no workspace"):
        Job("lonely", "true").submit()


def test_python_dependencies_run_first(ws):
    make = Job("make", "mkdir -p mid && echo 21 > mid/n.txt", outputs=["mid/n.txt"])
    double = Job("double", "echo $(( $(cat mid/n.txt) * 2 )) > result.txt", inputs=["mid/n.txt"],
                 outputs=["result.txt"], depends_on=[make])
    double.submit(ws, wait=True)
    assert double.status == "SUCCEEDED" and make.status == "SUCCEEDED" and make.workflow_id == double.workflow_id
    wf = Workflow.load(ws, double.workflow_id)
    assert [t.name for t in wf.tasks] == ["make", "double"] and wf.status == "SUCCEEDED"
    assert ws.read(ws.jobs.show(double.tasks[0].id)["output_commit"], "result.txt") == b"42\n"
