"""The AWS Batch backend: jobs in containers on a Batch job queue, files staged through an S3 remote.

A job attempt becomes one Batch job named ``ws-<spec>-<job id>-<attempt>``
(so :meth:`BatchBackend.find` finds it from those alone), submitted to the
configured queue with a job definition registered from the request (image,
vCPUs, memory, gpus, retry strategy, timeout, job role) and reused while an
active revision holds the same (:mod:`sync.compute.batch_jobs`).

There is no shared file system: before submitting, the job's input files go
up to the staging remote like a push (only chunks it lacks; see
:mod:`sync.staging`) with a job manifest; inside the container the ws
entrypoint (:mod:`sync.compute.batch_entry`) stages them in, runs the
command and stages the declared outputs out; :meth:`BatchBackend.fetch_outputs`
brings them back into the workspace, verified.

Status asks ``describe_jobs`` for every job (100 ids per call), at most once
per ``poll_interval`` (answers in between come from the last one; new ids are
always asked; final states are never asked again). Logs come from the job's
CloudWatch Logs stream while it runs and, once it ended, from the exact
stdout and stderr the entrypoint staged out.

Nothing is contacted, and boto3 is not imported, until the first call.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from sync.compute.base import LOST, BackendStatus, ComputeBackend, SubmitRequest
from sync.compute.batch_aws import AWS
from sync.compute.batch_jobs import (CANCEL_REASON, FINGERPRINT_PARAM, QUEUED_STATES, Defaults, check,
                                     check_resources, definition, job_name, parse_job_name, relative_path,
                                     submission, task_workdir, to_status)
from sync.errors import BackendError, SyncError

DEFAULT_POLL_INTERVAL_S = 10.0
DESCRIBE_BATCH = 100  # describe_jobs takes at most 100 ids
DEFAULT_LOG_GROUP = "/aws/batch/job"
LOG_STATE = ".batch-log.json"  # in a job's log folder: which CloudWatch stream, and how far it was read


def _flag(value) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


class BatchBackend(ComputeBackend):
    """Jobs on AWS Batch. Options (strings from a config file are converted); see docs/backends.md:

    ``job_queue`` (name or ARN), ``region``, ``endpoint_url`` (tests), ``profile``
    or ``aws_access_key_id``/``aws_secret_access_key``/``aws_session_token``;
    ``job_role_arn`` (what the container may do: read and write the staging
    prefix), ``execution_role_arn``; ``default_image``, ``default_memory_mb``;
    ``log_group``; ``staging`` (the S3 URL of the remote files go through)
    and ``open_staging`` (a callable returning its :class:`sync.staging.Stager`;
    ``registry.get("batch", ...)`` builds the backend through
    :func:`sync.staged.batch_backend`, which makes it from ``staging_name``,
    ``staging_options``, ``catalog`` and ``tmp_dir``), ``s3_region`` and
    ``s3_endpoint`` (what the container uses to reach it); ``workspace_root``, ``log_root``
    (where job log folders are, ``.ws/jobs``), ``job_root`` (the job's folder
    inside the container), ``entrypoint`` (``embedded`` or a command);
    ``poll_interval`` (s); ``fair_share``; ``max_attempts``, ``connect_timeout``,
    ``read_timeout`` for AWS calls.
    """

    name = "batch"
    stages_inputs = True  # no shared file system: the inputs go up through the staging remote

    def __init__(self, job_queue: str | None = None, region: str | None = None, endpoint_url: str | None = None,
                 profile: str | None = None, aws_access_key_id: str | None = None,
                 aws_secret_access_key: str | None = None, aws_session_token: str | None = None,
                 job_role_arn: str | None = None, execution_role_arn: str | None = None,
                 default_image: str | None = None, default_memory_mb: int = 2048, log_group: str | None = None,
                 staging: str | None = None, open_staging: Callable[[], Any] | None = None,
                 s3_region: str | None = None, s3_endpoint: str | None = None,
                 workspace_root: str | os.PathLike | None = None,
                 log_root: str | os.PathLike | None = None, job_root: str | None = None,
                 entrypoint: str = "embedded", poll_interval: float = DEFAULT_POLL_INTERVAL_S,
                 fair_share: bool = False, backend_name: str = "batch", max_attempts: int = 3,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0):
        keys = (aws_access_key_id, aws_secret_access_key, aws_session_token) if aws_access_key_id else None
        self.aws = AWS(backend_name, region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                       endpoint_url, profile, keys, int(max_attempts), float(connect_timeout), float(read_timeout))
        self.backend_name = backend_name
        self.queue = job_queue
        self.staging_url = staging.rstrip("/") if staging else None
        self._open_staging = open_staging
        self.defaults = Defaults(image=default_image, memory_mb=int(default_memory_mb), job_role_arn=job_role_arn,
                                 execution_role_arn=execution_role_arn, log_group=log_group,
                                 s3_region=s3_region or self.aws.region or "us-east-1",
                                 s3_endpoint=s3_endpoint, job_root=job_root,
                                 entrypoint=entrypoint,
                                 workspace_root=os.fspath(workspace_root) if workspace_root else None,
                                 fair_share=_flag(fair_share))
        self.log_group = log_group or DEFAULT_LOG_GROUP
        self.log_root = os.fspath(log_root) if log_root else None
        self.poll_interval_s = float(poll_interval)
        self._stager = None
        self._queue_checked = False
        self._definitions: dict[str, str] = {}  # fingerprint -> definition ARN
        self._last_poll: float | None = None
        self._cache: dict[str, BackendStatus] = {}
        self._jobs: dict[str, dict] = {}  # the last DescribeJobs entry of each id

    # -- checks ----------------------------------------------------------------------
    def check_resources(self, cpus: int = 1, memory_mb: int | None = None, gpus: int = 0) -> None:
        """At least one vCPU (the queue's compute environments decide the rest)."""
        check_resources(cpus, gpus)

    def check_request(self, request: SubmitRequest) -> None:
        """Refuse (exit 9, naming the spec field) what Batch cannot honour; see batch_jobs.check."""
        check(request, self.defaults)

    def check(self) -> list[tuple[str, bool, str]]:
        """What ``ws backend check`` reports: (check, passed, detail) for the queue (so the credentials), staging."""
        out = []
        try:
            self._ensure_queue()
            out.append(("queue", True, f"job queue {self.queue} is ENABLED and VALID"))
        except BackendError as exc:
            out.append(("queue", False, str(exc)))
        try:
            self._staging().index.refresh(force=True)
            out.append(("staging", True, f"remote {self.staging_url} answers (a ws remote, its indexes read)"))
        except SyncError as exc:  # reported, not raised: every check gets its line
            out.append(("staging", False, str(exc)))
        return out

    def _ensure_queue(self) -> None:
        if self._queue_checked:
            return
        if not self.queue:
            raise BackendError(f"backend '{self.backend_name}' has no job queue (option job_queue)")
        queues = self.aws.call("batch", "describe_job_queues", jobQueues=[self.queue]).get("jobQueues") or []
        if not queues:
            names = sorted(q.get("jobQueueName", "?") for q in self.aws.pages("batch", "describe_job_queues",
                                                                              "jobQueues"))
            raise BackendError(f"backend '{self.backend_name}': AWS Batch has no job queue '{self.queue}' in "
                               f"{self.aws.region or 'this region'} (queues there: {', '.join(names) or 'none'})")
        q = queues[0]
        if q.get("state") != "ENABLED" or q.get("status") not in ("VALID", "UPDATING", "CREATING"):
            raise BackendError(f"backend '{self.backend_name}': job queue '{self.queue}' is {q.get('state')}/"
                               f"{q.get('status')}: {q.get('statusReason') or 'it takes no jobs'}")
        self._queue_checked = True

    def _staging(self):
        """The staging remote's stager, opened on first use (by the ``open_staging`` the registry's factory gave)."""
        if self._stager is None:
            if not self.staging_url:
                raise BackendError(f"backend '{self.backend_name}' has no staging remote (option staging, "
                                   "an s3:// URL): jobs on AWS Batch get their files through it")
            if self._open_staging is None:
                raise BackendError(f"backend '{self.backend_name}' cannot open its staging remote: build it with "
                                   "registry.get('batch', ...) (sync.staged.batch_backend), which opens it")
            self._stager = self._open_staging()
        return self._stager

    # -- submitting --------------------------------------------------------------------
    def submit(self, request: SubmitRequest) -> str:
        """Stage the inputs, write the manifest, register (or reuse) the definition, submit; the Batch job id."""
        return self.submit_many([request])[0]

    def submit_many(self, requests: list[SubmitRequest]) -> list[str]:
        """Submit in order; ``depends_on`` between requests of the batch become Batch's ``dependsOn``.

        Every request is checked and staged before the first is submitted, so
        a refused or unstageable member submits nothing. An AWS error part-way
        leaves the members before it submitted; :meth:`find` locates them.
        """
        for r in requests:
            self.check_request(r)
        self._ensure_queue()
        stager = self._staging()
        manifests = [self._stage(stager, r) for r in requests]
        ids: dict[str, str] = {}
        out = []
        for r, url in zip(requests, manifests):
            deps = [ids[d] for d in r.depends_on if d in ids]
            args = submission(r, self.defaults, self.queue, self._definition(r), url, deps)
            answer = self.aws.call("batch", "submit_job", **args)
            bid = str(answer.get("jobId") or "")
            if not bid:
                raise BackendError(f"AWS Batch accepted {args['jobName']} but answered without its job id")
            ids[r.job_id] = bid
            out.append(bid)
        return out

    def _stage(self, stager, request: SubmitRequest) -> str:
        root = self.defaults.workspace_root
        if request.input_files and root is None:
            raise BackendError(f"backend '{self.backend_name}' needs its workspace_root option to stage inputs")
        inputs, _stats = stager.stage_inputs(root or ".", request.input_files) if request.input_files else ([], None)
        manifest = {"job": request.job_id, "attempt": request.attempt, "name": request.name,
                    "root": self.staging_url, "command": request.command,
                    "workdir": task_workdir(request, self.defaults), "inputs": inputs,
                    "outputs": {"files": [relative_path(p) for p in request.output_files],
                                "dirs": [relative_path(p) for p in request.output_dirs]}}
        return f"{self.staging_url}/{stager.write_manifest(request.job_id, request.attempt, manifest)}"

    def _definition(self, request: SubmitRequest) -> str:
        """The ARN of an active revision holding exactly this request's definition; registered when none does."""
        body = definition(request, self.defaults)
        fp = body["parameters"][FINGERPRINT_PARAM]
        if fp not in self._definitions:
            for d in self.aws.pages("batch", "describe_job_definitions", "jobDefinitions",
                                    jobDefinitionName=body["jobDefinitionName"], status="ACTIVE"):
                found = (d.get("parameters") or {}).get(FINGERPRINT_PARAM)
                if found and d.get("status", "ACTIVE") == "ACTIVE":
                    self._definitions.setdefault(found, d["jobDefinitionArn"])
        if fp not in self._definitions:
            answer = self.aws.call("batch", "register_job_definition", **body)
            self._definitions[fp] = answer["jobDefinitionArn"]
        return self._definitions[fp]

    def find(self, request: SubmitRequest) -> str | None:
        """The Batch job named after this attempt in the configured queue (newest if several), else None."""
        if not self.queue:
            raise BackendError(f"backend '{self.backend_name}' has no job queue (option job_queue)")
        name = job_name(request)
        found = [j for j in self.aws.pages("batch", "list_jobs", "jobSummaryList", jobQueue=self.queue,
                                           filters=[{"name": "JOB_NAME", "values": [name]}])
                 if j.get("jobName") == name]
        if not found:
            return None
        return str(max(found, key=lambda j: j.get("createdAt") or 0)["jobId"])

    # -- status ------------------------------------------------------------------------
    def status(self, backend_ids: list[str]) -> dict[str, BackendStatus]:
        """``describe_jobs`` for the unfinished ids, 100 a call, at most once per poll_interval."""
        out = {b: self._cache[b] for b in backend_ids if b in self._cache and self._cache[b].final}
        todo = [b for b in dict.fromkeys(backend_ids) if b not in out]
        now = time.monotonic()
        fresh = self._last_poll is not None and now - self._last_poll < self.poll_interval_s
        if todo and (not fresh or any(b not in self._cache for b in todo)):
            self._last_poll = now  # also after a failure: an unreachable service is not asked every turn
            self._cache.update(self._describe(todo))
        out.update({b: self._cache[b] for b in todo})
        return {b: out[b] for b in backend_ids}

    def _describe(self, ids: list[str]) -> dict[str, BackendStatus]:
        found: dict[str, dict] = {}
        for i in range(0, len(ids), DESCRIBE_BATCH):
            for job in self.aws.call("batch", "describe_jobs", jobs=ids[i:i + DESCRIBE_BATCH]).get("jobs") or []:
                found[str(job.get("jobId"))] = job
        self._jobs.update(found)
        return {b: to_status(found[b]) if b in found else
                BackendStatus(LOST, reason=f"AWS Batch does not know job {b} (jobs are kept about 7 days after "
                                           "they end)") for b in ids}

    # -- cancel ------------------------------------------------------------------------
    def cancel(self, backend_ids: list[str]) -> None:
        """``cancel_job`` for queued jobs, ``terminate_job`` for starting and running ones; ended ones are left."""
        ids = list(dict.fromkeys(backend_ids))
        for b in ids:
            self._cache.pop(b, None)
        self._describe(ids)
        queued = [b for b in ids if self._jobs.get(b, {}).get("status") in QUEUED_STATES[:3]]
        for b in queued:
            self.aws.call("batch", "cancel_job", jobId=b, reason=CANCEL_REASON)
        if queued:
            self._describe(queued)  # one that started meanwhile was not cancelled: terminate it below
        for b in ids:
            if self._jobs.get(b, {}).get("status") in ("STARTING", "RUNNING"):
                self.aws.call("batch", "terminate_job", jobId=b, reason=CANCEL_REASON)
            self._cache.pop(b, None)

    # -- logs and outputs -----------------------------------------------------------------
    def logs(self, backend_id: str) -> tuple[str, str]:
        """(stdout, stderr): paths in ``<log_root>/<job id>/`` when ``log_root`` is set, else the text.

        While the job runs: its CloudWatch Logs stream (stdout and stderr
        interleaved, as Batch records them) as stdout, appended to the log
        folder's ``stdout`` as it grows. Once it ended: the exact stdout and
        stderr the entrypoint staged out (the stream when there are none).
        """
        job = self._describe_fresh(backend_id)
        if job is None:
            return "", ""
        parsed = parse_job_name(str(job.get("jobName")))
        folder = os.path.join(self.log_root, parsed[0]) if self.log_root and parsed else None
        return self._write_logs(job, parsed, folder)

    def _describe_fresh(self, backend_id: str) -> dict | None:
        st = self._describe([backend_id])[backend_id]
        self._cache[backend_id] = st
        return self._jobs.get(backend_id)

    def _write_logs(self, job: dict, parsed: tuple[str, int] | None, folder: str | None) -> tuple[str, str]:
        final = to_status(job).final
        if folder and _load_state(folder).get("exact"):
            return os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        stream = self._stream(job, folder)
        exact = None
        if final and parsed:
            stager = self._staging()
            out, err = (stager.read_out(parsed[0], parsed[1], n) for n in ("stdout", "stderr"))
            if out is not None or err is not None:
                exact = ((out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace"))
        if folder is None:
            return exact or (stream, "")
        if exact:  # the stream was completed just above: a reader holding it open saw all of it
            for name, text in zip(("stdout", "stderr"), exact):
                _write_text(os.path.join(folder, name), text)
            _save_state(folder, {**_load_state(folder), "exact": True})
        paths = [os.path.join(folder, name) for name in ("stdout", "stderr")]
        return tuple(p if os.path.exists(p) else "" for p in paths)

    def _stream(self, job: dict, folder: str | None) -> str:
        """The job's CloudWatch stream: appended to ``folder/stdout`` from where it was left, or the whole text."""
        attempts = job.get("attempts") or []
        name = (job.get("container") or {}).get("logStreamName") or \
            ((attempts[-1].get("container") or {}).get("logStreamName") if attempts else None)
        if not name:
            return ""
        if folder is None:
            messages, _ = self.aws.log_events(self.log_group, name, None)
            return "".join(m + "\n" for m in messages)
        state = _load_state(folder)
        token = state.get("token") if state.get("stream") == name else None
        messages, token = self.aws.log_events(self.log_group, name, token)
        os.makedirs(folder, exist_ok=True)
        if messages:
            with open(os.path.join(folder, "stdout"), "a", encoding="utf-8") as f:
                f.write("".join(m + "\n" for m in messages))
        _save_state(folder, {"stream": name, "token": token})
        return ""

    def fetch_outputs(self, backend_id: str, request: SubmitRequest, dest: str) -> list[str]:
        """The attempt's staged outputs into ``dest`` (verified), its stdout and stderr into ``request.log_dir``."""
        job = self._jobs.get(backend_id)
        if job is None or not to_status(job).final:
            job = self._describe_fresh(backend_id)
        if job is not None and request.log_dir:
            try:
                self._write_logs(job, (request.job_id, request.attempt), request.log_dir)
            except OSError as exc:
                raise BackendError(f"cannot write the logs of job {request.job_id} into {request.log_dir}: "
                                   f"{exc.strerror or exc}") from None
        return self._staging().fetch_outputs(request.job_id, request.attempt, dest,
                                             [relative_path(p) for p in request.output_files],
                                             [relative_path(p) for p in request.output_dirs])

    def close(self) -> None:
        """Nothing to release (boto3 clients close with the process)."""


def _load_state(folder: str) -> dict:
    try:
        with open(os.path.join(folder, LOG_STATE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(folder: str, state: dict) -> None:
    _write_text(os.path.join(folder, LOG_STATE), json.dumps(state))


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
