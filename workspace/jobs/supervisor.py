"""The supervisor: drives one workflow's jobs on their backends until every job is final.

It runs either inside ``ws run --wait`` or detached as ``ws jobs supervise WF``.
Each turn of its loop asks every backend for the status of all its running
jobs in one call, finishes what ended (commit outputs, retry or fail, notify),
fails or cancels what cannot run any more, and starts ready jobs in priority
order while the sum of their cpus stays within ``[jobs] max_cpus``. Between
turns it waits on the backend (the local backend wakes up as soon as a child
exits), so scheduling costs milliseconds, not a polling interval.
"""

from __future__ import annotations

import os
import socket
import time

from catalog import jobs as q
from sync.compute import registry
from sync.compute.base import CANCELLED, FAILED, RUNNING, SUCCEEDED, BackendStatus, SubmitRequest
from workspace.jobs import notify as notify_mod
from workspace.jobs.liveness import record_supervisor
from workspace.jobs.outputs import commit_outputs

MAX_WAIT_S = 1.0  # longest the loop sleeps without looking at the catalog (external cancels)
ACTIVE = ("QUEUED", "RUNNING")
OK_STATES = ("SUCCEEDED", "SKIPPED")


def max_cpus(ws) -> int:
    """The concurrency limit: config ``[jobs] max_cpus``, default the machine's cpu count."""
    section = ws.config.get("jobs", {}) if isinstance(ws.config.get("jobs"), dict) else {}
    value = section.get("max_cpus") or os.cpu_count() or 1
    return max(1, int(value))


def workflow_dir(ws, workflow_id: str) -> str:
    """Where a workflow keeps its supervisor log and notify settings."""
    return os.path.join(ws.layout.jobs_dir, f"wf-{workflow_id}")


def get_backend(ws, cache: dict, name: str):
    """One backend instance per name per process (the local one anchored at ``.ws/jobs``)."""
    if name not in cache:
        opts = {"root": str(ws.layout.jobs_dir)} if name == "local" else {}
        cache[name] = registry.get(name, **opts)
    return cache[name]


class Supervisor:
    """The scheduling loop of one workflow (see the module docstring)."""

    def __init__(self, ws, workflow_id: str, cpus: int | None = None, adopt: bool = False):
        self.ws = ws
        self.adopt = adopt  # take over LOST jobs that still run (after 'ws jobs refresh')
        self.cat = ws.catalog
        self.wf = workflow_id
        self.max_cpus = cpus or max_cpus(ws)
        self.backends: dict = {}
        self.pending: dict[str, dict] = {}
        self.running: dict[str, dict] = {}
        self.states: dict[str, str] = {}
        self.policies: dict[str, dict] = {}
        self.not_before: dict[str, int] = {}
        self.notify = notify_mod.load_settings(os.path.join(workflow_dir(ws, workflow_id), "notify.json"))
        self._log_path = os.path.join(workflow_dir(ws, workflow_id), "supervisor.log")
        self._last_sync = time.monotonic()
        self._order: list[str] | None = None  # pending ids by priority; rebuilt when jobs come back
        self._check_blocked = True  # a dependency ended badly since the last full scan
        self._outbox: list[dict] = []  # notifications, sent after the turn's transaction
        self._has_max_queue = False

    # -- the loop ------------------------------------------------------------
    def run(self) -> str:
        """Drive the workflow to its end; returns the workflow's final state."""
        fields = {"state": "RUNNING"} if self.adopt else {}
        q.update_workflow(self.cat, self.wf, supervisor_pid=os.getpid(), supervisor_host=socket.gethostname(),
                          **fields)
        record_supervisor(self.ws, self.wf, os.getpid())
        self._load()
        try:
            while self.pending or self.running:
                self._turn()
                if not (self.pending or self.running):
                    break
                self._wait()
        except KeyboardInterrupt:  # Ctrl-C on 'ws run --wait': the user wants the jobs stopped
            self._interrupted()
            raise
        finally:
            for backend in self.backends.values():
                backend.close()
        return self._finish_workflow()

    def _turn(self) -> None:
        """One poll: backend calls and output commits first, then all state changes in one transaction.

        Output commits take the workspace lock and notifications run commands,
        so neither happens while this process holds the catalog's write lock.
        """
        ended = self._poll()
        commits = {job["id"]: commit_outputs(self.ws, job, st.exit_code)
                   for job, st in ended if st.state == SUCCEEDED}
        with self.cat.write():
            for job, st in ended:
                self._ended(job, st, commits.get(job["id"]))
            self._schedule()
        outbox, self._outbox = self._outbox, []
        for job in outbox:
            self._send_job_notice(job)

    def _interrupted(self) -> None:
        reason = "interrupted: the supervising 'ws run --wait' was stopped"
        for name, jobs in self._running_by_backend().items():
            get_backend(self.ws, self.backends, name).cancel([j["backend_id"] for j in jobs])
        q.set_states(self.cat, [*self.running, *self.pending], "CANCELLED", reason,
                     only_from=q.ACTIVE_STATES, reason=reason)
        q.update_workflow(self.cat, self.wf, state="CANCELLED")

    def _load(self) -> None:
        for job in q.list_jobs(self.cat, workflow=self.wf):
            jid = job["id"]
            self.states[jid] = job["state"]
            self.policies[jid] = job["policies"] or {}
            if job["state"] == "PENDING":
                self.pending[jid] = job
                self._has_max_queue |= bool(self.policies[jid].get("max_queue_s"))
            elif job["state"] in ACTIVE and job["backend_id"]:
                self.running[jid] = job  # adopted after a supervisor restart
            elif self.adopt and job["state"] == "LOST" and job["backend_id"]:
                if self._set(job, "RUNNING", "adopted by a new supervisor", only_from=("LOST",), reason=None,
                             started_ns=job["started_ns"] or time.time_ns()):
                    self.running[jid] = job
            elif job["state"] in ACTIVE:  # claimed but never started
                self._set(job, "PENDING", "supervisor restarted before the job started")
                self.pending[jid] = job

    def _wait(self) -> None:
        now = time.time_ns()
        timeout = MAX_WAIT_S
        for jid, when in self.not_before.items():
            if jid in self.pending:
                timeout = min(timeout, max(0.0, (when - now) / 1e9))
        for job in self.running.values():
            deadline = _deadline_ns(job)
            if deadline:
                timeout = min(timeout, max(0.0, (deadline - now) / 1e9))
        by_backend = self._running_by_backend()
        if not by_backend:
            if timeout > 0:
                time.sleep(timeout)  # only retry backoffs are left to wait for
            return
        name, jobs = next(iter(by_backend.items()))
        get_backend(self.ws, self.backends, name).wait([j["backend_id"] for j in jobs], timeout)

    # -- finished jobs -----------------------------------------------------
    def _running_by_backend(self) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for job in self.running.values():
            groups.setdefault(job["backend"], []).append(job)
        return groups

    def _poll(self) -> list[tuple[dict, object]]:
        """Ask each backend once for all its running jobs; returns the (job, status) pairs that ended."""
        now = time.time_ns()
        ended = []
        for name, jobs in self._running_by_backend().items():
            backend = get_backend(self.ws, self.backends, name)
            statuses = backend.status([j["backend_id"] for j in jobs])  # one call for all of them
            for job in jobs:
                st = statuses.get(job["backend_id"])
                if st is None:
                    continue
                if st.final:
                    ended.append((job, st))
                elif st.state == RUNNING and job["state"] == "QUEUED":
                    self._set(job, "RUNNING", only_from=("QUEUED",), started_ns=st.started_ns or now)
                else:
                    timed_out = self._check_timeout(job, backend, now)
                    if timed_out is not None:
                        ended.append((job, timed_out))
        if time.monotonic() - self._last_sync > MAX_WAIT_S:
            self._sync_external()
        return ended

    def _check_timeout(self, job: dict, backend, now: int):
        deadline = _deadline_ns(job)
        if not deadline or now < deadline:
            return None
        backend.cancel([job["backend_id"]])
        limit = (deadline - (job.get("started_ns") or now)) / 1e9
        return BackendStatus(FAILED, None, job.get("started_ns"), now, f"timed out after {limit:g}s (killed)")

    def _ended(self, job: dict, st, commit: tuple[str | None, str | None] | None) -> None:
        self.running.pop(job["id"], None)
        if st.state == SUCCEEDED:
            commit_id, problem = commit or (None, None)
            if problem:
                self._failed(job, problem, st.exit_code)
                return
            # file times come from the kernel's coarse clock and may trail our start stamp by a tick
            when = {"finished_ns": max(st.finished_ns, job.get("started_ns") or 0)} if st.finished_ns else {}
            if self._set(job, "SUCCEEDED", "outputs committed" if commit_id else None, only_from=ACTIVE,
                         exit_code=st.exit_code, output_commit=commit_id, **when):
                self._notify_job(job)
        elif st.state == CANCELLED:
            if self._set(job, "CANCELLED", st.reason or "cancelled", only_from=ACTIVE, exit_code=st.exit_code,
                         reason=st.reason or "cancelled"):
                self._notify_job(job)
            else:
                self.states[job["id"]] = (q.get_job(self.cat, job["id"]) or {}).get("state", "CANCELLED")
            self._check_blocked = True
        else:
            self._failed(job, st.reason or st.state.lower(), st.exit_code)

    def _failed(self, job: dict, reason: str, exit_code: int | None) -> None:
        """Retry with exponential backoff while attempts remain, else FAILED."""
        pol = self.policies.get(job["id"], {})
        attempts = job.get("attempts") or 1
        if attempts <= int(pol.get("retries") or 0):
            delay = float(pol.get("backoff_s") or 0) * (2 ** (attempts - 1))
            detail = f"attempt {attempts} failed: {reason}; retrying in {delay:g}s"
            if self._set(job, "PENDING", detail, only_from=ACTIVE, exit_code=exit_code, reason=detail,
                         backend_id=None):
                self.pending[job["id"]] = job
                self._order = None
                self.not_before[job["id"]] = time.time_ns() + int(delay * 1e9)
            return
        self._check_blocked = True
        if self._set(job, "FAILED", reason, only_from=ACTIVE, exit_code=exit_code, reason=reason):
            self._notify_job(job)

    # -- starting jobs ---------------------------------------------------------
    def _schedule(self) -> None:
        """Cancel what cannot run any more, then start ready jobs in priority order while cpus last."""
        now = time.time_ns()
        if self._check_blocked or self._has_max_queue:
            self._drop_unrunnable(now)
        if self._order is None:  # stable sort: submission (DAG) order within one priority
            self._order = sorted(self.pending, key=lambda j: -(self.pending[j].get("priority") or 0))
        free = self.max_cpus - sum(self._cpus(j) for j in self.running.values())
        for jid in self._order:
            job = self.pending.get(jid)
            if job is None or self.not_before.get(jid, 0) > now or self._deps_verdict(job) is not None:
                continue
            need = self._cpus(job)
            if need > free:
                break  # strict priority: a big high-priority job is not starved by small ones
            if self._launch(job):
                free -= need
        self._order = [j for j in self._order if j in self.pending]

    def _drop_unrunnable(self, now: int) -> None:
        """One pass in DAG order: dependents of failed jobs are cancelled, jobs queued too long fail."""
        self._check_blocked = False
        for jid, job in list(self.pending.items()):
            verdict = self._deps_verdict(job)
            if verdict is not None and verdict != "wait":
                self.pending.pop(jid)
                self._check_blocked = True  # its own dependents must go too (next turn at the latest)
                if self._set(job, "CANCELLED", verdict, only_from=("PENDING",), reason=verdict):
                    self._notify_job(job)
            else:
                self._queued_too_long(job, now)

    def _cpus(self, job: dict) -> int:
        # a job asking for more than the limit runs alone rather than never
        return min(self.max_cpus, int((job.get("resources") or {}).get("cpus") or 1))

    def _deps_verdict(self, job: dict) -> str | None:
        """None when every dependency is done, "wait" while some run, else why the job cannot run."""
        waiting = False
        for dep in job.get("depends_on") or []:
            state = self.states.get(dep)
            if state is None:  # a job of an earlier workflow (rerun): ask the catalog once
                row = q.get_job(self.cat, dep) or {"state": "LOST", "policies": {}}
                state = self.states[dep] = row["state"]
                self.policies[dep] = row["policies"] or {}
            if state in OK_STATES:
                continue
            if state in ("PENDING",) + ACTIVE:
                waiting = True
            elif not self.policies.get(dep, {}).get("ignore_failures"):
                return f"dependency {dep} ended {state}"
        return "wait" if waiting else None

    def _queued_too_long(self, job: dict, now: int) -> bool:
        limit = self.policies.get(job["id"], {}).get("max_queue_s")
        if not limit or job.get("attempts") or now - job["submitted_ns"] < limit * 1e9:
            return False
        self.pending.pop(job["id"], None)
        reason = f"waited in the queue longer than max_queue ({limit:g}s)"
        self._check_blocked = True
        if self._set(job, "FAILED", reason, only_from=("PENDING",), reason=reason):
            self._notify_job(job)
        return True

    def _launch(self, job: dict) -> bool:
        current = q.get_job(self.cat, job["id"])
        if current is None or current["state"] != "PENDING":  # cancelled from outside meanwhile
            self.pending.pop(job["id"], None)
            self.states[job["id"]] = current["state"] if current else "LOST"
            return False
        backend = get_backend(self.ws, self.backends, job["backend"])
        attempts = (current["attempts"] or 0) + 1
        req = _request(self.ws, job, attempts)
        started = time.time_ns()  # before the process exists: a fast job may end before we write RUNNING
        try:
            bid = backend.submit(req)
        except Exception as exc:  # a backend refusing one job must not stop the others
            job["attempts"] = attempts
            self.pending.pop(job["id"], None)
            self._set(job, "QUEUED", f"submit failed: {exc}", only_from=("PENDING",), attempts=attempts)
            self._failed(job, f"backend {job['backend']} refused the job: {exc}", None)
            return False
        state, when = ("RUNNING", {"started_ns": started}) if backend.starts_at_once else ("QUEUED", {})
        # we hold the catalog's write lock since the read above, so nobody cancelled it meanwhile
        self._set(job, state, f"attempt {attempts} on {job['backend']} as {bid}", backend_id=bid,
                  attempts=attempts, reason=None, **when)
        self.pending.pop(job["id"], None)
        job.update(backend_id=bid, attempts=attempts, started_ns=started)
        self.running[job["id"]] = job
        self._notify_job(job)  # only if the spec asked for "started"
        return True

    # -- bookkeeping -------------------------------------------------------------
    def _set(self, job: dict, state: str, detail: str | None = None, only_from=None, **fields) -> bool:
        changed = q.set_state(self.cat, job["id"], state, detail, only_from=only_from, **fields)
        if changed:
            self.states[job["id"]] = state
            job["state"] = state
            job.update({k: v for k, v in fields.items()})
        return changed

    def _sync_external(self) -> None:
        """Drop pending jobs someone cancelled with ``ws jobs cancel``."""
        self._last_sync = time.monotonic()
        if not self.pending:
            return
        for job in q.jobs_in_states(self.cat, ("CANCELLED", "FAILED", "LOST"), workflow=self.wf):
            self.states[job["id"]] = job["state"]
            self.pending.pop(job["id"], None)

    def _notify_job(self, job: dict) -> None:
        cfg = self.notify.get(job["name"])
        if cfg is not None and notify_mod.wanted(cfg, job["state"]):
            self._outbox.append(job)

    def _send_job_notice(self, job: dict) -> None:
        row = q.get_job(self.cat, job["id"]) or job
        self._report(notify_mod.send(self.notify[job["name"]], notify_mod.job_payload(row), str(self.ws.root)))

    def _finish_workflow(self) -> str:
        counts = q.count_by_state(self.cat, workflow=self.wf)
        bad = {s: n for s, n in counts.items() if s not in OK_STATES}
        state = "SUCCEEDED" if not bad else ("FAILED" if set(bad) - {"CANCELLED"} else "CANCELLED")
        q.update_workflow(self.cat, self.wf, state=state)
        payload = {"kind": "workflow", "id": self.wf, "state": state, "counts": counts}
        sent = set()
        for cfg in self.notify.values():
            sig = (cfg.command, cfg.url)
            if sig not in sent and notify_mod.wanted(cfg, state):
                sent.add(sig)
                self._report(notify_mod.send(cfg, payload, str(self.ws.root)))
        return state

    def _report(self, problems: list[str]) -> None:
        notify_mod.log_problems(self._log_path, problems)  # a detached supervisor has no terminal


def _deadline_ns(job: dict) -> int | None:
    pol = job.get("policies") or {}
    limit = pol.get("timeout_s") or (job.get("resources") or {}).get("walltime_s")
    start = job.get("started_ns")
    if not limit or not start or job.get("state") != "RUNNING":
        return None
    return start + int(float(limit) * 1e9)


def _request(ws, job: dict, attempt: int) -> SubmitRequest:
    res = job.get("resources") or {}
    workdir = os.path.normpath(os.path.join(ws.root, job.get("workdir") or "."))
    env = {**(job.get("env") or {}), "WS_WORKSPACE": str(ws.root), "WS_JOB_NAME": job["name"]}
    return SubmitRequest(job_id=job["id"], name=job["name"], command=job["command"], workdir=workdir,
                         log_dir=job.get("log_dir") or os.path.join(ws.layout.jobs_dir, job["id"]), env=env,
                         cpus=int(res.get("cpus") or 1), memory_mb=res.get("memory_mb"),
                         walltime_s=res.get("walltime_s"), gpus=int(res.get("gpus") or 0), attempt=attempt)


def supervise(ws, workflow_id: str, cpus: int | None = None, adopt: bool = False) -> str:
    """Run a workflow's supervisor loop in this process; returns the workflow's final state.

    With ``adopt``, LOST jobs of the workflow that have a backend id are taken
    over again (their status is polled like any running job).
    """
    return Supervisor(ws, workflow_id, cpus, adopt).run()
