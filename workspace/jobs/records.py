"""Job records under ``.ws/jobs/``, so that a lost catalog can get its jobs back (as far as files allow).

When a workflow is submitted, its jobs' rows are written to
``.ws/jobs/wf-<workflow>/jobs.jsonl`` (one JSON object per line, the row as
recorded, fsynced) before the catalog records them. ``ws fsck
--rebuild-catalog`` reads them back and decides each job's state from what its
folder and history hold:

- a local job's ``exit`` file (0: SUCCEEDED, otherwise FAILED) or ``cancelled`` marker;
- a commit whose provenance names the job: SUCCEEDED, with that output commit;
- otherwise LOST, with a reason saying the state was not recorded in files.

Changes made after submission that the files above cannot tell are appended
to the record as operation lines (``{"op": ...}``, fsynced before the catalog
changes): ``cancel`` keeps the reason given to ``ws jobs cancel --reason``, and
``delete`` names jobs ``ws jobs delete`` (or ``ws jobs prune``) forgot, so a
rebuilt catalog does not bring them back (with ``keep_commits``: their output
commits, which ``ws gc --prune`` keeps as if a job record still named them).

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


def append_op(repo: Repo, workflow_id: str, op: dict) -> None:
    """Append one operation line to a workflow's record, durably (nothing when it has no record)."""
    path = _wf_dir(repo, workflow_id) / RECORD
    if not path.exists():
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(op, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def record_deleted(repo: Repo, jobs: list[dict], keep_outputs: bool = True) -> None:
    """Write to the records that these jobs (``{id, workflow_id, output_commit}``) are forgotten.

    Each workflow's record gets one ``delete`` line naming them (and, with
    ``keep_outputs``, their output commits as ``keep_commits``). The record
    stays even when every job of the workflow is gone: it still holds the
    kept commits, and a rebuild restores nothing from it.
    """
    by_wf: dict[str, list[dict]] = {}
    for job in jobs:
        by_wf.setdefault(job["workflow_id"], []).append(job)
    for wf, gone in by_wf.items():
        keep = sorted({j["output_commit"] for j in gone if j.get("output_commit")}) if keep_outputs else []
        append_op(repo, wf, {"op": "delete", "ids": sorted(j["id"] for j in gone), "keep_commits": keep,
                             "time_ns": time.time_ns()})


def read_record(path: Path) -> tuple[dict, list[dict], list[dict]]:
    """A record file's head, its job rows (deleted ones left out, cancel reasons applied) and its op lines."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    head, rest = lines[0], lines[1:]
    rows = [r for r in rest if "op" not in r]
    ops = [r for r in rest if "op" in r]
    deleted = {i for op in ops if op["op"] == "delete" for i in op.get("ids", [])}
    reasons = {op["id"]: op.get("reason") for op in ops if op["op"] == "cancel"}
    kept = []
    for row in rows:
        if row["id"] in deleted:
            continue
        if row["id"] in reasons:
            row["_cancel_reason"] = reasons[row["id"]]
        kept.append(row)
    return head, kept, ops


def kept_commits(repo: Repo) -> set[str]:
    """Output commits of deleted jobs that were deleted keeping their outputs (``ws gc --prune`` keeps them)."""
    out: set[str] = set()
    for path in Path(repo.layout.jobs_dir).glob(f"wf-*/{RECORD}"):
        try:
            _, _, ops = read_record(path)
        except (ValueError, KeyError, IndexError, OSError):
            continue
        for op in ops:
            if op.get("op") == "delete":
                out.update(op.get("keep_commits") or [])
    return out


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
            head, rows, _ = read_record(path)
            if not rows or q.get_workflow(cat, head["workflow"]) is not None:
                continue  # every job of it deleted, or already known
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
    cancel_reason = row.pop("_cancel_reason", None)
    if row.get("state") in ("SKIPPED",):
        return row
    log_dir = Path(row.get("log_dir") or Path(repo.layout.jobs_dir) / row["id"])
    exit_text = _read(log_dir / "exit")
    if row["id"] in outputs:
        row.update(state="SUCCEEDED", output_commit=outputs[row["id"]], exit_code=0)
    elif cancel_reason is not None or (log_dir / "cancelled").exists():
        row.update(state="CANCELLED", reason=cancel_reason or "cancelled (rebuilt from .ws/)")
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
