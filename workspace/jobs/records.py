"""Job records under ``.ws/jobs/``, so that a lost catalog can get its jobs back (as far as files allow).

When a workflow is submitted, its jobs' rows are written to
``.ws/jobs/wf-<workflow>/jobs.jsonl`` (one JSON object per line, the row as
recorded, fsynced) before the catalog records them. ``ws fsck
--rebuild-catalog`` reads them back and decides each job's state from what its
folder and history hold:

- a local job's ``exit`` file (0: SUCCEEDED, otherwise FAILED) or ``cancelled`` marker;
- a commit whose provenance names the job: SUCCEEDED, with that output commit;
- otherwise LOST, with a reason saying the state was not recorded in files.

What cannot come back: the state transitions in between (``ws jobs show``'s
event list keeps the submission and the rebuilt final state only), attempts,
backend ids of remote backends, notification results and supervisor pids.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from catalog import history
from catalog import jobs as q
from workspace.repo import Repo

RECORD = "jobs.jsonl"


def _wf_dir(repo: Repo, workflow_id: str) -> Path:
    return Path(repo.layout.jobs_dir) / f"wf-{workflow_id}"


def write_submitted(repo: Repo, workflow_id: str, specs: list[str], rows: list[dict]) -> None:
    """Write a new workflow's job rows, durably, before the catalog records them."""
    folder = _wf_dir(repo, workflow_id)
    folder.mkdir(parents=True, exist_ok=True)
    head = {"workflow": workflow_id, "specs": list(specs), "created_ns": time.time_ns()}
    with open(folder / RECORD, "w", encoding="utf-8") as f:
        f.write(json.dumps(head, sort_keys=True) + "\n")
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def export(repo: Repo) -> int:
    """Write the record of every workflow that has none (a workspace from before records existed)."""
    written = 0
    for wf in q.list_workflows(repo.catalog):
        if not (_wf_dir(repo, wf["id"]) / RECORD).exists():
            rows = q.list_jobs(repo.catalog, workflow=wf["id"])
            keep = [{k: v for k, v in r.items() if k not in ("submitted_at", "started_at", "finished_at")}
                    for r in rows]
            write_submitted(repo, wf["id"], wf["specs"], keep)
            written += 1
    return written


def restore(repo: Repo) -> tuple[int, list[str]]:
    """Put back the jobs of every workflow record the catalog lacks; returns (jobs restored, problems)."""
    cat = repo.catalog
    outputs = _output_commits(repo)
    restored, problems = 0, []
    for path in sorted(Path(repo.layout.jobs_dir).glob(f"wf-*/{RECORD}")):
        try:
            lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            head, rows = lines[0], lines[1:]
            if q.get_workflow(cat, head["workflow"]) is not None:
                continue
            rows = [_final(repo, row, outputs) for row in rows]
            with cat.write():
                q.create_workflow(cat, head["specs"], workflow_id=head["workflow"], created_ns=head["created_ns"],
                                  state=_workflow_state(rows))
                q.add_jobs(cat, head["workflow"], [{k: v for k, v in r.items() if k in q.JOB_COLUMNS}
                                                   for r in rows])
            restored += len(rows)
        except (ValueError, KeyError, IndexError, OSError) as exc:
            problems.append(f"{path}: {exc}")
    return restored, problems


def _output_commits(repo: Repo) -> dict[str, str]:
    """Job id -> the commit whose provenance says it holds that job's outputs."""
    out = {}
    for rec in history.all_commits(repo.catalog):
        job = (rec.provenance or {}).get("job") if isinstance(rec.provenance, dict) else None
        if isinstance(job, dict) and job.get("id"):
            out[job["id"]] = rec.id
    return out


def _final(repo: Repo, row: dict, outputs: dict[str, str]) -> dict:
    """The row with the state its folder and history support."""
    row = dict(row)
    if row.get("state") in ("SKIPPED",):
        return row
    log_dir = Path(row.get("log_dir") or Path(repo.layout.jobs_dir) / row["id"])
    exit_text = _read(log_dir / "exit")
    if row["id"] in outputs:
        row.update(state="SUCCEEDED", output_commit=outputs[row["id"]], exit_code=0)
    elif (log_dir / "cancelled").exists():
        row.update(state="CANCELLED", reason="cancelled (rebuilt from .ws/)")
    elif exit_text is not None and exit_text.strip().lstrip("-").isdigit():
        code = int(exit_text)
        row.update(state="SUCCEEDED" if code == 0 else "FAILED", exit_code=code,
                   reason=None if code == 0 else f"exit code {code} (rebuilt from .ws/)")
    else:
        row.update(state="LOST", reason="rebuilt from .ws/: its final state was not recorded in files")
    return row


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _workflow_state(rows: list[dict]) -> str:
    states = {r["state"] for r in rows}
    if states <= {"SUCCEEDED", "SKIPPED"}:
        return "SUCCEEDED"
    return "CANCELLED" if states <= {"SUCCEEDED", "SKIPPED", "CANCELLED"} else "FAILED"
