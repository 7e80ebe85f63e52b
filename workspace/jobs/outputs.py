"""Committing a finished job's declared outputs with its provenance.

Several jobs may finish at once, in this supervisor or in others: each commit
takes the workspace lock, and a WorkspaceBusy (another writer held it past the
lock timeout) is retried until a generous deadline, so every job's outputs land.
"""

from __future__ import annotations

import os
import time

from catalog.errors import CatalogBusy
from workspace.errors import NothingToCommit, WorkspaceBusy, WorkspaceError
from workspace.repo import Repo
from workspace.tree.commit import commit

COMMIT_DEADLINE_S = 600.0


def provenance(job: dict, exit_code: int | None) -> dict:
    """What the output commit records about the job that made it."""
    return {
        "job": {"id": job["id"], "name": job["name"], "workflow": job.get("workflow_id")},  # ws log reads this
        "spec": job.get("spec_path"),
        "params": job.get("params") or {},
        "key": job.get("key"),
        "input_commit": job.get("input_commit"),
        "backend": job.get("backend"),
        "backend_id": job.get("backend_id"),
        "exit_code": exit_code,
        "environment": job.get("environment"),
    }


def missing_outputs(root: str, outputs: list[str]) -> list[str]:
    """Declared outputs that do not exist in the working tree."""
    return [o for o in outputs if not os.path.exists(os.path.join(root, o.rstrip("/")))]


def commit_outputs(repo: Repo, job: dict, exit_code: int | None) -> tuple[str | None, str | None]:
    """Commit ``job``'s outputs; returns (commit id or None, problem or None).

    No declared outputs, or outputs identical to HEAD, give (None, None).
    """
    outputs = [o for o in (job.get("outputs") or []) if o]
    if not outputs:
        return None, None
    missing = missing_outputs(str(repo.root), outputs)
    if missing:
        return None, f"job succeeded but declared output(s) are missing: {', '.join(missing)}"
    params = job.get("params") or {}
    label = " ".join(f"{k}={v}" for k, v in params.items())
    message = f"job {job['name']} {job['id']}: outputs" + (f" ({label})" if label else "")
    deadline = time.monotonic() + COMMIT_DEADLINE_S
    while True:
        try:
            res = commit(repo, message, outputs, provenance=provenance(job, exit_code), cwd=str(repo.root))
            return res.commit.id, None
        except NothingToCommit:
            return None, None
        except (WorkspaceBusy, CatalogBusy):
            if time.monotonic() > deadline:
                return None, f"could not commit outputs: workspace stayed busy for {COMMIT_DEADLINE_S:g}s"
        except WorkspaceError as exc:
            return None, f"could not commit outputs: {exc}"


def collect_outputs(repo: Repo, backends: dict | None, job: dict, exit_code: int | None) -> tuple[str | None, str | None]:
    """Bring a finished job's outputs and logs home from its backend, then commit the outputs.

    Backends on the workspace's own file system have nothing to fetch (the
    default ``fetch_outputs``); others (AWS Batch, PROMINENCE) write the
    declared outputs into the working tree, verified, and the job's stdout and
    stderr into its log folder. Returns (commit id or None, problem or None)
    as :func:`commit_outputs` does; a failed fetch is the problem when the job
    declared outputs (logs alone can be fetched again later).
    """
    from sync.errors import SyncError
    from workspace.jobs.launch import get_backend, submit_request

    if job.get("backend_id"):
        try:
            backend = get_backend(repo, backends if backends is not None else {}, job["backend"])
            backend.fetch_outputs(job["backend_id"], submit_request(repo, job, int(job.get("attempts") or 1)),
                                  str(repo.root))
        except SyncError as exc:
            if [o for o in (job.get("outputs") or []) if o]:
                return None, f"could not fetch outputs from backend {job['backend']}: {exc}"
    return commit_outputs(repo, job, exit_code)


def fetch_job(repo: Repo, job_id: str) -> dict:
    """What ``ws jobs fetch ID`` does: bring a job's outputs and logs home again, and commit what succeeded.

    For a job that ran on a backend without the workspace's file system and
    whose outputs never arrived (the fetch failed, the supervisor died, or
    they were deleted from the working tree): the outputs are fetched and,
    when the job SUCCEEDED without an output commit, committed with its
    provenance and recorded on the job. Returns ``{"id", "state", "fetched":
    [paths], "output_commit", "problem"}``.
    """
    from catalog import jobs as q
    from workspace.jobs.launch import get_backend, submit_request
    from workspace.jobs.query import resolve_job

    jid = resolve_job(repo, job_id)
    job = q.get_job(repo.catalog, jid)
    fetched: list[str] = []
    if job.get("backend_id"):
        backend = get_backend(repo, {}, job["backend"])
        try:
            fetched = backend.fetch_outputs(job["backend_id"], submit_request(repo, job, int(job.get("attempts") or 1)),
                                            str(repo.root))
        finally:
            backend.close()
    commit_id, problem = job.get("output_commit"), None
    if job["state"] == "SUCCEEDED" and not commit_id:
        commit_id, problem = commit_outputs(repo, job, job.get("exit_code"))
        if commit_id:
            q.update_job(repo.catalog, jid, output_commit=commit_id)
    return {"id": jid, "state": job["state"], "fetched": fetched, "output_commit": commit_id, "problem": problem}
