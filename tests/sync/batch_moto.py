"""AWS Batch for the tests: moto's Batch, IAM, CloudWatch Logs and S3, plus a stand-in for the compute environment.

moto (5.2, server mode, ``{"batch": {"use_docker": false}}``) accepts and
describes Batch jobs but runs nothing: it marks every job SUCCEEDED inside the
SubmitJob call, with no exit code, and creates no log group. That is not what
AWS does, so :class:`ComputeEnvironment` plays, explicitly, the part moto
skips. While it is installed (the moto server runs in this test process):

- a submitted job stays SUBMITTED in moto instead of being finished at once
  (``BatchSimpleBackend._mark_job_as_finished`` is replaced);
- a thread takes it through RUNNABLE and STARTING to RUNNING and runs its
  container command for real, in a local process: the job definition's
  command with ``Ref::`` parameters filled in, with the environment Batch
  would give the container (the definition's and the overrides' variables,
  ``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JQ_NAME``, ``AWS_BATCH_JOB_ATTEMPT``,
  credentials for the moto S3, a fresh ``TMPDIR`` as a container's own
  ``/tmp``) and ``python3`` on PATH (the image's interpreter);
- each line the process writes (stdout and stderr together, as the awslogs
  driver sends them) becomes an event of the job's stream in the
  ``/aws/batch/job`` log group, written through the CloudWatch Logs API as it
  comes;
- when the process ends the job becomes SUCCEEDED or FAILED with the exit code
  and reason in its attempt, as AWS reports them (``Essential container in
  task exited``);
- ``terminate_job`` and ``cancel_job`` (moto's ``Job.terminate``) stop it as
  ECS stops a container: SIGTERM to the entrypoint (the container's first
  process), then SIGKILL to every process of its session after a grace period;
  a job cancelled before it started never runs.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

ACCOUNT = "123456789012"
LOG_GROUP = "/aws/batch/job"
QUEUE = "ws-test-queue"


@dataclass
class BatchWorld:
    """What the fixture set up on the moto server."""

    endpoint: str
    region: str
    queue: str
    job_role_arn: str
    bucket: str
    keys: dict  # key, secret for S3 and the AWS APIs
    environment: "ComputeEnvironment"

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.keys["key"], aws_secret_access_key=self.keys["secret"])

    def new_queue(self) -> str:
        """A fresh job queue on the same compute environment (job names never meet an earlier test's)."""
        name = f"ws-q-{uuid.uuid4().hex[:10]}"
        self.client("batch").create_job_queue(jobQueueName=name, state="ENABLED", priority=1,
                                              computeEnvironmentOrder=[{"order": 1,
                                                                        "computeEnvironment": "ws-test-ce"}])
        return name

    def staging_options(self) -> dict:
        return {"endpoint_url": self.endpoint, "region": self.region, **self.keys}

    def backend_options(self, prefix: str, **extra) -> dict:
        """Options of a BatchBackend on this world, staging under ``s3://<bucket>/<prefix>``."""
        opts = dict(job_queue=self.queue, region=self.region, endpoint_url=self.endpoint,
                    aws_access_key_id=self.keys["key"], aws_secret_access_key=self.keys["secret"],
                    job_role_arn=self.job_role_arn, default_image="python:3.12-slim",
                    staging=f"s3://{self.bucket}/{prefix}", staging_name="batch-staging",
                    staging_options=self.staging_options(), poll_interval=0, max_attempts=1)
        opts.update(extra)
        return opts


def set_up(endpoint: str, region: str, keys: dict) -> BatchWorld:
    """Configure moto for Batch without Docker and create a role, a compute environment, a queue, a bucket."""
    import boto3
    import requests

    requests.post(f"{endpoint}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=10).raise_for_status()
    session = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id=keys["key"],
                   aws_secret_access_key=keys["secret"])
    iam, batch = boto3.client("iam", **session), boto3.client("batch", **session)
    trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},' \
            '"Action":"sts:AssumeRole"}]}'
    service_role = iam.create_role(RoleName=f"ws-batch-service-{uuid.uuid4().hex[:8]}",
                                   AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    job_role = iam.create_role(RoleName=f"ws-batch-job-{uuid.uuid4().hex[:8]}",
                               AssumeRolePolicyDocument=trust.replace("batch.", "ecs-tasks."))["Role"]["Arn"]
    ce = batch.create_compute_environment(computeEnvironmentName="ws-test-ce", type="UNMANAGED", state="ENABLED",
                                          serviceRole=service_role)["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    bucket = f"ws-batch-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", **session).create_bucket(Bucket=bucket)
    boto3.client("logs", **session).create_log_group(logGroupName=LOG_GROUP)
    env = ComputeEnvironment(endpoint, region, keys)
    return BatchWorld(endpoint, region, QUEUE, job_role, bucket, keys, env)


class ComputeEnvironment:
    """Runs the jobs moto accepts, the way Batch's compute environment would (see the module doc)."""

    def __init__(self, endpoint: str, region: str, keys: dict, grace_s: float = 2.0):
        self.endpoint = endpoint
        self.region = region
        self.keys = keys
        self.grace_s = grace_s
        self.extra_env: dict[str, str] = {}  # a test may add variables (e.g. PYTHONPATH: "ws in the image")
        self.open = threading.Event()  # cleared: accepted jobs stay RUNNABLE (a compute environment that is full)
        self.open.set()
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._saved: list = []
        self._logs = None
        self.started: list[str] = []  # job ids, in the order they started running

    # -- installing into moto ----------------------------------------------------------
    def install(self) -> None:
        from moto.batch.models import Job
        from moto.batch_simple.models import BatchSimpleBackend

        env = self
        original_terminate = Job.terminate
        self.logs()  # made here, once: boto3 clients are not to be created from several threads at a time

        def accept(backend_self, include_start_attempt, job):
            backend_self.backend._jobs[job.job_id] = job
            threading.Thread(target=env._run, args=(job,), daemon=True, name=f"batch-{job.job_id[:8]}").start()

        def terminate(job, reason):
            original_terminate(job, reason)
            env._stop(job)

        self._saved = [(BatchSimpleBackend, "_mark_job_as_finished", BatchSimpleBackend._mark_job_as_finished),
                       (Job, "terminate", original_terminate)]
        BatchSimpleBackend._mark_job_as_finished = accept
        Job.terminate = terminate

    def uninstall(self) -> None:
        for owner, name, value in self._saved:
            setattr(owner, name, value)
        self._saved = []
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _kill_session(proc.pid)

    # -- one job ---------------------------------------------------------------------------
    def _run(self, job) -> None:
        job.status = "RUNNABLE"
        while not job.stop and not self.open.wait(0.05):
            pass  # no room in the environment: the job waits, as on a full Batch compute environment
        if job.stop:  # cancelled while queued: it never starts
            job._mark_stopped(success=False)
            return
        job.status = "STARTING"
        with tempfile.TemporaryDirectory(prefix="ws-container-") as tmp:
            try:
                proc = self._start(job, tmp)
            except OSError as exc:
                job.job_stopped_reason = f"CannotStartContainerError: {exc}"
                job._mark_stopped(success=False)
                return
            self.started.append(job.job_id)
            self._forward(job, proc)
            code = proc.wait()
            code = 128 - code if code < 0 else code
            with self._lock:
                self._procs.pop(job.job_id, None)
            job.exit_code = code
            attempt = job.latest_attempt["container"]
            attempt["exitCode"] = code
            if not job.stop and code:
                job.job_stopped_reason = "Essential container in task exited"
            attempt["reason"] = job.job_stopped_reason
            job._mark_stopped(success=code == 0 and not job.stop)

    def _start(self, job, tmp: str) -> subprocess.Popen:
        props = job.job_definition.container_properties
        command = [_fill(part, job.parameters) for part in props.get("command") or []]
        env = {e["name"]: e["value"] for e in job._get_container_property("environment", [])}
        env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + "/usr/local/bin:/usr/bin:/bin",
                   HOME=tmp, TMPDIR=tmp, LANG="C.UTF-8", AWS_BATCH_JQ_NAME=job.job_queue.name,
                   AWS_BATCH_JOB_ATTEMPT="1", AWS_BATCH_CE_NAME="ws-test-ce", AWS_ACCESS_KEY_ID=self.keys["key"],
                   AWS_SECRET_ACCESS_KEY=self.keys["secret"], **self.extra_env)
        job.job_started_at = datetime.datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        self.logs().create_log_stream(logGroupName=LOG_GROUP, logStreamName=job.log_stream_name)
        proc = subprocess.Popen(command, env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        with self._lock:
            self._procs[job.job_id] = proc
        job.status = "RUNNING"
        if job.stop:  # terminated while it was starting
            self._stop(job)
        return proc

    def _forward(self, job, proc: subprocess.Popen) -> None:
        """Each output line becomes a log event of the job's stream, as it comes."""
        for line in iter(proc.stdout.readline, b""):
            self.logs().put_log_events(logGroupName=LOG_GROUP, logStreamName=job.log_stream_name,
                                       logEvents=[{"timestamp": int(time.time() * 1000),
                                                   "message": line.decode("utf-8", "replace").rstrip("\n")}])
        proc.stdout.close()

    def _stop(self, job) -> None:
        with self._lock:
            proc = self._procs.get(job.job_id)
        if proc is None:
            return  # not started: _run sees job.stop and never starts it
        threading.Thread(target=self._stop_container, args=(proc,), daemon=True).start()

    def _stop_container(self, proc: subprocess.Popen) -> None:
        try:
            os.kill(proc.pid, signal.SIGTERM)  # what "docker stop" sends to the container's first process
        except ProcessLookupError:
            return
        try:
            proc.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            pass
        _kill_session(proc.pid)  # then the whole container goes

    def logs(self):
        if self._logs is None:
            import boto3

            self._logs = boto3.client("logs", endpoint_url=self.endpoint, region_name=self.region,
                                      aws_access_key_id=self.keys["key"], aws_secret_access_key=self.keys["secret"])
        return self._logs


def _fill(part: str, parameters: dict) -> str:
    """Batch's parameter substitution: ``Ref::name`` placeholders in a command argument."""
    return re.sub(r"Ref::([A-Za-z0-9_]+)", lambda m: str(parameters.get(m.group(1), m.group(0))), part)


def _kill_session(sid: int) -> None:
    """SIGKILL every process whose session is ``sid`` (a container's processes)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
