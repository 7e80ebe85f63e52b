"""Queries for jobs, workflows and job events (plain sqlite3; the schema is in catalog.models.jobs).

Every state change updates the job row and appends an event in one
transaction, so the history and the current state never disagree. Listing
builds its JSON inside SQLite (JSON1) because ``ws jobs --json`` must answer in
well under a second with 100,000 jobs: each row stores its own entry in
``listing``, so every function here that changes a job row refreshes it in the
same transaction (a new write function must do the same).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone
from typing import Iterable

from catalog.db import Catalog

STATES = ("PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST", "OUT_OF_MEMORY")
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST", "OUT_OF_MEMORY")
ACTIVE_STATES = ("PENDING", "QUEUED", "RUNNING")
# unfinished on a backend: what refresh asks it about, and "stale" while it cannot be reached
BACKEND_STATES = ("QUEUED", "RUNNING", "LOST")

JOB_COLUMNS = (
    "id", "workflow_id", "name", "key", "params", "state", "backend", "backend_id", "attempts", "exit_code",
    "priority", "command", "spec_path", "resources", "policies", "env", "workdir", "outputs", "depends_on",
    "input_commit", "output_commit", "log_dir", "environment", "reason", "submitted_ns", "started_ns",
    "finished_ns", "submitted_at", "started_at", "finished_at", "labels", "container", "artifacts", "input_files",
)
# One job's entry of ``ws jobs --json``. Every write below stores it in ``listing`` so that
# listing 100,000 jobs is one concatenation (0.1 s) instead of 100,000 json_object calls (0.25 s).
_LISTING = (
    "json_object('id', id, 'name', name, 'state', state, 'backend', backend, 'backend_id', backend_id, "
    "'params', json(params), 'exit_code', exit_code, 'attempts', attempts, 'workflow', workflow_id, "
    "'submitted_at', submitted_at, 'started_at', started_at, 'finished_at', finished_at, "
    "'output_commit', output_commit, 'reason', reason, 'labels', json(labels))"
)
_TIME_COLUMNS = {"submitted_ns": "submitted_at", "started_ns": "started_at", "finished_ns": "finished_at"}
JSON_COLUMNS = {"params": {}, "resources": {}, "policies": {}, "env": {}, "outputs": [], "depends_on": [],
                "environment": None, "labels": {}, "container": None, "artifacts": [], "input_files": {}}
WORKFLOW_COLUMNS = ("id", "created_ns", "specs", "supervisor_pid", "supervisor_host", "state")



def new_id() -> str:
    """A fresh job or workflow id: 12 random hex digits."""
    return secrets.token_hex(6)


def iso_time(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as ISO 8601 UTC with milliseconds (``2026-01-31T12:00:00.123Z``)."""
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1_000_000 % 1000:03d}Z"


def _with_iso(fields: dict) -> dict:
    """Add the ISO text columns for any of the three job times being written."""
    for ns_col, iso_col in _TIME_COLUMNS.items():
        if ns_col in fields:
            fields[iso_col] = iso_time(fields[ns_col])
    return fields


def _encode(col: str, value):
    if col in JSON_COLUMNS and value is not None and not isinstance(value, str):
        return json.dumps(value, sort_keys=True)
    return value


_decode_json = json.JSONDecoder().decode


def _decode_row(row: tuple, cols: Iterable[str] = JOB_COLUMNS) -> dict:
    out = dict(zip(cols, row))
    for col, default in JSON_COLUMNS.items():
        if col in out:
            text = out[col]
            # most rows hold empty containers: skip the decoder for them (a third of list_jobs' time)
            if not text:
                out[col] = default
            elif text == "{}":
                out[col] = {}
            elif text == "[]":
                out[col] = []
            else:
                out[col] = _decode_json(text)
    return out


# -- workflows --------------------------------------------------------------------
def create_workflow(cat: Catalog, specs: list[str], *, workflow_id: str | None = None,
                    supervisor_pid: int | None = None, supervisor_host: str | None = None,
                    state: str = "RUNNING", created_ns: int | None = None) -> str:
    """Record a new workflow (one ``ws run``); returns its id."""
    wid = workflow_id or new_id()
    with cat.write() as conn:
        conn.execute(
            "INSERT INTO workflows(id, created_ns, specs, supervisor_pid, supervisor_host, state) VALUES (?,?,?,?,?,?)",
            (wid, created_ns or time.time_ns(), json.dumps(list(specs)), supervisor_pid, supervisor_host, state),
        )
    return wid


def update_workflow(cat: Catalog, workflow_id: str, **fields) -> None:
    """Change workflow columns (state, supervisor_pid, supervisor_host)."""
    bad = [k for k in fields if k not in WORKFLOW_COLUMNS or k == "id"]
    if bad:
        raise ValueError(f"unknown workflow columns: {bad}")
    if not fields:
        return
    if "specs" in fields and not isinstance(fields["specs"], str):
        fields["specs"] = json.dumps(fields["specs"])
    sets = ", ".join(f"{k}=?" for k in fields)
    with cat.write() as conn:
        conn.execute(f"UPDATE workflows SET {sets} WHERE id=?", (*fields.values(), workflow_id))


def get_workflow(cat: Catalog, workflow_id: str) -> dict | None:
    """One workflow row (specs decoded), or None."""
    row = cat.query_one(f"SELECT {', '.join(WORKFLOW_COLUMNS)} FROM workflows WHERE id=?", (workflow_id,))
    if row is None:
        return None
    out = dict(zip(WORKFLOW_COLUMNS, row))
    out["specs"] = json.loads(out["specs"] or "[]")
    return out


def list_workflows(cat: Catalog, state: str | None = None) -> list[dict]:
    """Workflows, oldest first (optionally only those in ``state``)."""
    sql = f"SELECT {', '.join(WORKFLOW_COLUMNS)} FROM workflows"
    args: tuple = ()
    if state:
        sql += " WHERE state=?"
        args = (state,)
    out = []
    for row in cat.query(sql + " ORDER BY created_ns, id", args):
        d = dict(zip(WORKFLOW_COLUMNS, row))
        d["specs"] = json.loads(d["specs"] or "[]")
        out.append(d)
    return out


def latest_workflow(cat: Catalog) -> str | None:
    """The id of the most recent workflow, or None."""
    row = cat.query_one("SELECT id FROM workflows ORDER BY created_ns DESC, rowid DESC LIMIT 1")
    return row[0] if row else None


# -- jobs -------------------------------------------------------------------------
def add_jobs(cat: Catalog, workflow_id: str, jobs: list[dict], now_ns: int | None = None) -> list[str]:
    """Insert jobs of a workflow (dicts keyed by column; JSON columns may be Python values).

    Missing ids are generated; state defaults to PENDING; each job gets its
    first event. Returns the ids in order.
    """
    now = now_ns or time.time_ns()
    ids: list[str] = []
    rows, events = [], []
    for job in jobs:
        bad = [k for k in job if k not in JOB_COLUMNS]
        if bad:
            raise ValueError(f"unknown job columns: {bad}")
        rec = {"attempts": 0, "priority": 0, "params": {}, "resources": {}, "policies": {}, "env": {},
               "outputs": [], "depends_on": [], "state": "PENDING", "submitted_ns": now, "labels": {},
               "artifacts": [], "input_files": {}, **job}
        _with_iso(rec)
        rec["id"] = rec.get("id") or new_id()
        rec["workflow_id"] = workflow_id
        ids.append(rec["id"])
        rows.append(tuple(_encode(c, rec.get(c)) for c in JOB_COLUMNS))
        events.append((rec["id"], rec["state"], rec["submitted_ns"], rec.get("reason")))
    marks = ",".join("?" * len(JOB_COLUMNS))
    with cat.write() as conn:
        conn.executemany(f"INSERT INTO jobs({', '.join(JOB_COLUMNS)}) VALUES ({marks})", rows)
        conn.executemany("INSERT INTO job_events(job_id, state, time_ns, detail) VALUES (?,?,?,?)", events)
        conn.execute(f"UPDATE jobs SET listing={_LISTING} WHERE workflow_id=? AND listing IS NULL", (workflow_id,))
    return ids


def set_state(cat: Catalog, job_id: str, state: str, detail: str | None = None, *,
              only_from: Iterable[str] | None = None, time_ns: int | None = None, **fields) -> bool:
    """Move a job to ``state`` and record the event, in one transaction.

    ``fields`` update other columns (exit_code, backend_id, attempts, ...).
    RUNNING sets started_ns and final states set finished_ns unless given.
    With ``only_from``, nothing happens unless the job is currently in one of
    those states (so a late "finished" cannot overwrite a cancel); returns
    whether the job changed.
    """
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}")
    bad = [k for k in fields if k not in JOB_COLUMNS or k in ("id", "state")]
    if bad:
        raise ValueError(f"unknown job columns: {bad}")
    now = time_ns or time.time_ns()
    if state == "RUNNING":
        fields.setdefault("started_ns", now)
    if state in FINAL_STATES:
        fields.setdefault("finished_ns", now)
    _with_iso(fields)
    cols = {"state": state, **{k: _encode(k, v) for k, v in fields.items()}}
    sets = ", ".join(f"{k}=?" for k in cols)
    sql = f"UPDATE jobs SET {sets} WHERE id=?"
    args: list = [*cols.values(), job_id]
    if only_from is not None:
        allowed = list(only_from)
        sql += f" AND state IN ({','.join('?' * len(allowed))})"
        args += allowed
    with cat.write() as conn:
        changed = conn.execute(sql, args).rowcount
        if changed:
            _refresh_listing(conn, job_id)
            conn.execute("INSERT INTO job_events(job_id, state, time_ns, detail) VALUES (?,?,?,?)",
                         (job_id, state, now, detail))
    return bool(changed)


def set_states(cat: Catalog, job_ids: Iterable[str], state: str, detail: str | None = None, *,
               only_from: Iterable[str] | None = None, **fields) -> list[str]:
    """:func:`set_state` for many jobs in one transaction; returns the ids that changed."""
    changed = []
    with cat.write():
        for jid in job_ids:
            if set_state(cat, jid, state, detail, only_from=only_from, **fields):
                changed.append(jid)
    return changed


def update_job(cat: Catalog, job_id: str, **fields) -> None:
    """Change columns other than the state (log_dir, environment, backend_id, ...) without an event."""
    bad = [k for k in fields if k not in JOB_COLUMNS or k in ("id", "state")]
    if bad:
        raise ValueError(f"unknown job columns: {bad}")
    if not fields:
        return
    _with_iso(fields)
    sets = ", ".join(f"{k}=?" for k in fields)
    with cat.write() as conn:
        conn.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*(_encode(k, v) for k, v in fields.items()), job_id))
        _refresh_listing(conn, job_id)


def record_backend_id(cat: Catalog, job_id: str, attempts: int, backend_id: str) -> bool:
    """Store the backend id found for attempt ``attempts`` of a job whose submitter never recorded it.

    Only while the row still has no backend id and is at that attempt (so a
    late finder cannot overwrite a newer attempt); returns whether it did.
    """
    with cat.write() as conn:
        changed = conn.execute("UPDATE jobs SET backend_id=? WHERE id=? AND attempts=? AND backend_id IS NULL",
                               (backend_id, job_id, attempts)).rowcount
        if changed:
            _refresh_listing(conn, job_id)
    return bool(changed)


def add_event(cat: Catalog, job_ids: Iterable[str], detail: str, time_ns: int | None = None) -> None:
    """Record something that happened to jobs without changing their state (a failed notification)."""
    now = time_ns or time.time_ns()
    with cat.write() as conn:
        conn.executemany("INSERT INTO job_events(job_id, state, time_ns, detail) SELECT id, state, ?, ? FROM jobs "
                         "WHERE id=?", [(now, detail, jid) for jid in job_ids])


def _refresh_listing(conn, job_id: str) -> None:
    """Re-store a job's listing entry after its row changed (same transaction)."""
    conn.execute(f"UPDATE jobs SET listing={_LISTING} WHERE id=?", (job_id,))


def get_job(cat: Catalog, job_id: str) -> dict | None:
    """One job with its JSON columns decoded, or None."""
    row = cat.query_one(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id=?", (job_id,))
    return _decode_row(row) if row else None


def match_job_ids(cat: Catalog, prefix: str, limit: int = 2) -> list[str]:
    """Job ids starting with ``prefix`` (at most ``limit``), for resolving short ids."""
    hi = prefix + "\uffff"
    rows = cat.query("SELECT id FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?", (prefix, hi, limit))
    return [r[0] for r in rows]


def _filters(state: str | Iterable[str] | None, name: str | None, workflow: str | None,
             labels: dict[str, str] | None = None) -> tuple[str, list]:
    where, args = [], []
    for key, value in (labels or {}).items():  # every label must match (AND)
        where.append("json_extract(labels, ?) = ?")
        args += ['$."' + key.replace('"', '') + '"', value]
    if state:
        states = [state] if isinstance(state, str) else list(state)
        where.append(f"state IN ({','.join('?' * len(states))})")
        args += states
    if name:
        where.append("name=?")
        args.append(name)
    if workflow:
        where.append("workflow_id=?")
        args.append(workflow)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def list_jobs(cat: Catalog, state: str | Iterable[str] | None = None, name: str | None = None,
              workflow: str | None = None, limit: int | None = None, labels: dict[str, str] | None = None) -> list[dict]:
    """Jobs (oldest first), filtered by state(s), spec name and workflow; JSON columns decoded.

    Each dict also carries ``submitted_at``, ``started_at`` and ``finished_at``
    as ISO 8601 UTC strings (or None).
    """
    where, args = _filters(state, name, workflow, labels)
    sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs{where} ORDER BY submitted_ns, rowid"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_decode_row(r) for r in cat.query(sql, tuple(args))]


def list_jobs_json(cat: Catalog, state: str | Iterable[str] | None = None, name: str | None = None,
                   workflow: str | None = None, limit: int | None = None, labels: dict[str, str] | None = None) -> str:
    """The job list as a JSON array text, built by SQLite: the fast path of ``ws jobs --json``.

    Entries come from the stored ``listing`` column; a row without one (written
    by an older ws) is formatted on the fly. While a backend is unreachable
    (:func:`outages`), the entries of its unfinished jobs get a ``stale``
    object: ``since`` (the last status request that answered, or null),
    ``error`` and ``error_at``.
    """
    where, args = _filters(state, name, workflow, labels)
    entry = f"COALESCE(listing, {_LISTING})"
    down = _stale_objects(cat)
    if down:  # the objects are made by stale_object, as ws jobs show's: one formatting of the times
        marks = ",".join("?" * len(down))
        states = ",".join("?" * len(BACKEND_STATES))
        values = ",".join("(?,?)" for _ in down)
        entry = (f"CASE WHEN backend IN ({marks}) AND state IN ({states}) THEN json_set({entry}, '$.stale', "
                 f"(SELECT json(column2) FROM (VALUES {values}) WHERE column1 = jobs.backend)) ELSE {entry} END")
        pairs = [x for name, stale in down.items() for x in (name, json.dumps(stale))]
        args = [*down, *BACKEND_STATES, *pairs, *args]
    inner = f"SELECT {entry} AS entry FROM jobs{where} ORDER BY submitted_ns, rowid"
    if limit is not None:
        inner += f" LIMIT {int(limit)}"
    row = cat.query_one(f"SELECT '[' || group_concat(entry, ',') || ']' FROM ({inner})", tuple(args))
    return row[0] if row and row[0] else "[]"


def list_job_summaries(cat: Catalog, state: str | Iterable[str] | None = None, name: str | None = None,
                       workflow: str | None = None, labels: dict[str, str] | None = None) -> list[dict]:
    """The ``ws jobs --json`` entries as dicts (id, name, state, backend, params, exit_code, times, ...).

    Several times faster than :func:`list_jobs` on many jobs (100,000 in about
    0.4 s), because SQLite hands back one stored JSON text instead of 27 columns per row.
    """
    return json.loads(list_jobs_json(cat, state, name, workflow, labels=labels))


def count_by_state(cat: Catalog, workflow: str | None = None) -> dict[str, int]:
    """How many jobs are in each state (of one workflow, or all)."""
    where, args = _filters(None, None, workflow)
    rows = cat.query(f"SELECT state, COUNT(*) FROM jobs{where} GROUP BY state", tuple(args))
    return {s: n for s, n in rows}


def job_events(cat: Catalog, job_id: str) -> list[dict]:
    """A job's state transitions, oldest first: state, time_ns, time (ISO), detail."""
    rows = cat.query("SELECT state, time_ns, detail FROM job_events WHERE job_id=? ORDER BY time_ns, id", (job_id,))
    return [{"state": s, "time_ns": t, "time": iso_time(t), "detail": d} for s, t, d in rows]


def previous_state(cat: Catalog, job_id: str) -> str | None:
    """The state a job was in before its current one (from its events), or None."""
    row = cat.query_one("SELECT e.state FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE e.job_id=? "
                        "AND e.state != j.state ORDER BY e.time_ns DESC, e.id DESC LIMIT 1", (job_id,))
    return row[0] if row else None


def succeeded_with_key(cat: Catalog, key: str) -> str | None:
    """The most recent job with this key that SUCCEEDED, or None (incremental re-runs)."""
    row = cat.query_one(
        "SELECT id FROM jobs WHERE key=? AND state='SUCCEEDED' ORDER BY finished_ns DESC LIMIT 1", (key,)
    )
    return row[0] if row else None


def jobs_in_states(cat: Catalog, states: Iterable[str], workflow: str | None = None) -> list[dict]:
    """Jobs currently in any of ``states`` (optionally of one workflow), JSON columns decoded."""
    where, args = _filters(list(states), None, workflow)
    rows = cat.query(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs{where} ORDER BY priority DESC, submitted_ns, rowid",
                     tuple(args))
    return [_decode_row(r) for r in rows]


def prunable(cat: Catalog, before_ns: int) -> list[dict]:
    """``{id, workflow_id, output_commit}`` of the jobs :func:`prune` would forget."""
    finals = ",".join("?" * len(FINAL_STATES))
    rows = cat.query(f"SELECT id, workflow_id, output_commit FROM jobs WHERE state IN ({finals}) "
                         "AND COALESCE(finished_ns, submitted_ns) < ?", (*FINAL_STATES, before_ns))
    return [{"id": i, "workflow_id": w, "output_commit": c} for i, w, c in rows]


def prune(cat: Catalog, before_ns: int) -> list[dict]:
    """Forget jobs in a final state that finished before ``before_ns``, with their events.

    Workflows left without jobs go too. Returns ``{id, log_dir}`` of each pruned
    job so the caller can remove its log files.
    """
    finals = ",".join("?" * len(FINAL_STATES))
    cond = f"state IN ({finals}) AND COALESCE(finished_ns, submitted_ns) < ?"
    args = (*FINAL_STATES, before_ns)
    with cat.write() as conn:
        gone = conn.execute(f"SELECT id, log_dir FROM jobs WHERE {cond}", args).fetchall()
        conn.execute(f"DELETE FROM job_events WHERE job_id IN (SELECT id FROM jobs WHERE {cond})", args)
        conn.execute(f"DELETE FROM jobs WHERE {cond}", args)
        conn.execute("DELETE FROM workflows WHERE created_ns < ? AND id NOT IN (SELECT DISTINCT workflow_id FROM jobs)",
                     (before_ns,))
    return [{"id": i, "log_dir": d} for i, d in gone]


def delete_jobs(cat: Catalog, job_ids: Iterable[str]) -> list[dict]:
    """Forget these jobs (any state: the caller checks), with their events; workflows left empty go too.

    Returns ``{id, log_dir, workflow_id, output_commit}`` of each job deleted.
    """
    ids = list(job_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    with cat.write() as conn:
        gone = conn.execute(f"SELECT id, log_dir, workflow_id, output_commit FROM jobs WHERE id IN ({marks})",
                            ids).fetchall()
        conn.execute(f"DELETE FROM job_events WHERE job_id IN ({marks})", ids)
        conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids)
        wfs = sorted({w for _, _, w, _ in gone})
        if wfs:
            wm = ",".join("?" * len(wfs))
            conn.execute(f"DELETE FROM workflows WHERE id IN ({wm}) AND id NOT IN "
                         "(SELECT DISTINCT workflow_id FROM jobs)", wfs)
    return [{"id": i, "log_dir": d, "workflow_id": w, "output_commit": c} for i, d, w, c in gone]


def job_commits(cat: Catalog) -> set[str]:
    """Every input and output commit a recorded job names (``ws gc --prune`` keeps them)."""
    rows = cat.query("SELECT input_commit, output_commit FROM jobs")
    return {c for row in rows for c in row if c}


# -- backend polls (stale marking, rate limits) -------------------------------------------
def record_poll(cat: Catalog, name: str, error: str | None = None, now_ns: int | None = None) -> None:
    """Record a status request to backend ``name``: answered (``error`` None, the outage ends) or failed."""
    now = now_ns or time.time_ns()
    with cat.write() as conn:
        if error is None:
            conn.execute("INSERT INTO backend_polls(name, last_ok_ns, last_try_ns, error, error_ns) "
                         "VALUES (?,?,?,NULL,NULL) ON CONFLICT(name) DO UPDATE SET last_ok_ns=excluded.last_ok_ns, "
                         "last_try_ns=excluded.last_try_ns, error=NULL, error_ns=NULL", (name, now, now))
        else:
            conn.execute("INSERT INTO backend_polls(name, last_ok_ns, last_try_ns, error, error_ns) "
                         "VALUES (?,NULL,?,?,?) ON CONFLICT(name) DO UPDATE SET last_try_ns=excluded.last_try_ns, "
                         "error=excluded.error, error_ns=excluded.error_ns", (name, now, error, now))


def backend_poll(cat: Catalog, name: str) -> dict | None:
    """``{name, last_ok_ns, last_try_ns, error, error_ns}`` of a backend, or None if it was never polled."""
    row = cat.query_one("SELECT name, last_ok_ns, last_try_ns, error, error_ns FROM backend_polls WHERE name=?",
                        (name,))
    return dict(zip(("name", "last_ok_ns", "last_try_ns", "error", "error_ns"), row)) if row else None


def stale_object(last_ok_ns: int | None, error: str, error_ns: int | None) -> dict:
    """A job's ``stale`` object: ``since`` (the last status request that answered, or None), ``error``, ``error_at``."""
    return {"since": iso_time(last_ok_ns), "error": error, "error_at": iso_time(error_ns)}


def _stale_objects(cat: Catalog) -> dict[str, dict]:
    """Backend name -> the ``stale`` object of its unfinished jobs, for each backend in an outage."""
    rows = cat.query("SELECT name, last_ok_ns, error, error_ns FROM backend_polls WHERE error IS NOT NULL")
    return {name: stale_object(ok, error, at) for name, ok, error, at in rows}


def stale_info(cat: Catalog, backend: str, state: str) -> dict | None:
    """The ``stale`` object of a job of ``backend`` in ``state`` (None unless unfinished on an unreachable backend)."""
    if state not in BACKEND_STATES:
        return None
    poll = backend_poll(cat, backend)
    if not poll or poll["error"] is None:
        return None
    return stale_object(poll["last_ok_ns"], poll["error"], poll["error_ns"])
