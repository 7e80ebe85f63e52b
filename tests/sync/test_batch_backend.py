"""The AWS Batch backend end to end on the moto server, its jobs run by the stand-in compute environment.

See tests/sync/batch_moto.py for what moto does and what the stand-in does
instead (it runs each job's generated container command in a local process,
against the moto S3, and writes its output lines to CloudWatch Logs).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sync.compute import registry
from sync.compute.base import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, SubmitRequest
from sync.compute.batch import BatchBackend
from sync.compute.batch_aws import BatchAuthError, BatchUnreachable
from sync.errors import BackendError


@pytest.fixture
def root(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def opts(batch_world, root, tmp_path):
    return batch_world.backend_options(f"t-{uuid.uuid4().hex[:8]}", job_queue=batch_world.new_queue(),
                                       workspace_root=root, log_root=root / ".ws" / "jobs", tmp_dir=str(tmp_path))


@pytest.fixture
def backend(opts):
    b = registry.get("batch", **opts)
    yield b
    b.close()


def req(root: Path, job_id: str, command: str = "true", **kw) -> SubmitRequest:
    return SubmitRequest(job_id=job_id, name=kw.pop("name", "align"), command=command, workdir=str(root),
                         log_dir=str(root / ".ws" / "jobs" / job_id), **kw)


def wait_final(backend, ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        st = backend.status(ids)
        if all(s.final for s in st.values()) or time.monotonic() > deadline:
            return st
        backend.wait(ids, 0.1)


def wait_for(condition, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a real condition, with a deadline


def test_constructing_contacts_nothing_and_imports_no_boto3(tmp_path):
    code = ("import sys\nfrom sync.compute import registry\n"
            "b = registry.get('batch', job_queue='q', region='eu-west-1', staging='s3://b/p')\n"
            "b.check_request(__import__('sync.compute.base', fromlist=['x']).SubmitRequest("
            "job_id='0123456789ab', name='x', command='true', workdir='', log_dir='', image='busybox'))\n"
            "print(sorted(m for m in ('boto3', 'botocore', 's3fs', 'fsspec') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_inputs_staged_in_and_outputs_fetched_back(backend, batch_world, root):
    data = os.urandom(3 * 1024 * 1024) + b"tail\n"
    (root / "data").mkdir()
    (root / "data" / "in.bin").write_bytes(data)
    (root / "data" / "run.sh").write_text("#!/bin/sh\necho from script\n")
    os.chmod(root / "data" / "run.sh", 0o755)
    import hashlib

    ids = {"data/in.bin": hashlib.sha256(data).hexdigest(), "data/run.sh": ""}
    r = req(root, "5e3d00000001", "mkdir -p out/sub && wc -c < data/in.bin > out/size.txt && "
            "sha256sum data/in.bin | cut -c1-64 > out/sub/sum.txt && ./data/run.sh > out/sub/script.txt && "
            "cp data/run.sh out/run.sh",
            input_files=ids, output_files=["out/size.txt", "out/run.sh"], output_dirs=["out/sub/"])
    bid = backend.submit(r)
    st = wait_final(backend, [bid])[bid]
    assert st.state == SUCCEEDED, st
    written = backend.fetch_outputs(bid, r, str(root))
    assert sorted(written) == ["out/run.sh", "out/size.txt", "out/sub/script.txt", "out/sub/sum.txt"]
    assert (root / "out" / "size.txt").read_text().strip() == str(len(data))
    assert (root / "out" / "sub" / "sum.txt").read_text().strip() == ids["data/in.bin"]
    assert (root / "out" / "sub" / "script.txt").read_text() == "from script\n"
    assert os.stat(root / "out" / "run.sh").st_mode & 0o100  # the mode came through both ways
    assert not [p for p in root.rglob(".ws-*") if p.is_file()]  # no temporary file left behind
    (job,) = batch_world.client("batch").describe_jobs(jobs=[bid])["jobs"]
    events = batch_world.client("logs").get_log_events(logGroupName="/aws/batch/job", startFromHead=True,
                                                       logStreamName=job["container"]["logStreamName"])["events"]
    assert any(e["message"].startswith("ws-batch: staged in 2 input file(s)") for e in events)  # CloudWatch only
    assert (root / ".ws" / "jobs" / "5e3d00000001" / "stdout").read_text() == ""  # the command's own: nothing


def test_a_second_run_of_the_same_sweep_uploads_nothing_new(opts, batch_world, root, tmp_path):
    (root / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (root / "small.txt").write_text("hello\n")
    files = {"big.bin": "", "small.txt": ""}
    first = registry.get("batch", **opts)
    sweep = [req(root, f"5e3d0000010{i}", f"cat small.txt > o{i}.txt", input_files=files, output_files=[f"o{i}.txt"])
             for i in range(3)]
    first.submit_many(sweep)
    s3 = batch_world.client("s3")
    prefix = opts["staging"].split("/", 3)[3] + "/"

    def objects(kind):
        listed = s3.list_objects_v2(Bucket=batch_world.bucket, Prefix=prefix + kind).get("Contents") or []
        return sorted(o["Key"] for o in listed)

    packs_after_first = objects("packs/")
    assert len(packs_after_first) == 1 and len(objects("index/")) == 1  # one sweep, one pack
    second = registry.get("batch", **opts)  # a new process: knows nothing but the remote
    again = [req(root, f"5e3d0000020{i}", f"cat small.txt > o{i}.txt", input_files=files, output_files=[f"o{i}.txt"])
             for i in range(3)]
    ids = second.submit_many(again)
    assert objects("packs/") == packs_after_first
    assert second._staging()._files and second.aws.calls.count("register_job_definition") == 0
    assert all(s.state == SUCCEEDED for s in wait_final(second, ids).values())
    assert second.fetch_outputs(ids[2], again[2], str(tmp_path / "back")) == ["o2.txt"]
    assert (tmp_path / "back" / "o2.txt").read_text() == "hello\n"


def test_a_changed_input_is_refused_not_staged(backend, root):
    (root / "a.txt").write_text("now\n")
    with pytest.raises(BackendError, match="changed since the job was planned"):
        backend.submit(req(root, "5e3d00000003", "cat a.txt", input_files={"a.txt": "0" * 64}))


def test_job_definitions_are_reused_while_identical(backend, opts, batch_world, root):
    a = backend.submit(req(root, "5e3d00000004", "true", cpus=2, memory_mb=1024))
    b = backend.submit(req(root, "5e3d00000005", "true", cpus=2, memory_mb=1024))
    c = backend.submit(req(root, "5e3d00000006", "true", cpus=2, memory_mb=3072, walltime_s=5, retries=2))
    assert backend.aws.calls.count("register_job_definition") == 2
    batch = batch_world.client("batch")
    jobs = {j["jobId"]: j for j in batch.describe_jobs(jobs=[a, b, c])["jobs"]}
    assert jobs[a]["jobDefinition"] == jobs[b]["jobDefinition"] != jobs[c]["jobDefinition"]
    (latest,) = batch.describe_job_definitions(jobDefinitions=[jobs[c]["jobDefinition"]])["jobDefinitions"]
    assert latest["timeout"] == {"attemptDurationSeconds": 60} and latest["retryStrategy"]["attempts"] == 3
    assert {r["type"]: r["value"] for r in latest["containerProperties"]["resourceRequirements"]} == \
        {"VCPU": "2", "MEMORY": "3072"}
    assert latest["containerProperties"]["jobRoleArn"] == batch_world.job_role_arn
    fresh = registry.get("batch", **opts)
    fresh.submit(req(root, "5e3d00000007", "true", cpus=2, memory_mb=1024))
    assert fresh.aws.calls.count("register_job_definition") == 0  # found by its fingerprint
    wait_final(backend, [a, b, c])


def test_status_of_many_jobs_is_one_describe_per_hundred_and_queued_ones_cancel(backend, batch_world, root):
    batch_world.environment.open.clear()  # a full compute environment: jobs stay RUNNABLE
    try:
        ids = backend.submit_many([req(root, f"5e3d0{i:07d}", "true") for i in range(120)])
        backend.aws.calls.clear()
        st = backend.status(ids)
        assert backend.aws.calls == ["describe_jobs", "describe_jobs"]
        assert {s.state for s in st.values()} == {QUEUED} and st[ids[0]].reason.startswith("RUNNABLE")
        backend.aws.calls.clear()
        backend.cancel(ids)
        assert backend.aws.calls.count("cancel_job") == 120 and "terminate_job" not in backend.aws.calls
        final = wait_final(backend, ids)
        assert {s.state for s in final.values()} == {CANCELLED}
        assert not set(ids) & set(batch_world.environment.started)  # never ran
    finally:
        batch_world.environment.open.set()


def test_statuses_are_rate_limited_and_final_ones_never_asked_again(opts, root):
    b = registry.get("batch", **{**opts, "poll_interval": 3600})
    bid = b.submit(req(root, "5e3d00000008", "exit 5"))
    b.status([bid])  # a new id is asked at once
    b.status([bid])
    assert b.aws.calls.count("describe_jobs") == 1  # within the interval: the last answer
    b.poll_interval_s = 0
    assert wait_final(b, [bid])[bid].state == FAILED
    calls = b.aws.calls.count("describe_jobs")
    assert b.status([bid])[bid].exit_code == 5 and b.aws.calls.count("describe_jobs") == calls


def test_logs_follow_the_cloudwatch_stream_while_running_then_exact_streams(backend, batch_world, root):
    go = root / "go"
    r = req(root, "5e3d00000009", f"echo first; echo warn >&2; while [ ! -f {go} ]; do sleep 0.05; done; "
            "echo second", output_files=[])
    bid = backend.submit(r)
    backend.aws.log_page = 1  # one event per GetLogEvents page: paging is exercised
    folder = root / ".ws" / "jobs" / "5e3d00000009"

    def streamed():
        out, _ = backend.logs(bid)
        return out and "warn" in Path(out).read_text()

    wait_for(streamed, what="the first lines in CloudWatch")
    assert backend.status([bid])[bid].state == RUNNING
    live = (folder / "stdout").read_text()
    assert "first\n" in live and "warn\n" in live and "second" not in live
    assert backend.logs(bid)[1] == ""  # no stderr of its own while it runs
    go.write_text("")
    assert wait_final(backend, [bid])[bid].state == SUCCEEDED
    out, err = backend.logs(bid)
    assert Path(out).read_text() == "first\nsecond\n" and Path(err).read_text() == "warn\n"
    calls = len(backend.aws.calls)
    assert backend.logs(bid) == (out, err) and backend.aws.calls[calls:] == ["describe_jobs"]


def test_follow_reads_the_stream_through_the_log_folder(backend, root):
    """What `ws jobs logs --follow` does for a Batch job: logs() grows the file, the reader follows it."""
    go = root / "go2"
    bid = backend.submit(req(root, "5e3d00000010", f"echo one; while [ ! -f {go} ]; do sleep 0.05; done; echo two"))
    path = root / ".ws" / "jobs" / "5e3d00000010" / "stdout"
    seen = ""
    with_reader = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        backend.logs(bid)
        if path.exists():
            if with_reader is None:
                with_reader = open(path, encoding="utf-8")  # a follower holds the file open
            seen += with_reader.read()
        if "one" in seen and not go.exists():
            go.write_text("")
        if backend.status([bid])[bid].final:
            backend.logs(bid)
            seen += with_reader.read()
            break
        time.sleep(0.05)
    with_reader.close()
    assert "one\n" in seen and seen.index("one\n") < seen.index("two\n")  # the whole stream, in order
    assert path.read_text() == "one\ntwo\n"


def test_terminated_running_job_and_failed_job_reasons(backend, root):
    marker = root / "started"
    bid = backend.submit(req(root, "5e3d00000011", f"touch {marker}; sleep 60"))
    wait_for(marker.exists, what="the job to start")
    backend.cancel([bid])
    st = wait_final(backend, [bid])[bid]
    assert st.state == CANCELLED and st.reason == "cancelled by user"
    bad = backend.submit(req(root, "5e3d00000012", "echo nope >&2; exit 7"))
    st = wait_final(backend, [bad])[bad]
    assert st.state == FAILED and st.exit_code == 7
    assert st.reason == "exit code 7: Essential container in task exited"


def test_a_failing_stage_in_names_the_entrypoint(backend, batch_world, root):
    (root / "gone.txt").write_text("x\n")
    r = req(root, "5e3d00000013", "cat gone.txt", input_files={"gone.txt": ""})
    batch_world.environment.open.clear()  # the job waits in the queue...
    try:
        bid = backend.submit(r)
        s3 = batch_world.client("s3")
        prefix = backend.staging_url.split("/", 3)[3]
        for obj in s3.list_objects_v2(Bucket=batch_world.bucket, Prefix=prefix + "/packs/").get("Contents") or []:
            s3.delete_object(Bucket=batch_world.bucket, Key=obj["Key"])  # ...while its pack disappears
    finally:
        batch_world.environment.open.set()
    st = wait_final(backend, [bid])[bid]
    assert st.state == FAILED and st.exit_code == 121 and "could not stage the inputs in" in st.reason
    out, err = backend.logs(bid)
    assert "staging in failed" in Path(out).read_text() and err == ""  # the stream: the command never ran


def test_entrypoint_installed_in_the_image(opts, batch_world, root, monkeypatch):
    """``entrypoint: python3 -m sync.compute.batch_entry`` for images that have ws installed."""
    monkeypatch.setitem(batch_world.environment.extra_env, "PYTHONPATH", str(Path(__file__).parents[2]))
    b = registry.get("batch", **{**opts, "entrypoint": "python3 -m sync.compute.batch_entry"})
    r = req(root, "5e3d00000014", "echo installed > o.txt", output_files=["o.txt"])
    bid = b.submit(r)
    assert wait_final(b, [bid])[bid].state == SUCCEEDED
    assert b.fetch_outputs(bid, r, str(root)) == ["o.txt"] and (root / "o.txt").read_text() == "installed\n"
    (job,) = batch_world.client("batch").describe_jobs(jobs=[bid])["jobs"]
    assert job["container"]["command"][:3] == ["python3", "-m", "sync.compute.batch_entry"]


def test_find_uses_the_job_name_alone(backend, opts, root):
    r = req(root, "5e3d00000015", "true", attempt=3, name="a.weird name/with#chars")
    bid = backend.submit(r)
    other = registry.get("batch", **opts)
    assert other.find(r) == bid
    assert other.find(req(root, "5e3d00000015", "true", attempt=4, name="a.weird name/with#chars")) is None
    wait_final(backend, [bid])


# -- errors: one clear line, nothing lost ---------------------------------------------------------
def test_missing_credentials_is_one_line_exit_11(opts, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    b = registry.get("batch", **{**opts, "aws_access_key_id": None, "aws_secret_access_key": None})
    with pytest.raises(BatchAuthError) as info:
        b.status(["00000000-0000-4000-8000-000000000001"])
    assert info.value.exit_code == 11 and "no AWS credentials" in str(info.value) and "\n" not in str(info.value)


def test_a_wrong_queue_names_the_queues_there(opts, root, batch_world):
    b = registry.get("batch", **{**opts, "job_queue": "no-such-queue"})
    with pytest.raises(BackendError) as info:
        b.submit(req(root, "5e3d00000016"))
    assert "no job queue 'no-such-queue'" in str(info.value) and batch_world.queue in str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == 10


def test_an_unreachable_endpoint_is_one_line_and_keeps_nothing_stale(opts, root):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    b = registry.get("batch", **{**opts, "endpoint_url": f"http://127.0.0.1:{port}", "connect_timeout": 1})
    with pytest.raises(BatchUnreachable) as info:
        b.status(["00000000-0000-4000-8000-000000000002"])
    assert f"cannot reach http://127.0.0.1:{port}" in str(info.value) and "\n" not in str(info.value)
    assert b._cache == {}  # nothing was made up: no LOST for a job we could not ask about


def test_refused_requests_name_the_spec_field(backend, root):
    from sync.compute.base import UnsatisfiableRequest

    cases = {"container.runtime": dict(runtime="singularity"), "resources.nodes": dict(nodes=2),
             "artifacts": dict(artifacts=["https://x/y"]), "policies.priority": dict(priority=3),
             "retries": dict(retries=10), "env": dict(env={"AWS_BATCH_X": "1"}), "outputs": dict(output_files=["../x"]),
             "inputs": dict(input_files={"/etc/passwd": ""}), "workdir": dict(workdir="/elsewhere")}
    for fld, kw in cases.items():
        with pytest.raises(UnsatisfiableRequest) as info:
            r = req(root, "5e3d00000017")
            backend.submit(SubmitRequest(**{**r.__dict__, **kw}))
        assert info.value.field == fld and info.value.exit_code == 9, fld
    assert "submit_job" not in backend.aws.calls


def test_a_backend_registered_with_options_serves_specs(batch_world, opts, monkeypatch):
    from sync.staged import batch_backend

    monkeypatch.setitem(registry._BACKENDS, "batch-x", functools.partial(batch_backend, **opts))
    assert isinstance(registry.get("batch-x"), BatchBackend)
    with pytest.raises(BackendError, match="cannot open its staging remote"):  # built by hand, no opener
        BatchBackend(job_queue=opts["job_queue"], staging=opts["staging"])._staging()


def test_backend_check_reports_queue_and_staging_one_line_each(opts):
    good = registry.get("batch", **opts).check()
    assert [(name, ok) for name, ok, _ in good] == [("queue", True), ("staging", True)]
    bad = registry.get("batch", **{**opts, "job_queue": "nope", "staging": None}).check()
    assert [(name, ok) for name, ok, _ in bad] == [("queue", False), ("staging", False)]
    assert "no job queue 'nope'" in bad[0][2] and "option staging" in bad[1][2]


def test_dependencies_within_a_batch_become_batch_dependencies(backend, batch_world, root):
    first = req(root, "5e3d00000018", "echo a > a.txt", output_files=["a.txt"])
    second = req(root, "5e3d00000019", "true", depends_on=["5e3d00000018", "not-in-this-batch"])
    a, b = backend.submit_many([first, second])
    jobs = {j["jobId"]: j for j in batch_world.client("batch").describe_jobs(jobs=[a, b])["jobs"]}
    assert jobs[b]["dependsOn"] == [{"jobId": a}] and jobs[a]["dependsOn"] == []
    wait_final(backend, [a, b])
