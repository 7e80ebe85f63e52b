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
