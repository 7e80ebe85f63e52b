"""Running jobs: record a workflow, start its supervisor, wait, cancel, rerun, refresh.

``submit`` turns expanded jobs (:mod:`workspace.jobs.expand`) into catalog rows
(jobs whose key already succeeded become SKIPPED unless ``force``), then runs
the supervisor in this process (``wait=True``) or spawns it detached as
``ws jobs supervise WF`` in a new session and returns at once. Everything else
here answers from the catalog, except :func:`refresh`, which asks the backends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict

from catalog import jobs as q
from sync.errors import BackendError, UnknownBackend
from workspace.errors import InvalidArgument, WorkspaceError
from workspace.history import refs
from workspace.jobs import environment, records
from workspace.jobs.liveness import record_supervisor
from workspace.jobs.query import resolve_job, resolve_workflow
from workspace.jobs.spec import UnknownJob
from workspace.jobs.launch import find_started, get_backend
from workspace.jobs.supervisor import supervise, workflow_dir
from workspace.repo import Repo

FINAL = set(q.FINAL_STATES)


class WaitTimedOut(WorkspaceError):
    """``wait`` reached its timeout before the jobs ended."""

    exit_code = 1


class JobStillActive(WorkspaceError):
    """``ws jobs delete`` of a job that is pending, queued or running."""

    exit_code = 1


class NothingToRerun(WorkspaceError):
    """``rerun --failed`` found no failed, cancelled, lost or out-of-memory job."""

    exit_code = 1


# -- submitting ----------------------------------------------------------------
class _Planner:
    """Turns expanded jobs into catalog rows, one at a time (what :func:`iter_plan` and :func:`submit` share)."""

    def __init__(self, repo: Repo, force: bool):
        self.repo, self.force = repo, force
        _, self.head = refs.read_head(repo.catalog)
        section = repo.config.get("jobs") if isinstance(repo.config.get("jobs"), dict) else {}
        self.base_env = environment.base_environment(tuple(section.get("record_env") or ()))
        # job ids of specs that later specs depend on; none for the others, so memory stays flat
        self.ids_by_spec: dict[str, list[str]] = {}
        self.jobs_dir = str(repo.layout.jobs_dir)
        self._asdicts: dict[int, tuple[object, dict]] = {}  # the jobs of a spec share its resources, policies
        self._stages: dict[str, bool] = {}  # backend name -> whether it stages inputs (needs input_files)

    def _asdict(self, obj) -> dict:
        """``asdict(obj)``, made once per object (a sweep's jobs share one; asdict per job was a third of a plan)."""
        hit = self._asdicts.get(id(obj))
        if hit is None or hit[0] is not obj:
            hit = self._asdicts[id(obj)] = (obj, asdict(obj))
        return dict(hit[1])

    def _stages_inputs(self, name: str) -> bool:
        if name not in self._stages:  # a class attribute: no backend is built, no secret read
            from workspace.jobs.backends import backend_class, resolve

            self._stages[name] = bool(backend_class(resolve(self.repo.config, name).type).stages_inputs)
        return self._stages[name]

    def row(self, job) -> dict:
        """The row of one job: dependencies resolved to job ids, skipped when its key already succeeded."""
        repo = self.repo
        if job.workdir:
            repo.layout.rel(job.workdir, cwd=repo.root)  # a workdir outside the workspace is refused (exit 5)
        jid = q.new_id()
        row = {
            "id": jid, "name": job.spec_name, "key": job.key, "params": job.params, "backend": job.backend,
            "priority": job.policies.priority, "command": job.command, "spec_path": job.spec_path,
            "resources": self._asdict(job.resources), "policies": self._asdict(job.policies), "env": job.env,
            "workdir": job.workdir, "outputs": job.outputs, "input_commit": self.head,
            "depends_on": [d for s in job.depends_on for d in self.ids_by_spec.get(s, [])],
            "log_dir": os.path.join(self.jobs_dir, jid), "state": "PENDING",
            "environment": environment.job_environment(self.base_env, job.command, job.env, job.workdir or "."),
            "labels": dict(job.labels), "container": job.container, "artifacts": list(job.artifacts),
            # the matched files and their ids, only for backends that stage them: a big sweep reading many
            # files on a shared file system must not copy that list into every row
            "input_files": dict(job.input_ids or {}) if self._stages_inputs(job.backend) else {},
        }
        prev = None if self.force else q.succeeded_with_key(repo.catalog, job.key)
        if prev:
            earlier = q.get_job(repo.catalog, prev) or {}
            row.update(state="SKIPPED", reason=f"already succeeded as job {prev}",
                       output_commit=earlier.get("output_commit"))
        if job.depended_on:
            self.ids_by_spec.setdefault(job.spec_name, []).append(jid)
        return row


def iter_plan(repo: Repo, expanded: Iterable, force: bool = False) -> Iterator[dict]:
    """The catalog rows ``submit`` would record, one per expanded job as it comes: dependencies
    resolved to job ids, skips decided (a job whose key already succeeded is SKIPPED unless ``force``)."""
    planner = _Planner(repo, force)
    for job in expanded:
        yield planner.row(job)


def plan(repo: Repo, expanded: Iterable, force: bool = False) -> list[dict]:
    """The catalog rows ``submit`` would record, as a list (see :func:`iter_plan`)."""
    return list(iter_plan(repo, expanded, force))


def target_spec(repo: Repo, spec, cwd: str | None = None, param_file: str | None = None):
    """The spec a run starts from: a JobSpec as given (an ad-hoc run's), or one found by name or path;
    with ``param_file`` its parameters replaced by the file's records (``--param-file``)."""
    from dataclasses import replace

    from workspace.jobs.spec import JobSpec, param_names, validate
    from workspace.jobs.specfile import find_spec
    from workspace.jobs.sweeps import read_param_file

    found = spec if isinstance(spec, JobSpec) else find_spec(repo, spec, cwd=cwd)
    if param_file is None:
        return found
    records = read_param_file(param_file)
    declared = param_names(found.params)
    unknown = sorted(set(records[0]) - declared)
    if declared and unknown:
        raise InvalidArgument(f"--param-file {param_file}: {found.where} declares no parameter '{unknown[0]}' "
                              f"(parameters: {', '.join(sorted(declared))})")
    return validate(replace(found, params=records), repo.config)


def dry_run_rows(repo: Repo, name_or_path, overrides: dict | list[str] | None = None, backend: str | None = None,
                 *, force: bool = False, cwd: str | None = None, param_file: str | None = None) -> Iterator[dict]:
    """What ``ws run --dry-run`` prints: the row each job would get, produced as the sweep is expanded.

    Nothing is recorded. Errors found before expanding (unknown spec, cycles,
    ``--param``, the cap ``[jobs] max_jobs_per_run``) are raised by this call;
    per-job ones (templates, paths, inputs) as the rows are read. Memory stays
    flat however big the sweep: ``ws run --dry-run`` prints each row as it comes.
    ``name_or_path`` may also be a JobSpec (an ad-hoc run's, see :mod:`workspace.jobs.adhoc`).
    """
    from workspace.jobs.expand import iter_expand, parse_overrides

    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    spec = target_spec(repo, name_or_path, cwd, param_file)
    expanded = iter_expand(repo, [spec], overrides or {}, backend=backend)
    return iter_plan(repo, expanded, force)


def run_spec(repo: Repo, name_or_path, overrides: dict | list[str] | None = None, backend: str | None = None,
             *, wait: bool = False, force: bool = False, dry_run: bool = False, cwd: str | None = None,
             param_file: str | None = None) -> dict:
    """What ``ws run`` does: load, expand and submit one spec (and the specs it depends on).

    ``name_or_path``: a spec name in ``jobs/``, a YAML path, or a JobSpec
    built in memory (``ws run -- COMMAND``: the same expansion, records, logs
    and output commits as a spec file). ``overrides`` set parameters: a dict
    (a value or a list of values each), or ``KEY=V1,V2`` strings as ``--param``
    gives them. ``param_file``: CSV or JSON Lines records replacing the spec's
    parameters (``--param-file``).
    Returns ``{"workflow": id or None, "jobs": [rows]}``; with ``dry_run``
    nothing is recorded and the rows say what would run or be skipped
    (:func:`dry_run_rows` gives them one at a time instead of as a list).
    """
    from workspace.jobs.expand import iter_expand, parse_overrides

    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    if dry_run:
        return {"workflow": None, "jobs": list(dry_run_rows(repo, name_or_path, overrides, backend, force=force,
                                                            cwd=cwd, param_file=param_file))}
    spec = target_spec(repo, name_or_path, cwd, param_file)
    expanded = iter_expand(repo, [spec], overrides or {}, backend=backend)
    wf = submit(repo, expanded, wait=wait, force=force)
    return {"workflow": wf, "jobs": q.list_jobs(repo.catalog, workflow=wf),
            "state": (q.get_workflow(repo.catalog, wf) or {}).get("state")}


def submit(repo: Repo, expanded: Iterable, wait: bool = False, force: bool = False) -> str:
    """Record a workflow for ``expanded`` (a list or an iterator of jobs) and run it; returns the workflow id.

    Rows are built as the jobs come (no list of expanded jobs is kept), then
    recorded in one transaction. With ``wait`` the supervisor runs here and
    this returns when every job is final; otherwise a detached supervisor is
    started and this returns at once.
    """
    planner = _Planner(repo, force)
    rows: list[dict] = []
    specs: dict[str, None] = {}
    notify: dict = {}
    for job in expanded:  # their backends were checked as they were expanded (expand.check_backend)
        rows.append(planner.row(job))
        specs.setdefault(job.spec_name, None)
        if job.notify is not None:
            notify[job.spec_name] = job.notify
    if not rows:
        raise InvalidArgument("nothing to run: the specs expanded to no job")
    wf = q.new_id()
    records.write_submitted(repo, wf, list(specs), rows)  # the record first: the catalog is its index
    with repo.catalog.write():
        q.create_workflow(repo.catalog, list(specs), workflow_id=wf, state="RUNNING")
        for start in range(0, len(rows), _BATCH):
            q.add_jobs(repo.catalog, wf, rows[start:start + _BATCH])
    _save_notify(repo, wf, notify)
    _start(repo, wf, wait)
    return wf


_BATCH = 5000  # rows per INSERT of one submission (all in one transaction)


def _save_notify(repo: Repo, wf: str, settings: dict) -> None:
    """Spec name -> notify settings, for the (possibly detached) supervisor."""
    from workspace.jobs.notify import save_settings

    folder = workflow_dir(repo, wf)
    os.makedirs(folder, exist_ok=True)
    save_settings(os.path.join(folder, "notify.json"), settings)


def _start(repo: Repo, wf: str, wait: bool) -> None:
    if wait or not q.jobs_in_states(repo.catalog, ("PENDING",), workflow=wf):  # all skipped: ends at once
        supervise(repo, wf)
    else:
        spawn_supervisor(repo, wf)


def spawn_supervisor(repo: Repo, workflow_id: str, adopt: bool = False) -> int:
    """Start ``ws jobs supervise WF`` detached (new session, output to its log); returns its pid."""
    folder = workflow_dir(repo, workflow_id)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "supervisor.log"), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workspace", "-C", str(repo.root), "jobs", "supervise", workflow_id,
             *(["--adopt"] if adopt else [])],
            cwd=str(repo.root), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True,
        )
    # recorded here as well as by the supervisor itself, so liveness checks work from the first moment
    record_supervisor(repo, workflow_id, proc.pid)
    q.update_workflow(repo.catalog, workflow_id, supervisor_pid=proc.pid, supervisor_host=socket.gethostname())
    return proc.pid


# -- resolving ids -------------------------------------------------------------------
def job_ids_of(repo: Repo, ids: list[str]) -> list[str]:
    """Full job ids for ids or prefixes; a workflow id (or 'latest') stands for all its jobs."""
    out: list[str] = []
    for given in ids:
        try:
            out.append(resolve_job(repo, given))
        except UnknownJob as exc:
            try:
                wf = resolve_workflow(repo, given)
            except UnknownJob:
                raise exc from None
            out.extend(r["id"] for r in q.list_jobs(repo.catalog, workflow=wf))
    return list(dict.fromkeys(out))


# -- waiting and cancelling -------------------------------------------------------------
def wait(repo: Repo, job_ids: list[str], timeout: float | None = None) -> list[dict]:
    """Block until every job is final (LOST included); returns their rows.

    Raises WaitTimedOut after ``timeout`` seconds. Dead supervisors are noticed
    through :func:`workspace.jobs.liveness.mark_lost`, so this cannot hang on them.
    """
    from workspace.jobs.liveness import mark_lost

    ids = job_ids_of(repo, job_ids)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        mark_lost(repo)
        rows = [q.get_job(repo.catalog, j) for j in ids]
        if all(r["state"] in FINAL for r in rows):
            return rows
        if deadline is not None and time.monotonic() >= deadline:
            left = [r["id"] for r in rows if r["state"] not in FINAL]
            raise WaitTimedOut(f"timed out after {timeout:g}s; still running: {', '.join(left)}")
        time.sleep(delay)  # the catalog has no change notification: poll with backoff
        delay = min(delay * 2, 0.5)


def cancel(repo: Repo, job_ids: list[str] | None = None, all_jobs: bool = False, reason: str | None = None) -> list[str]:
    """Cancel jobs (or every active job): pending ones at once, running ones on their backend.

    ``reason`` (``ws jobs cancel --reason``) is recorded as the job's reason,
    ``cancelled by user: REASON``, in the catalog and in the workflow's record
    under ``.ws/jobs/`` (so a rebuilt catalog keeps it).

    A LOST job named by id is stopped too when its backend says it still runs.
    A job whose supervisor died before recording its backend id is found on
    its backend first (see :mod:`workspace.jobs.launch`). Returns the ids that
    were cancelled; finished jobs are left alone.
    """
    if all_jobs:
        rows = q.jobs_in_states(repo.catalog, q.ACTIVE_STATES)
    else:
        rows = [q.get_job(repo.catalog, j) for j in job_ids_of(repo, job_ids or [])]
    if reason is not None and not reason.strip():
        raise InvalidArgument("--reason: give a non-empty text (why the jobs are cancelled)")
    why = "cancelled by user" + (f": {reason.strip()}" if reason else "")
    backends: dict = {}
    done, to_kill = [], {}
    for row in rows:
        find_started(repo, backends, row)
        allowed = q.ACTIVE_STATES
        if row["state"] == "LOST" and row["backend_id"] and _still_runs(repo, backends, row):
            allowed = ("LOST",)
        elif row["state"] in FINAL:
            continue
        if q.set_state(repo.catalog, row["id"], "CANCELLED", why, only_from=allowed, reason=why):
            done.append(row["id"])
            if reason:
                records.append_op(repo, row["workflow_id"], {"op": "cancel", "id": row["id"], "reason": why})
            if row["backend_id"]:
                to_kill.setdefault(row["backend"], []).append(row)
    failure = None
    for name, killed in to_kill.items():
        try:
            get_backend(repo, backends, name).cancel([r["backend_id"] for r in killed])
        except BackendError as exc:  # they still run: back to what they were, so that nothing is lost
            failure = failure or exc
            _uncancel(repo, killed, exc)
    if failure is not None:
        raise failure
    return done


def delete(repo: Repo, job_ids: list[str], keep_outputs: bool = True) -> list[dict]:
    """Forget finished jobs: their catalog rows and events, their log folders under ``.ws/jobs``.

    Refuses (JobStillActive, exit 1) when any named job is pending, queued or
    running: cancel it first. The deletion is written to the workflows'
    records before the catalog forgets, so ``ws fsck --rebuild-catalog`` does
    not bring the jobs back. Output commits stay in history; with
    ``keep_outputs`` (the default) ``ws gc --prune`` keeps them as if the job
    were still recorded, without it they are kept only while a branch, tag or
    release reaches them. Returns ``{id, workflow_id, output_commit, log_dir}`` per job.
    """
    from workspace.jobs.liveness import mark_lost
    from workspace.jobs.query import remove_log_dir

    if not job_ids:
        raise InvalidArgument("name the jobs to delete (ids, prefixes or a workflow id)")
    mark_lost(repo)
    rows = [q.get_job(repo.catalog, j) for j in job_ids_of(repo, job_ids)]
    active = [r for r in rows if r["state"] not in FINAL]
    if active:
        r = active[0]
        more = f" (and {len(active) - 1} more)" if len(active) > 1 else ""
        raise JobStillActive(f"job {r['id']} is {r['state']}{more}: only finished jobs can be deleted; "
                             f"stop it first with 'ws jobs cancel {r['id']}'")
    records.record_deleted(repo, rows, keep_outputs=keep_outputs)
    gone = q.delete_jobs(repo.catalog, [r["id"] for r in rows])
    for g in gone:
        remove_log_dir(repo, g.get("log_dir"))
    return gone


def _uncancel(repo: Repo, rows: list[dict], exc: Exception) -> None:
    """Undo the CANCELLED of jobs whose backend could not stop them (its error is recorded on them)."""
    for r in rows:
        q.set_state(repo.catalog, r["id"], r["state"], f"cancel failed: {exc}", only_from=("CANCELLED",),
                    reason=r["reason"], exit_code=r["exit_code"], started_ns=r["started_ns"], finished_ns=None)


def _still_runs(repo: Repo, backends: dict, row: dict) -> bool:
    st = get_backend(repo, backends, row["backend"]).status([row["backend_id"]])[row["backend_id"]]
    return not st.final


# -- rerunning and refreshing ---------------------------------------------------------------
RERUN_STATES = ("FAILED", "CANCELLED", "LOST", "OUT_OF_MEMORY")


def rerun_failed(repo: Repo, workflow_id: str | None = None, wait: bool = False) -> str:
    """A new workflow re-running the failed, cancelled and lost jobs of ``workflow_id`` (default: latest)."""
    wf = resolve_workflow(repo, workflow_id or "latest")
    old = [r for r in q.list_jobs(repo.catalog, workflow=wf) if r["state"] in RERUN_STATES]
    if not old:
        raise NothingToRerun(f"workflow {wf} has no failed, cancelled, lost or out-of-memory job to rerun")
    new_ids = {r["id"]: q.new_id() for r in old}
    _, head = refs.read_head(repo.catalog)
    keep = ("name", "key", "params", "backend", "priority", "command", "spec_path", "resources", "policies",
            "env", "workdir", "outputs", "environment", "labels", "container", "artifacts", "input_files")
    rows = []
    for r in old:
        nid = new_ids[r["id"]]
        rows.append({**{k: r[k] for k in keep}, "id": nid, "input_commit": head,
                     "depends_on": [new_ids.get(d, d) for d in r["depends_on"]],
                     "log_dir": os.path.join(repo.layout.jobs_dir, nid), "reason": f"rerun of {r['id']}"})
    specs = sorted({r["name"] for r in rows})
    new_wf = q.new_id()
    records.write_submitted(repo, new_wf, specs, rows)
    with repo.catalog.write():
        q.create_workflow(repo.catalog, specs, workflow_id=new_wf, state="RUNNING")
        q.add_jobs(repo.catalog, new_wf, rows)
    _copy_notify(repo, wf, new_wf)
    _start(repo, new_wf, wait)
    return new_wf


def _copy_notify(repo: Repo, old: str, new: str) -> None:
    src = os.path.join(workflow_dir(repo, old), "notify.json")
    os.makedirs(workflow_dir(repo, new), exist_ok=True)
    try:
        with open(src) as f:
            data = f.read()
    except FileNotFoundError:
        data = "{}"
    with open(os.path.join(workflow_dir(repo, new), "notify.json"), "w") as f:
        f.write(data)


def refresh(repo: Repo) -> list[dict]:
    """Ask the backends about every unfinished (or lost) job that has a backend id; update the catalog.

    Returns ``{id, old, new}`` for each job whose state changed; a backend that
    could not be reached raises its error after every other backend was asked
    (see :func:`refresh_report`).
    """
    report = refresh_report(repo)
    if report["errors"]:
        raise report["errors"][0]
    return report["changes"]


def refresh_report(repo: Repo) -> dict:
    """What ``ws jobs refresh`` does: ``{"changes": [{id, old, new}], "errors": [BackendError], "backends": {...}}``.

    One status request per backend for all its jobs, rate limited: a backend
    with a poll interval (Slurm, Batch, PROMINENCE) is not asked again before
    that many seconds passed since the last request any ``ws`` process recorded
    for it (this call waits the rest). A backend that cannot be reached keeps
    its jobs in their last known state, recorded as an outage (``ws jobs``
    then marks them stale, with the time of the last answer and the error),
    and the other backends are still asked. Jobs of dead supervisors are
    marked LOST first, and a LOST job whose supervisor died before recording
    its backend id is looked up on its backend. A job that succeeded gets its
    outputs committed here if no supervisor did it; LOST jobs that still run
    are handed to a new supervisor for their workflow.
    """
    from workspace.jobs.liveness import mark_lost

    mark_lost(repo)
    backends: dict = {}
    errors: list[BackendError] = []
    seen: dict[str, str] = {}
    rows = q.jobs_in_states(repo.catalog, q.BACKEND_STATES)
    for r in rows:
        if r["state"] == "LOST":
            try:
                find_started(repo, backends, r)
            except BackendError as exc:
                _outage(repo, r["backend"], exc, errors, seen)
    by_backend: dict[str, list[dict]] = {}
    for r in rows:
        if r["backend_id"] and r["backend"] not in seen:
            by_backend.setdefault(r["backend"], []).append(r)
    changes, adopt = [], {}
    for name, jobs in by_backend.items():
        try:
            backend = get_backend(repo, backends, name)
            rate_limit(repo, name, backend)
            statuses = backend.status([j["backend_id"] for j in jobs])  # one request for all of them
        except (BackendError, UnknownBackend) as exc:  # unknown: removed from the config since
            _outage(repo, name, exc, errors, seen)
            continue
        q.record_poll(repo.catalog, name)
        seen[name] = "ok"
        for job in jobs:
            st = statuses.get(job["backend_id"])
            if st is None or st.state == job["state"]:
                continue
            if not st.final:
                if job["state"] == "LOST":
                    adopt.setdefault(job["workflow_id"], []).append(job)
                continue  # a live supervisor follows its running jobs itself
            change = _record_final(repo, job, st)
            if change:
                changes.append(change)
    for wf, jobs in adopt.items():
        spawn_supervisor(repo, wf, adopt=True)  # records its pid first, so liveness sees a live supervisor
        for job in jobs:  # the new supervisor may have adopted (or even finished) it already
            if q.set_state(repo.catalog, job["id"], "RUNNING", "adopted by a new supervisor (refresh)",
                           only_from=("LOST",), reason=None, started_ns=job["started_ns"] or time.time_ns()):
                changes.append({"id": job["id"], "old": "LOST", "new": "RUNNING"})
    for backend in backends.values():
        backend.close()
    return {"changes": changes, "errors": errors, "backends": seen}


def poll_interval(backend) -> float:
    """The least time between two status requests to a backend (its own option; 0 for the local one)."""
    value = getattr(backend, "poll_interval_s", 0)  # ComputeBackend's; a duck-typed backend may lack it
    return float(value) if isinstance(value, (int, float)) and value > 0 else 0.0


def rate_limit(repo: Repo, name: str, backend) -> None:
    """Wait until ``name`` may be asked again (its poll interval since the last recorded request)."""
    interval = poll_interval(backend)
    last = (q.backend_poll(repo.catalog, name) or {}).get("last_try_ns")
    if interval and last:
        rest = interval - (time.time_ns() - last) / 1e9
        if rest > 0:
            time.sleep(min(rest, interval))  # the rate limit itself: at most one request per interval


def _outage(repo: Repo, name: str, exc: BackendError, errors: list, seen: dict) -> None:
    """Record that ``name`` could not be reached: its jobs keep their state and show as stale."""
    if name not in seen:
        q.record_poll(repo.catalog, name, error=str(exc))
        errors.append(exc)
        seen[name] = str(exc)


def _record_final(repo: Repo, job: dict, st) -> dict | None:
    """Record a final backend status for a job no supervisor is finishing."""
    from workspace.jobs.outputs import collect_outputs

    fields = {"exit_code": st.exit_code, "reason": st.reason}
    new = st.state if st.state in q.STATES else "LOST"
    if st.state == "SUCCEEDED":
        commit_id, problem = (job["output_commit"], None) if job["output_commit"] else \
            collect_outputs(repo, None, job, st.exit_code)
        new = "FAILED" if problem else "SUCCEEDED"
        fields.update(output_commit=commit_id, reason=problem)
    if st.finished_ns:
        fields["finished_ns"] = st.finished_ns
    if q.set_state(repo.catalog, job["id"], new, f"refresh: backend reports {st.state}", only_from=(job["state"],),
                   **fields):
        return {"id": job["id"], "old": job["state"], "new": new}
    return None
