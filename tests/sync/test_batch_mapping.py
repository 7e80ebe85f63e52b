"""The AWS Batch mapping without a service: names, job definitions, submissions, refusals, states."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from sync.compute.base import (CANCELLED, FAILED, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, SubmitRequest,
                               UnsatisfiableRequest)
from sync.compute.batch_jobs import (CANCEL_REASON, Defaults, bootstrap, check, definition, definition_name,
                                     entry_command, job_name, parse_job_name, submission, to_status)

# Batch: up to 128 letters, digits, - and _, the first alphanumeric; moto 5.2 also wants the last alphanumeric
STRICT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,126}[A-Za-z0-9]$")


def req(**kw) -> SubmitRequest:
    base = dict(job_id="3f2a9c0d1e2b", name="align", command="python align.py", workdir="/ws", log_dir="/ws/.ws/x")
    base.update(kw)
    return SubmitRequest(**base)


D = Defaults(image="python:3.12-slim", workspace_root="/ws", job_role_arn="arn:aws:iam::1:role/job")


@pytest.mark.parametrize("name", ["align", "a.b.c", "_lead", "-dash-", "x" * 300, "ünïcode name", "9", "a__b--c"])
def test_job_names_keep_batchs_rules_and_give_back_the_job_and_attempt(name):
    for attempt in (1, 12, 123456):
        n = job_name(req(name=name, attempt=attempt))
        assert STRICT_NAME.match(n) and len(n) <= 128, n
        assert parse_job_name(n) == ("3f2a9c0d1e2b", attempt)
        assert n.endswith(f"-3f2a9c0d1e2b-{attempt}")
    assert STRICT_NAME.match(definition_name(req(name=name)))
    assert parse_job_name("someone-elses-job") is None


def test_the_definition_holds_image_resources_role_retries_timeout_and_the_entrypoint():
    d = definition(req(cpus=4, memory_mb=8192, gpus=1, walltime_s=10.5, retries=2), D)
    props = d["containerProperties"]
    assert d["jobDefinitionName"] == "ws-align" and d["type"] == "container"
    assert props["image"] == "python:3.12-slim" and props["jobRoleArn"] == D.job_role_arn
    assert props["resourceRequirements"] == [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "8192"},
                                             {"type": "GPU", "value": "1"}]
    assert d["timeout"] == {"attemptDurationSeconds": 60} and d["retryStrategy"] == {"attempts": 3}
    assert props["command"][:2] == ["python3", "-c"] and props["command"][-1] == "Ref::wsmanifest"
    assert {"name": "WS_S3_REGION", "value": "us-east-1"} in props["environment"]
    assert "logConfiguration" not in props  # Batch's default group, /aws/batch/job
    plain = definition(req(), D)
    assert plain["containerProperties"]["resourceRequirements"][1] == {"type": "MEMORY", "value": "2048"}
    assert "timeout" not in plain and "retryStrategy" not in plain
    logged = definition(req(), Defaults(image="x", log_group="/ws/jobs"))
    assert logged["containerProperties"]["logConfiguration"] == {"logDriver": "awslogs",
                                                                 "options": {"awslogs-group": "/ws/jobs"}}


def test_the_fingerprint_changes_with_what_the_definition_holds_only():
    fp = lambda r, d=D: definition(r, d)["parameters"]["wsdef"]  # noqa: E731
    same = fp(req())
    assert fp(req(job_id="000000000000", command="other", env={"A": "1"}, attempt=3)) == same  # per-job things
    assert fp(req(image="busybox")) != same and fp(req(cpus=2)) != same and fp(req(walltime_s=3600)) != same
    assert fp(req(), Defaults(image="python:3.12-slim", workspace_root="/ws")) != same  # no job role


def test_the_submission_carries_name_queue_manifest_environment_tags_and_dependencies():
    r = req(env={"OMP_NUM_THREADS": "2"}, labels={"project": "demo"}, attempt=2)
    args = submission(r, D, "q", "arn:def", "s3://b/p/jobs/3f2a9c0d1e2b/2/job.json", ["job-1"])
    assert args["jobName"] == "ws-align-3f2a9c0d1e2b-2" and args["jobQueue"] == "q"
    assert args["jobDefinition"] == "arn:def"
    assert args["parameters"] == {"wsmanifest": "s3://b/p/jobs/3f2a9c0d1e2b/2/job.json"}
    env = {e["name"]: e["value"] for e in args["containerOverrides"]["environment"]}
    assert env == {"OMP_NUM_THREADS": "2", "WS_JOB_ID": "3f2a9c0d1e2b", "WS_JOB_ATTEMPT": "2"}
    assert args["tags"] == {"project": "demo"} and args["dependsOn"] == [{"jobId": "job-1"}]
    assert "schedulingPriorityOverride" not in args
    fair = submission(req(priority=7), Defaults(image="x", fair_share=True), "q", "d", "s3://b/m")
    assert fair["schedulingPriorityOverride"] == 7


@pytest.mark.parametrize("fld,kw,defaults", [
    ("container.image", {}, Defaults()),
    ("container.runtime", {"runtime": "singularity"}, D),
    ("resources.nodes", {"nodes": 2}, D),
    ("resources.disk", {"disk_mb": 10}, D),
    ("resources.cpus", {"cpus": 0}, D),
    ("artifacts", {"artifacts": ["https://x"]}, D),
    ("notify.on", {"notifications": ["finished"]}, D),
    ("policies.max_queue", {"max_queue_s": 60}, D),
    ("policies.priority", {"priority": 1}, D),
    ("retries", {"retries": 10}, D),
    ("env", {"env": {"AWS_BATCH_JOB_ID": "x"}}, D),
    ("labels", {"labels": {"aws:x": "y"}}, D),
    ("outputs", {"output_dirs": ["/abs/"]}, D),
    ("outputs", {"output_files": [".ws/catalog.db"]}, D),
    ("inputs", {"input_files": {"../up": ""}}, D),
    ("workdir", {"workdir": "/elsewhere"}, D),
])
def test_what_batch_cannot_honour_is_refused_naming_the_field(fld, kw, defaults):
    with pytest.raises(UnsatisfiableRequest) as info:
        check(req(**kw), defaults)
    assert info.value.field == fld and info.value.exit_code == 9


def test_what_batch_can_honour_passes():
    check(req(image="busybox", runtime="docker", gpus=2, retries=9, walltime_s=5, labels={"team": "a b"},
              workdir="/ws/src", output_dirs=["out/"], input_files={"data/a.csv": "0" * 64}), D)


def job(status, reason=None, code=None, detail=None, **kw):
    entry = {"jobId": "j", "jobName": "ws-a-3f2a9c0d1e2b-1", "status": status, "createdAt": 1_000,
             "startedAt": 2_000, "stoppedAt": 5_000, **kw}
    if reason:
        entry["statusReason"] = reason
    if code is not None or detail:
        entry["container"] = {k: v for k, v in (("exitCode", code), ("reason", detail)) if v is not None}
    return entry


@pytest.mark.parametrize("entry,state,code,reason", [
    (job("SUBMITTED"), QUEUED, None, "SUBMITTED"),
    (job("RUNNABLE", "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - no environment fits"), QUEUED, None,
     "RUNNABLE: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - no environment fits"),
    (job("STARTING"), QUEUED, None, "STARTING"),
    (job("RUNNING"), RUNNING, None, None),
    (job("SUCCEEDED", code=0), SUCCEEDED, 0, None),
    (job("SUCCEEDED"), SUCCEEDED, 0, None),
    (job("FAILED", "Essential container in task exited", code=3), FAILED, 3, "exit code 3"),
    (job("FAILED", "Essential container in task exited", code=137,
         detail="OutOfMemoryError: Container killed due to memory usage"), OUT_OF_MEMORY, 137,
     "out of memory: OutOfMemoryError: Container killed due to memory usage"),
    (job("FAILED", "Job attempt duration exceeded timeout"), FAILED, None,
     "timed out: Job attempt duration exceeded timeout"),
    (job("FAILED", CANCEL_REASON), CANCELLED, None, "cancelled by user"),
    (job("FAILED", CANCEL_REASON, code=143), CANCELLED, 143, "cancelled by user"),
    (job("FAILED", "Essential container in task exited", code=121), FAILED, 121,
     "exit code 121: the ws entrypoint could not stage the inputs in (see the job's log)"),
    (job("FAILED", "Task failed to start", detail="CannotPullContainerError: pull access denied"), FAILED, None,
     "Task failed to start"),
    (job("PAUSED"), QUEUED, None, "AWS Batch status 'PAUSED'"),
])
def test_every_batch_state_maps_onto_ours_with_a_reason(entry, state, code, reason):
    st = to_status(entry)
    assert (st.state, st.exit_code) == (state, code)
    assert st.reason == reason
    if st.final:
        assert st.started_ns == 2_000_000_000 and st.finished_ns == 5_000_000_000


def test_the_exit_code_of_the_last_attempt_counts_when_the_job_has_none():
    entry = job("FAILED", "Essential container in task exited",
                attempts=[{"container": {"exitCode": 1}}, {"container": {"exitCode": 4, "reason": "boom"}}])
    st = to_status(entry)
    assert st.exit_code == 4 and st.reason == "exit code 4: boom"


def test_the_embedded_entrypoint_runs_on_the_standard_library_alone():
    """``python3 -I -S``: no site-packages, no ws on the path; a bad argument is exit 123 and one line."""
    cmd = entry_command()
    assert cmd[-1] == "Ref::wsmanifest" and len(bootstrap()) < 12_000  # DescribeJobs repeats it per job
    out = subprocess.run([sys.executable, "-I", "-S", "-c", cmd[2], "not-an-s3-url"], capture_output=True,
                         text=True, timeout=60, cwd="/")
    assert out.returncode == 123 and out.stderr.startswith("ws-batch: usage: batch_entry s3://")
    assert entry_command("python3 -m sync.compute.batch_entry") == ["python3", "-m", "sync.compute.batch_entry",
                                                                    "Ref::wsmanifest"]


def test_the_container_side_keeps_python_3_8s_grammar_and_the_standard_library():
    import ast

    from sync.compute import batch_entry, batch_s3

    for module in (batch_s3, batch_entry):
        tree = ast.parse(open(module.__file__, encoding="utf-8").read(), feature_version=(3, 8))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        allowed = {"sync", "ws_batch_s3", "zstandard", "compression", "__future__"}  # compression: 3.14
        assert imported <= set(sys.stdlib_module_names) | allowed, \
            imported - set(sys.stdlib_module_names)
