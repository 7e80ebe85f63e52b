"""The read side of jobs, answered from the catalog alone: list, show, logs, prune, validate.

Nothing here contacts a backend (but ``follow_log``, for logs a backend keeps
elsewhere). Before answering, reads give
:func:`workspace.jobs.liveness.mark_lost` (the execution side) the chance to mark
jobs whose supervisor died, so no job stays RUNNING forever.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from catalog import jobs as cj
from catalog.errors import CatalogBusy
from workspace.errors import InvalidArgument, UnknownRef, WorkspaceError
from workspace.history.manifest import get_commit
from workspace.jobs.fields import LABEL_KEY
from workspace.jobs.spec import LOG_FILES, STATES, SpecNotFound, UnknownJob
from workspace.jobs.specfile import spec_files
from workspace.repo import Repo

FOLLOW_POLL_S = 0.2
_LIVENESS_EVERY_S = 2.0


def refresh_liveness(repo: Repo) -> int:
    """Mark jobs of dead supervisors LOST; returns how many."""
    from workspace.jobs.liveness import mark_lost

    try:
        return mark_lost(repo)
    except CatalogBusy:
        return 0  # a busy catalog must not fail a read; the next read tries again


def _check_state(state: str | None) -> str | None:
    if state is None:
        return None
    up = state.upper()
    if up not in STATES:
        raise InvalidArgument(f"unknown job state '{state}' (known: {', '.join(STATES)})")
    return up


def parse_labels(pairs: list[str] | dict | None) -> dict[str, str]:
    """``--label k=v`` filters as a dict (every one must match); a pair without ``=`` is InvalidArgument (exit 2)."""
    if isinstance(pairs, dict):
        return {str(k): str(v) for k, v in pairs.items()}
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not LABEL_KEY.match(key.strip()):
            raise InvalidArgument(f"--label '{pair}': expected KEY=VALUE (a label key: letters, digits, _ . -)")
        out[key.strip()] = value
    return out


def list_jobs(repo: Repo, state: str | None = None, name: str | None = None, workflow: str | None = None,
              labels: list[str] | dict | None = None) -> list[dict]:
    """Recorded jobs, oldest first, filtered by state, spec name, workflow and labels (the ``--json`` fields).

    A job of a backend whose last status request failed, and that has not
    ended, carries ``stale``: ``since`` (the last answer), ``error``, ``error_at``.
    :func:`show_job` has every column of one job.
    """
    refresh_liveness(repo)
    wf = resolve_workflow(repo, workflow) if workflow else None
    return cj.list_job_summaries(repo.catalog, _check_state(state), name, wf, labels=parse_labels(labels))


def list_jobs_json(repo: Repo, state: str | None = None, name: str | None = None, workflow: str | None = None,
                   labels: list[str] | dict | None = None) -> str:
    """The same list as a JSON array text, built inside SQLite (the fast path of ``ws jobs --json``)."""
    refresh_liveness(repo)
    wf = resolve_workflow(repo, workflow) if workflow else None
    return cj.list_jobs_json(repo.catalog, _check_state(state), name, wf, labels=parse_labels(labels))


def resolve_job(repo: Repo, job_id: str) -> str:
    """The full id of a job named by id or unique prefix."""
    job_id = job_id.strip().lower()
    if not job_id or not re.fullmatch(r"[0-9a-f]+", job_id):
        raise UnknownJob(f"unknown job '{job_id}' (job ids are hex, see 'ws jobs')")
    matches = cj.match_job_ids(repo.catalog, job_id)
    if not matches:
        raise UnknownJob(f"unknown job '{job_id}' (see 'ws jobs')")
    if len(matches) > 1 and job_id not in matches:
        raise UnknownJob(f"job id '{job_id}' is ambiguous; give more digits")
    return job_id if job_id in matches else matches[0]


def resolve_workflow(repo: Repo, workflow_id: str) -> str:
    """The full id of a workflow named by id, unique prefix, or ``latest``."""
    if workflow_id == "latest":
        latest = cj.latest_workflow(repo.catalog)
        if latest is None:
            raise UnknownJob("no workflow recorded yet")
        return latest
    if cj.get_workflow(repo.catalog, workflow_id):
        return workflow_id
    hits = [w["id"] for w in cj.list_workflows(repo.catalog) if w["id"].startswith(workflow_id)]
    if len(hits) != 1:
        raise UnknownJob(f"{'ambiguous' if hits else 'unknown'} workflow '{workflow_id}'")
    return hits[0]


def show_job(repo: Repo, job_id: str) -> dict:
    """Everything recorded about one job: the row, its events, durations, workflow and output commit."""
    refresh_liveness(repo)
    jid = resolve_job(repo, job_id)
    job = cj.get_job(repo.catalog, jid)
    job["events"] = cj.job_events(repo.catalog, jid)
    job["durations"] = _durations(job)
    job["workflow"] = cj.get_workflow(repo.catalog, job["workflow_id"])
    job["logs"] = {kind: str(p) if p else None for kind, p in (("stdout", log_path(repo, job, False)),
                                                                ("stderr", log_path(repo, job, True)))}
    job["output_commit_info"] = _commit_info(repo, job.get("output_commit"))
    job["stale"] = cj.stale_info(repo.catalog, job["backend"], job["state"])
    return job


def _durations(job: dict) -> dict:
    sub, start, end = job.get("submitted_ns"), job.get("started_ns"), job.get("finished_ns")
    now = time.time_ns()
    queued = ((start or end or now) - sub) / 1e9 if sub else None
    running = ((end or now) - start) / 1e9 if start else None
    return {"queued_s": queued, "running_s": running}


def _commit_info(repo: Repo, commit_id: str | None) -> dict | None:
    if not commit_id:
        return None
    try:
        c = get_commit(repo.catalog, commit_id)
    except UnknownRef:  # pruned or never pulled here; a damaged catalog is an error, not "missing"
        return {"id": commit_id, "missing": True}
    return {"id": c.id, "message": c.message, "branch": c.branch, "provenance": c.provenance}


def log_path(repo: Repo, job: dict, stderr: bool = False) -> Path | None:
    """Where the recorded log file of a job is (None when no log folder is recorded)."""
    log_dir = job.get("log_dir")
    if not log_dir:
        return None
    folder = Path(log_dir)
    if not folder.is_absolute():
        folder = repo.root / folder
    names = LOG_FILES["stderr" if stderr else "stdout"]
    for name in names:
        if (folder / name).exists():
            return folder / name
    return folder / names[0]


def read_log(repo: Repo, job_id: str, stderr: bool = False) -> str:
    """The whole stdout (or stderr) a job wrote so far; empty when it wrote nothing."""
    jid = resolve_job(repo, job_id)
    path = log_path(repo, cj.get_job(repo.catalog, jid), stderr)
    if path is None or not path.exists():
        return ""
    return path.read_bytes().decode("utf-8", errors="replace")


def log_end(repo: Repo, job_id: str, tail_lines: int = 10) -> dict:
    """How a job ended, for ``ws jobs logs --follow``: state, exit code, reason, both log files and
    the last ``tail_lines`` lines of stderr (``ok`` is True for SUCCEEDED and SKIPPED)."""
    job = cj.get_job(repo.catalog, resolve_job(repo, job_id))
    out_path, err_path = log_path(repo, job, False), log_path(repo, job, True)

    def size(path: Path | None) -> int:
        return path.stat().st_size if path is not None and path.exists() else 0

    tail: list[str] = []
    if size(err_path):
        with open(err_path, "rb") as f:
            f.seek(max(0, size(err_path) - 64 * 1024))  # the tail of a huge log without reading it all
            tail = f.read().decode("utf-8", errors="replace").splitlines()[-tail_lines:]
    return {"id": job["id"], "state": job["state"], "ok": job["state"] in ("SUCCEEDED", "SKIPPED"),
            "final": job["state"] in cj.FINAL_STATES, "exit_code": job.get("exit_code"),
            "reason": job.get("reason"), "stdout": str(out_path) if out_path else None,
            "stderr": str(err_path) if err_path else None, "stdout_bytes": size(out_path),
            "stderr_bytes": size(err_path), "stderr_tail": tail}


def follow_log(repo: Repo, job_id: str, stderr: bool = False, poll_s: float = FOLLOW_POLL_S) -> Iterator[str]:
    """Yield a job's log as it grows, until the job is in a final state and the file is read to its end.

    The one read that may contact a backend: a backend that keeps a running
    job's log elsewhere (AWS Batch: CloudWatch Logs) is asked to append it to
    the log folder (:func:`workspace.jobs.launch.pull_logs`, at most once a
    second). The file stays open while it is followed, so a log replaced
    whole once the job ended (the exact streams after the live one) is read
    to its end, never mixed with its replacement.
    """
    from workspace.jobs.launch import pull_logs

    jid = resolve_job(repo, job_id)
    last_liveness = last_pull = 0.0
    backends: dict = {}
    fh = None
    try:
        while True:
            job = cj.get_job(repo.catalog, jid)
            final = job["state"] in cj.FINAL_STATES
            if not final and time.monotonic() - last_pull >= 1.0:
                pull_logs(repo, backends, job)
                last_pull = time.monotonic()
            path = log_path(repo, job, stderr)
            if fh is None and path is not None and path.exists():
                fh = open(path, "rb")
            data = fh.read() if fh is not None else b""
            if data:
                yield data.decode("utf-8", errors="replace")
            if final:  # the state was read before the file, so nothing written before the end is missed
                return
            if time.monotonic() - last_liveness > _LIVENESS_EVERY_S:
                refresh_liveness(repo)  # a dead supervisor must not make --follow hang forever
                last_liveness = time.monotonic()
            time.sleep(poll_s)
    finally:
        if fh is not None:
            fh.close()
        for backend in backends.values():
            backend.close()


# -- prune ---------------------------------------------------------------------------
_AGO_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_AGO_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_before(text: str, now_ns: int | None = None) -> int:
    """A cut-off time in ns: an ISO date/time (UTC unless it says otherwise) or an age like ``30d``/``12h``."""
    now = now_ns or time.time_ns()
    m = _AGO_RE.match(text.strip().lower())
    if m:
        return now - int(float(m.group(1)) * _AGO_UNITS[m.group(2)] * 1e9)
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"--before '{text}': expected a date like 2026-01-31, a time like "
                              "2026-01-31T12:00:00, or an age like 30d / 12h") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1e9)


def prune(repo: Repo, before: str) -> list[dict]:
    """Forget finished jobs older than ``before`` and delete their log folders under ``.ws/jobs``."""
    cutoff = parse_before(before)
    from workspace.jobs import records

    # the records first: a rebuilt catalog must not bring the pruned jobs back
    records.record_deleted(repo, cj.prunable(repo.catalog, cutoff))
    gone = cj.prune(repo.catalog, cutoff)
    for rec in gone:
        remove_log_dir(repo, rec.get("log_dir"))
    return gone


def remove_log_dir(repo: Repo, log_dir: str | None) -> None:
    """Delete a job's log folder, only when it is one ws made itself under ``.ws/jobs``."""
    if not log_dir:
        return
    logs_root = os.path.realpath(repo.layout.jobs_dir)
    full = os.path.realpath(log_dir if os.path.isabs(log_dir) else repo.root / log_dir)
    # never delete what a remote backend's path might point at
    if full.startswith(logs_root + os.sep):
        shutil.rmtree(full, ignore_errors=True)


# -- validate --------------------------------------------------------------------------
def validate_specs(repo: Repo, target: str | None = None, cwd: str | os.PathLike | None = None) -> list[dict]:
    """Check one spec (raising its error) or every ``jobs/*.yaml`` (reporting each).

    Each report: path, name, ok, jobs (how many it expands to), error, exit_code.
    """
    from workspace.jobs.expand import check_workspace
    from workspace.jobs.specfile import find_spec, load_spec

    if target is not None:
        spec = find_spec(repo, target, cwd=cwd)
        jobs = check_workspace(repo, spec)
        return [{"path": spec.path, "name": spec.name, "ok": True, "jobs": jobs, "error": None,
                 "exit_code": 0}]
    files = spec_files(repo.root)
    if not files:
        raise SpecNotFound(f"no spec files in {repo.root / 'jobs'} (expected jobs/NAME.yaml)")
    reports = []
    for p in files:
        shown = str(p.relative_to(repo.root))
        try:
            spec = load_spec(p, shown, repo.config)
            n = check_workspace(repo, spec)
            reports.append({"path": shown, "name": spec.name, "ok": True, "jobs": n, "error": None, "exit_code": 0})
        except WorkspaceError as exc:
            reports.append({"path": shown, "name": None, "ok": False, "jobs": 0, "error": str(exc),
                            "exit_code": getattr(exc, "exit_code", 9)})
    return reports
