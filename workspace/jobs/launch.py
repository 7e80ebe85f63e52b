"""Between a catalog row and a backend: building submit requests, and finding what a dead supervisor started.

Submission is idempotent (see ``sync.compute.base``): the supervisor records
its intent (state QUEUED, ``attempts`` raised, no backend id) in one short
transaction, submits outside any transaction, then records the backend id. A
row left with an attempt but no backend id is therefore either never started
or started by a supervisor that died before recording it, and only the backend
can tell which: :func:`find_started` asks it.
"""

from __future__ import annotations

import os

from catalog import jobs as q
from catalog.db import Catalog
from sync.compute.base import ComputeBackend, SubmitRequest
from workspace.repo import Repo


def get_backend(repo: Repo, cache: dict, name: str) -> ComputeBackend:
    """One backend instance per name per process (the local one anchored at ``.ws/jobs``)."""
    if name not in cache:
        from workspace.jobs.backends import open_backend

        cache[name] = open_backend(repo, name)  # a configured backend, or a type with its defaults
    return cache[name]


def submit_request(repo: Repo, job: dict, attempt: int) -> SubmitRequest:
    """The request that starts (or, for :meth:`ComputeBackend.find`, names) attempt ``attempt`` of ``job``."""
    res = job.get("resources") or {}
    workdir = os.path.normpath(os.path.join(repo.root, job.get("workdir") or "."))
    env = {**(job.get("env") or {}), "WS_WORKSPACE": str(repo.root), "WS_JOB_NAME": job["name"]}
    outputs = [o for o in job.get("outputs") or [] if o]  # what backends without our file system bring back
    container = job.get("container") or {}
    return SubmitRequest(job_id=job["id"], name=job["name"], command=job["command"], workdir=workdir,
                         log_dir=job.get("log_dir") or os.path.join(repo.layout.jobs_dir, job["id"]), env=env,
                         cpus=int(res.get("cpus") or 1), memory_mb=res.get("memory_mb"),
                         walltime_s=res.get("walltime_s"), gpus=int(res.get("gpus") or 0), attempt=attempt,
                         output_files=[o for o in outputs if not o.endswith("/")],
                         output_dirs=[o for o in outputs if o.endswith("/")],
                         image=container.get("image"), runtime=container.get("runtime"),
                         labels=dict(job.get("labels") or {}), nodes=int(res.get("nodes") or 1),
                         disk_mb=res.get("disk_mb"), artifacts=list(job.get("artifacts") or []),
                         input_files=dict(job.get("input_files") or {}))


def unrecorded(cat: Catalog, job: dict) -> bool:
    """Whether a job was claimed for an attempt whose backend id was never recorded.

    QUEUED or RUNNING without a backend id can only be a claim. A LOST row is
    one if it was claimed when its supervisor died (not, say, PENDING before
    a retry, with the previous attempt's id already cleared).
    """
    if job.get("backend_id") or not job.get("attempts"):
        return False
    if job["state"] in ("QUEUED", "RUNNING"):
        return True
    return job["state"] == "LOST" and q.previous_state(cat, job["id"]) in ("QUEUED", "RUNNING")


def find_started(repo: Repo, backends: dict, job: dict) -> str | None:
    """The job's backend id: the recorded one, else the one its backend finds for a claimed attempt, else None.

    A found id is recorded on the row at once (no event: the state is the
    caller's business), so every later reader sees it.
    """
    if job.get("backend_id") or not unrecorded(repo.catalog, job):
        return job.get("backend_id")
    attempt = int(job["attempts"])
    bid = get_backend(repo, backends, job["backend"]).find(submit_request(repo, job, attempt))
    if bid:
        q.record_backend_id(repo.catalog, job["id"], attempt, bid)
        job["backend_id"] = bid
    return bid


def pull_logs(repo: Repo, backends: dict, job: dict) -> None:
    """Have a running job's backend write what it logged so far into the job's log folder.

    Backends on this machine's file system write there themselves (nothing
    to do); AWS Batch appends its CloudWatch stream. A backend that cannot be
    reached just leaves the log as it is: following a log must not fail.
    """
    from sync.errors import SyncError

    if not job.get("backend_id") or job.get("backend") == "local":
        return
    try:
        get_backend(repo, backends, job["backend"]).logs(job["backend_id"])
    except SyncError:
        pass
