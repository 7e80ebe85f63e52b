"""The supervisor: drives one workflow's jobs on their backends until every job is final.

It runs either inside ``ws run --wait`` or detached as ``ws jobs supervise WF``.
Each turn of its loop asks every backend for the status of all its running
jobs in one call, finishes what ended (commit outputs, retry or fail, notify),
fails or cancels what cannot run any more, and starts ready jobs in priority
order while the sum of their cpus stays within ``[jobs] max_cpus``. Between
turns it waits on the backend (the local backend wakes up as soon as a child
exits), so scheduling costs milliseconds, not a polling interval.

No backend call and no notification happens inside a catalog write
transaction: a slow cluster or webhook must neither keep other ``ws``
processes off the catalog nor hold up this loop. Starting a job is three
steps (see :mod:`workspace.jobs.launch`): record the intent, submit, record
the backend id; notifications go to a thread pool (:class:`Notifier`).
"""

from __future__ import annotations

import os
import socket
import time

from catalog import jobs as q
from sync.compute.base import (CANCELLED, FAILED, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, BackendStatus,
                               BackendUnavailable)
from sync.errors import BackendError
from workspace.faults import checkpoint
from workspace.jobs import notify as notify_mod
from workspace.jobs.backend_health import BackendHealth
from workspace.jobs.launch import find_started, get_backend, submit_request
from workspace.jobs.liveness import record_supervisor
from workspace.jobs.outputs import collect_outputs
from workspace.jobs.scheduling import ACTIVE, OK_STATES, Scheduling
from workspace.repo import Repo

MAX_WAIT_S = 1.0  # longest the loop sleeps without looking at the catalog (external cancels)


def max_cpus(repo: Repo) -> int:
    """The concurrency limit: config ``[jobs] max_cpus``, default the machine's cpu count."""
    section = repo.config.get("jobs", {}) if isinstance(repo.config.get("jobs"), dict) else {}
    value = section.get("max_cpus") or os.cpu_count() or 1
    return max(1, int(value))


def workflow_dir(repo: Repo, workflow_id: str) -> str:
    """Where a workflow keeps its supervisor log and notify settings."""
    return os.path.join(repo.layout.jobs_dir, f"wf-{workflow_id}")


class Supervisor(Scheduling):
    """The scheduling loop of one workflow (see the module docstring)."""

    def __init__(self, repo: Repo, workflow_id: str, cpus: int | None = None, adopt: bool = False):
        self.repo = repo
        self.adopt = adopt  # take over LOST jobs that still run (after 'ws jobs refresh')
        self.cat = repo.catalog
        self.wf = workflow_id
        self.max_cpus = cpus or max_cpus(repo)
        self.backends: dict = {}
        self.pending: dict[str, dict] = {}
        self.running: dict[str, dict] = {}
        self.claimed: dict[str, dict] = {}  # intent recorded, backend id not yet (only inside _launch)
        self.states: dict[str, str] = {}
        self.job_ids: list[str] = []  # this workflow's jobs (states also holds dependencies of earlier ones)
        self.policies: dict[str, dict] = {}
        self.not_before: dict[str, int] = {}
        self.notify = notify_mod.load_settings(os.path.join(workflow_dir(repo, workflow_id), "notify.json"))
        self.notifier = notify_mod.Notifier(self.cat, str(repo.root),
                                            os.path.join(workflow_dir(repo, workflow_id), "supervisor.log"))
        self._last_sync = time.monotonic()
        self._order: list[str] | None = None  # pending ids by priority; rebuilt when jobs come back
        self._check_blocked = True  # a dependency ended badly since the last full scan
        self._outbox: list[dict] = []  # jobs to notify about, handed to the notifier after the turn's transaction
        self._has_max_queue = False
        self.health = BackendHealth(self.cat, self.notifier.log_path)  # backoff for unreachable backends

    # -- the loop ------------------------------------------------------------
    def run(self) -> str:
        """Drive the workflow to its end; returns the workflow's final state."""
        fields = {"state": "RUNNING"} if self.adopt else {}
        q.update_workflow(self.cat, self.wf, supervisor_pid=os.getpid(), supervisor_host=socket.gethostname(),
                          **fields)
        record_supervisor(self.repo, self.wf, os.getpid())
        try:
            self._load()
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
        state = self._finish_workflow()
        self.notifier.close()
        return state

    def _turn(self) -> None:
        """One poll: backend calls and output commits, then the state changes in one transaction, then starts.

        Output commits take the workspace lock, submits talk to the backend and
        notifications run commands: none of them happens while this process
        holds the catalog's write lock.
        """
        ended = self._poll()
        commits = {job["id"]: collect_outputs(self.repo, self.backends, job, st.exit_code)
                   for job, st in ended if st.state == SUCCEEDED}
        with self.cat.write():
            for job, st in ended:
                self._ended(job, st, commits.get(job["id"]))
            ready = self._schedule()
        self._launch(ready)
        outbox, self._outbox = self._outbox, []
        for job in outbox:
            self.notifier.job(self.notify[job["name"]], q.get_job(self.cat, job["id"]) or job)

    def _interrupted(self) -> None:
        reason = "interrupted: the supervising 'ws run --wait' was stopped"
        for job in self.claimed.values():  # Ctrl-C came while they were being submitted
            find_started(self.repo, self.backends, job)
        self.running.update({jid: j for jid, j in self.claimed.items() if j.get("backend_id")})
        for name, jobs in self._running_by_backend().items():
            get_backend(self.repo, self.backends, name).cancel([j["backend_id"] for j in jobs])
        q.set_states(self.cat, [*self.running, *self.pending, *self.claimed], "CANCELLED", reason,
                     only_from=q.ACTIVE_STATES, reason=reason)
        q.update_workflow(self.cat, self.wf, state="CANCELLED")

    def _load(self) -> None:
        for job in q.list_jobs(self.cat, workflow=self.wf):
            jid = job["id"]
            self.states[jid] = job["state"]
            self.policies[jid] = job["policies"] or {}
            self.job_ids.append(jid)
            if job["state"] == "PENDING":
                self.pending[jid] = job
                self._has_max_queue |= bool(self.policies[jid].get("max_queue_s"))
            elif job["state"] in ACTIVE or (self.adopt and job["state"] == "LOST"):
                self._resume(job)

    def _resume(self, job: dict) -> None:
        """Take over a job an earlier supervisor claimed or started (after a restart, or for 'ws jobs refresh').

        A job claimed for an attempt whose backend id was never recorded is
        looked up on its backend: found, it is followed like any running job;
        not found, it never started and runs (as the same attempt) again.
        """
        had_id = bool(job["backend_id"])
        bid = find_started(self.repo, self.backends, job)
        if not bid:
            if job["state"] in ACTIVE:
                self._set(job, "PENDING", "supervisor restarted before the job started", only_from=ACTIVE,
                          attempts=max(0, (job["attempts"] or 0) - 1))
                self.pending[job["id"]] = job
            return  # a LOST job that never started stays LOST ('ws jobs rerun --failed' runs it)
        if job["state"] == "LOST" or not had_id:
            at_once = get_backend(self.repo, self.backends, job["backend"]).starts_at_once
            state = "RUNNING" if at_once or job["state"] == "RUNNING" else "QUEUED"
            when = {"started_ns": job["started_ns"] or time.time_ns()} if state == "RUNNING" else {}
            detail = "adopted by a new supervisor" if had_id else \
                f"adopted by a new supervisor: attempt {job['attempts']} found on {job['backend']} as {bid}"
            if not self._set(job, state, detail, only_from=(job["state"],), reason=None, backend_id=bid, **when):
                return
        self.running[job["id"]] = job

    def _wait(self) -> None:
        now = time.time_ns()
        timeout = MAX_WAIT_S
        for jid, when in self.not_before.items():
            if jid in self.pending:
                timeout = min(timeout, max(0.0, (when - now) / 1e9))
        for job in self.running.values():
            deadline = _deadline_ns(job, self._enforces_walltime(job))
            if deadline:
                timeout = min(timeout, max(0.0, (deadline - now) / 1e9))
        by_backend = self._running_by_backend()
        if not by_backend:
            if timeout > 0:
                time.sleep(timeout)  # only retry backoffs are left to wait for
            return
        name, jobs = next(iter(by_backend.items()))
        get_backend(self.repo, self.backends, name).wait([j["backend_id"] for j in jobs], timeout)

    # -- finished jobs -----------------------------------------------------
    def _running_by_backend(self) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for job in self.running.values():
            groups.setdefault(job["backend"], []).append(job)
        return groups

    def _poll(self) -> list[tuple[dict, object]]:
        """Ask each backend once for all its running jobs; returns the (job, status) pairs that ended.

        The state changes of one poll (started, a new pending reason) are one transaction.
        """
        now = time.time_ns()
        ended = []
        for name, jobs in self._running_by_backend().items():
            backend = get_backend(self.repo, self.backends, name)
            statuses = self.health.status(name, backend, jobs)  # one call for all of them; {} while unreachable
            waiting = []
            with self.cat.write():
                for job in jobs:
                    st = statuses.get(job["backend_id"])
                    if st is None:
                        continue
                    if st.final:
                        ended.append((job, st))
                    elif st.state == RUNNING and job["state"] == "QUEUED":
                        self._set(job, "RUNNING", only_from=("QUEUED",), started_ns=st.started_ns or now,
                                  reason=st.reason)  # no longer why it waited
                    else:
                        if st.state == QUEUED and job["state"] == "QUEUED" and st.reason != job.get("reason"):
                            self._set(job, "QUEUED", st.reason or "waiting in the backend's queue",
                                      only_from=("QUEUED",), reason=st.reason)  # why it waits: 'ws jobs show'
                        waiting.append(job)
            for job in waiting:  # a cancel is a backend call: after the transaction
                timed_out = self._check_timeout(job, backend, now)
                if timed_out is not None:
                    ended.append((job, timed_out))
        if time.monotonic() - self._last_sync > MAX_WAIT_S:
            self._sync_external()
        return ended

    def _enforces_walltime(self, job: dict) -> bool:
        return get_backend(self.repo, self.backends, job["backend"]).enforces_walltime

    def _uses_local_cpus(self, job: dict) -> bool:
        """Whether a job counts against ``max_cpus``: not when its backend has a queue of its own (Slurm)."""
        return get_backend(self.repo, self.backends, job["backend"]).starts_at_once

    def _check_timeout(self, job: dict, backend, now: int):
        deadline = _deadline_ns(job, backend.enforces_walltime)
        if not deadline or now < deadline:
            return None
        backend.cancel([job["backend_id"]])
        limit = (deadline - (job.get("started_ns") or now)) / 1e9
        return BackendStatus(FAILED, None, job.get("started_ns"), now, f"timed out after {limit:g}s (killed)")

    def _ended(self, job: dict, st, commit: tuple[str | None, str | None] | None) -> None:
        self.running.pop(job["id"], None)
        if st.started_ns and not job.get("started_ns"):  # it ran between two polls: the backend knows since when
            q.update_job(self.cat, job["id"], started_ns=st.started_ns)
            job["started_ns"] = st.started_ns
        if st.state == SUCCEEDED:
            commit_id, problem = commit or (None, None)
            if problem:
                self._failed(job, problem, st.exit_code)
                return
            # file times come from the kernel's coarse clock and may trail our start stamp by a tick
            when = {"finished_ns": max(st.finished_ns, job.get("started_ns") or 0)} if st.finished_ns else {}
            if self._set(job, "SUCCEEDED", "outputs committed" if commit_id else None, only_from=ACTIVE,
                         exit_code=st.exit_code, output_commit=commit_id, reason=None, **when):
                self._notify_job(job)
        elif st.state == CANCELLED:
            if self._set(job, "CANCELLED", st.reason or "cancelled", only_from=ACTIVE, exit_code=st.exit_code,
                         reason=st.reason or "cancelled"):
                self._notify_job(job)
            else:
                self.states[job["id"]] = (q.get_job(self.cat, job["id"]) or {}).get("state", "CANCELLED")
            self._check_blocked = True
        else:
            final = "OUT_OF_MEMORY" if st.state == OUT_OF_MEMORY else "FAILED"
            self._failed(job, st.reason or st.state.lower(), st.exit_code, final)

    def _failed(self, job: dict, reason: str, exit_code: int | None, final: str = "FAILED") -> None:
        """Retry with exponential backoff while attempts remain, else ``final`` (FAILED or OUT_OF_MEMORY)."""
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
        if self._set(job, final, reason, only_from=ACTIVE, exit_code=exit_code, reason=reason):
            self._notify_job(job)

    # -- starting jobs ----------------------------------------------------------
    def _launch(self, ready: list[dict]) -> None:
        """Start jobs in three steps: record the intent, submit (no transaction), record the backend ids.

        A supervisor killed between a submit and its record leaves a started
        job whose row has an attempt but no backend id; a restarted supervisor,
        ``ws jobs refresh`` and ``ws jobs cancel`` find it on the backend
        (:func:`workspace.jobs.launch.find_started`).
        """
        if not ready:
            return
        self._claim(ready)
        checkpoint("jobs:intent")
        started, refused = [], []
        by_backend: dict[str, list[dict]] = {}
        for job in self.claimed.values():
            by_backend.setdefault(job["backend"], []).append(job)
        for name, jobs in by_backend.items():  # one batch per backend: a sweep can become one Slurm array
            backend = get_backend(self.repo, self.backends, name)
            t0 = time.time_ns()  # before the processes exist: a fast job may end before we record it
            try:
                results = backend.submit_many([submit_request(self.repo, j, j["attempts"]) for j in jobs])
            except BackendError as exc:
                results = [exc] * len(jobs)
            checkpoint("jobs:submitted")
            if any(not isinstance(r, BackendUnavailable) for r in results):
                self.health.reachable(name)
            for job, result in zip(jobs, results):  # a backend refusing one job must not stop the others
                if isinstance(result, BackendError):
                    refused.append((job, result))
                else:
                    started.append((job, result, t0))
        for job, bid in self._record_started(started, refused):
            get_backend(self.repo, self.backends, job["backend"]).cancel([bid])
        self._order = [j for j in self._order if j in self.pending] if self._order is not None else None

    def _claim(self, ready: list[dict]) -> None:
        """Record the intent to start each job (QUEUED, next attempt, no backend id) in one short transaction."""
        with self.cat.write():
            for job in ready:
                self.pending.pop(job["id"], None)
                attempts = (job.get("attempts") or 0) + 1
                if self._set(job, "QUEUED", f"submitting attempt {attempts} to {job['backend']}",
                             only_from=("PENDING",), attempts=attempts, backend_id=None, reason=None):
                    self.claimed[job["id"]] = job
                else:  # cancelled from outside meanwhile
                    self.states[job["id"]] = (q.get_job(self.cat, job["id"]) or {}).get("state", "LOST")

    def _record_started(self, started: list, refused: list) -> list[tuple[dict, str]]:
        """Record backend ids (and refusals); returns the (job, id) pairs cancelled while being submitted."""
        stray = []
        with self.cat.write():
            for job, bid, t0 in started:
                at_once = get_backend(self.repo, self.backends, job["backend"]).starts_at_once
                state, when = ("RUNNING", {"started_ns": t0}) if at_once else ("QUEUED", {})
                if self._set(job, state, f"attempt {job['attempts']} on {job['backend']} as {bid}",
                             only_from=("QUEUED",), backend_id=bid, **when):
                    self.running[job["id"]] = job
                    self._notify_job(job)  # only if the spec asked for "started"
                else:  # 'ws jobs cancel' came while it was being submitted: stop it, keep its id
                    q.record_backend_id(self.cat, job["id"], job["attempts"], bid)
                    self.states[job["id"]] = (q.get_job(self.cat, job["id"]) or {}).get("state", "CANCELLED")
                    stray.append((job, bid))
            delays: dict[str, float] = {}  # one backoff step per unreachable backend, not per job
            for job, exc in refused:
                if isinstance(exc, BackendUnavailable):
                    if job["backend"] not in delays:
                        delays[job["backend"]] = self.health.next_delay(job["backend"])
                    self._unclaim(job, exc, delays[job["backend"]])
                else:
                    self._failed(job, f"backend {job['backend']} refused the job: {exc}", None)
        self.claimed.clear()
        return stray

    def _unclaim(self, job: dict, exc: BackendError, delay: float) -> None:
        """Back to PENDING, the attempt not used up: the backend was unreachable, nothing was submitted."""
        detail = f"backend {job['backend']} unreachable: {exc}; trying again in {delay:g}s"
        if self._set(job, "PENDING", detail, only_from=("QUEUED",), attempts=max(0, job["attempts"] - 1),
                     backend_id=None, reason=detail):
            self.pending[job["id"]] = job
            self._order = None
            self.not_before[job["id"]] = time.time_ns() + int(delay * 1e9)

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
                self.notifier.workflow(cfg, payload, self.job_ids)
        return state


def _deadline_ns(job: dict, walltime_enforced: bool = False) -> int | None:
    """When the supervisor stops a running job: its timeout, else its walltime unless the backend enforces that."""
    pol = job.get("policies") or {}
    walltime = None if walltime_enforced else (job.get("resources") or {}).get("walltime_s")
    limit = pol.get("timeout_s") or walltime
    start = job.get("started_ns")
    if not limit or not start or job.get("state") != "RUNNING":
        return None
    return start + int(float(limit) * 1e9)


def supervise(repo: Repo, workflow_id: str, cpus: int | None = None, adopt: bool = False) -> str:
    """Run a workflow's supervisor loop in this process; returns the workflow's final state.

    With ``adopt``, LOST jobs of the workflow that have a backend id are taken
    over again (their status is polled like any running job).
    """
    return Supervisor(repo, workflow_id, cpus, adopt).run()
