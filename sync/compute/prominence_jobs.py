"""A SubmitRequest as a PROMINENCE job description, and a PROMINENCE job as a BackendStatus.

Field names, types and units follow the PROMINENCE REST API (see
docs/backends.md, "PROMINENCE", for the documents and the mapping table):
memory and disk in whole GB, walltime and maximumTimeInQueue in whole
minutes (rounded up: a job gets at least what it asked for), labels as an
object of ``key: value`` strings, artifacts as ``{"url": ...}`` objects.
Everything PROMINENCE cannot honour is refused by :func:`check` with
:class:`~sync.compute.base.UnsatisfiableRequest` (exit 9), never dropped.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone

from sync.compute.base import (CANCELLED, FAILED, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, BackendStatus,
                               SubmitRequest, UnsatisfiableRequest)

RUNTIMES = {"singularity": "singularity", "udocker": "udocker", "docker": "udocker"}  # docker: no daemon there
JOB_LABEL, ATTEMPT_LABEL = "wsjob", "wsattempt"  # on every job ws submits: find() filters on them
RESERVED_LABELS = (JOB_LABEL, ATTEMPT_LABEL)
LABEL_KEY = re.compile(r"^[A-Za-z0-9]{1,63}$")  # PROMINENCE: alphanumeric keys, < 64 characters
LABEL_VALUE = re.compile(r"^[A-Za-z0-9_\-./]{1,63}$")  # values may add - _ . /
MAX_RETRIES = 5  # policies.maximumRetries: 1..5
MAX_QUEUE_MIN = 44640  # policies.maximumTimeInQueue: at most 31 days, in minutes
NOTIFY_EVENTS = {"finished": "jobFinished"}
QUEUED_STATES = {"pending", "idle", "waiting", "deploying", "created"}


@dataclass
class Defaults:
    """Backend options the mapping needs (see :class:`sync.compute.prominence.ProminenceBackend`)."""

    image: str | None = None
    runtime: str = "singularity"
    memory_gb: int = 1  # PROMINENCE requires memory; its own client's default is 1 GB
    disk_gb: int | None = None  # None: the service's default (10 GB in its client)
    walltime_min: int | None = None  # None: the service's default (720 minutes in its client)
    workspace_root: str | None = None  # the folder a job's home stands for: workdir is sent relative to it
    leave_in_queue: bool = False


def gb(mib: float) -> int:
    """MiB as whole GB (1 GB = 1024 MiB, as ws's sizes), rounded up, at least 1."""
    return max(1, math.ceil(mib / 1024))


def minutes(seconds: float) -> int:
    """Seconds as whole minutes, rounded up, at least 1."""
    return max(1, math.ceil(seconds / 60))


def safe_name(name: str) -> str:
    """A job name PROMINENCE accepts and ws can parse back: letters, digits, - _ . only."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", name)[:200] or "job"


# -- refusing what cannot be honoured --------------------------------------------
def check(request: SubmitRequest, d: Defaults) -> None:
    """Raise UnsatisfiableRequest (exit 9, naming the spec field) for anything PROMINENCE cannot honour."""
    check_resources(request.cpus, request.gpus, request.nodes)
    if not (request.image or d.image):
        raise UnsatisfiableRequest("PROMINENCE runs every job in a container: set container.image, or the "
                                   "backend's default_image option", field="container.image")
    runtime = request.runtime or d.runtime
    if runtime not in RUNTIMES:
        raise UnsatisfiableRequest(f"PROMINENCE has no container runtime '{runtime}' (known: "
                                   f"{', '.join(sorted(RUNTIMES))})", field="container.runtime")
    _check_labels(request.labels)
    _check_policies(request)
    for url in request.artifacts:
        if not re.match(r"^https?://", url):
            raise UnsatisfiableRequest(f"artifact '{url}' is not an http(s) URL; PROMINENCE fetches artifacts "
                                       "over HTTP(S) (a presigned URL works)", field="artifacts")
    for path in [*request.output_files, *request.output_dirs]:
        relative_path(path)
    task_workdir(request, d)


def check_resources(cpus: int, gpus: int, nodes: int = 1) -> None:
    """Refuse gpus (PROMINENCE's job description has none) and fewer than 1 cpu or node."""
    if gpus:
        raise UnsatisfiableRequest("PROMINENCE's job description has no gpus resource; remove resources.gpus "
                                   "or run on another backend", resource="gpus")
    if cpus < 1:
        raise UnsatisfiableRequest("PROMINENCE needs at least 1 cpu", resource="cpus")
    if nodes < 1:
        raise UnsatisfiableRequest("PROMINENCE needs at least 1 node", resource="nodes")


def _check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        if key in RESERVED_LABELS:
            raise UnsatisfiableRequest(f"label '{key}' is reserved: ws uses it to find its jobs", field="labels")
        if not LABEL_KEY.match(str(key)):
            raise UnsatisfiableRequest(f"label key '{key}': PROMINENCE takes letters and digits only, "
                                       "under 64 characters", field="labels")
        if not LABEL_VALUE.match(str(value)):
            raise UnsatisfiableRequest(f"label {key}={value!r}: PROMINENCE takes letters, digits, - _ . / only, "
                                       "under 64 characters", field="labels")


def _check_policies(request: SubmitRequest) -> None:
    if not 0 <= request.retries <= MAX_RETRIES:
        raise UnsatisfiableRequest(f"PROMINENCE retries a job at most {MAX_RETRIES} times "
                                   f"(backend retries asked: {request.retries})", field="retries")
    if request.priority is not None and request.priority < 0:
        raise UnsatisfiableRequest(f"PROMINENCE priorities are integers >= 0 (asked: {request.priority})",
                                   field="policies.priority")
    if request.max_queue_s is not None and minutes(request.max_queue_s) > MAX_QUEUE_MIN:
        raise UnsatisfiableRequest(f"PROMINENCE keeps a job queued at most {MAX_QUEUE_MIN} minutes",
                                   field="policies.max_queue")
    for event in request.notifications:
        if event not in NOTIFY_EVENTS:
            raise UnsatisfiableRequest(f"PROMINENCE notifies (by e-mail) only when a job finished, not on "
                                       f"'{event}'", field="notify.on")


def relative_path(path: str) -> str:
    """A declared output as a clean relative path (trailing ``/`` dropped); refuses absolute and ``..`` paths."""
    clean = posixpath.normpath(path.rstrip("/")) if path.rstrip("/") else ""
    if not clean or clean == "." or clean.startswith(("/", "../")) or clean == "..":
        raise UnsatisfiableRequest(f"output '{path}' is not a path inside the job's folder", field="outputs")
    return clean


def task_workdir(request: SubmitRequest, d: Defaults) -> str | None:
    """The task's ``workdir``: relative to the job's home (the workspace root), None at the root itself."""
    if d.workspace_root is None:
        if request.workdir and os.path.isabs(request.workdir):
            raise UnsatisfiableRequest("the PROMINENCE backend needs its workspace_root option to place an "
                                       "absolute workdir", field="workdir")
        return request.workdir or None
    root = os.path.abspath(d.workspace_root)
    wd = os.path.abspath(os.path.join(root, request.workdir or "."))
    if wd == root:
        return None
    if not wd.startswith(root + os.sep):
        raise UnsatisfiableRequest(f"workdir {request.workdir} is outside the workspace; on PROMINENCE a job "
                                   "starts in its own folder, which stands for the workspace root", field="workdir")
    return os.path.relpath(wd, root).replace(os.sep, "/")


# -- the job description -------------------------------------------------------
def job_json(request: SubmitRequest, d: Defaults, name: str | None = None) -> dict:
    """The PROMINENCE job description of one attempt (call :func:`check` first)."""
    task = {"image": request.image or d.image, "runtime": RUNTIMES[request.runtime or d.runtime],
            "cmd": "/bin/sh -c " + shlex.quote(request.command),  # tasks are not run by a shell: ws commands are
            "env": {**request.env, "WS_JOB_ID": request.job_id, "WS_JOB_ATTEMPT": str(request.attempt)}}
    workdir = task_workdir(request, d)
    if workdir:
        task["workdir"] = workdir
    job: dict = {"name": name or safe_name(request.name), "resources": resources(request, d), "tasks": [task],
                 "labels": {**request.labels, JOB_LABEL: request.job_id, ATTEMPT_LABEL: str(request.attempt)}}
    if request.artifacts:
        job["artifacts"] = [{"url": url} for url in request.artifacts]
    if request.output_files:
        job["outputFiles"] = [relative_path(p) for p in request.output_files]
    if request.output_dirs:
        job["outputDirs"] = [relative_path(p) for p in request.output_dirs]
    pol = policies(request, d)
    if pol:
        job["policies"] = pol
    if request.notifications:
        events = dict.fromkeys(NOTIFY_EVENTS[e] for e in request.notifications)
        job["notifications"] = [{"event": e, "type": "email"} for e in events]
    return job


def resources(request: SubmitRequest, d: Defaults) -> dict:
    """``resources``: nodes, cpus (per node), memory and disk in GB, walltime in minutes."""
    res = {"nodes": request.nodes, "cpus": request.cpus,
           "memory": gb(request.memory_mb) if request.memory_mb else d.memory_gb}
    disk = gb(request.disk_mb) if request.disk_mb else d.disk_gb
    if disk:
        res["disk"] = disk
    walltime = minutes(request.walltime_s) if request.walltime_s else d.walltime_min
    if walltime:
        res["walltime"] = walltime
    return res


def policies(request: SubmitRequest, d: Defaults) -> dict:
    """``policies``: maximumRetries, priority, maximumTimeInQueue (minutes), leaveInQueue; {} when none applies."""
    pol: dict = {}
    if request.retries:
        pol["maximumRetries"] = request.retries
    if request.priority is not None:
        pol["priority"] = request.priority
    if request.max_queue_s:
        pol["maximumTimeInQueue"] = minutes(request.max_queue_s)
    if d.leave_in_queue:
        pol["leaveInQueue"] = True
    return pol


# -- what PROMINENCE says about a job ------------------------------------------------
def to_status(job: dict) -> BackendStatus:
    """Our state for a PROMINENCE job description (as listed with ``detail``), with a one-line reason."""
    state = str(job.get("status") or "")
    reason = job.get("statusReason") or None
    events = job.get("events") if isinstance(job.get("events"), dict) else {}
    started, finished = to_ns(events.get("startTime")), to_ns(events.get("endTime"))
    if started and finished and finished < started:
        finished = started
    code = exit_code(job)
    if state in QUEUED_STATES:
        return BackendStatus(QUEUED, reason=f"{state}: {reason}" if reason else state)
    if state == "running":
        return BackendStatus(RUNNING, started_ns=started)
    final = {"exit_code": code, "started_ns": started, "finished_ns": finished or started}
    if state == "completed":
        if code in (0, None):
            return BackendStatus(SUCCEEDED, **final)
        return BackendStatus(FAILED, reason=f"exit code {code}", **final)
    if state == "failed":
        return BackendStatus(FAILED, reason=reason or (f"exit code {code}" if code is not None else "failed"), **final)
    if state == "killed":
        why = (reason or "").lower()
        if "memory" in why:
            return BackendStatus(OUT_OF_MEMORY, reason=f"out of memory: {reason}", **final)
        if "walltime" in why:
            return BackendStatus(FAILED, reason=f"timed out: {reason}", **final)
        return BackendStatus(FAILED, reason=f"killed: {reason}" if reason else "killed", **final)
    if state == "deleted":
        return BackendStatus(CANCELLED, reason=reason or "deleted", **final)
    # a state this code does not know (a newer service): not final, so the supervisor keeps asking
    return BackendStatus(QUEUED, reason=f"PROMINENCE status '{state}'" + (f": {reason}" if reason else ""))


def exit_code(job: dict) -> int | None:
    """The exit code of the job's last task that reported one (``execution.tasks[].exitCode``)."""
    tasks = (job.get("execution") or {}).get("tasks") or []
    codes = [t.get("exitCode") for t in tasks if isinstance(t, dict) and isinstance(t.get("exitCode"), int)]
    return codes[-1] if codes else None


def to_ns(value) -> int | None:
    """A PROMINENCE event time (epoch seconds, or "YYYY-MM-DD HH:MM:SS" / ISO 8601 in UTC) in ns."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value * 1_000_000_000) if value > 0 else None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1_000_000_000)
