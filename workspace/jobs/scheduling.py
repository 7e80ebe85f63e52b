"""Which pending jobs of a workflow start, wait, or can never run: the supervisor's decisions.

:class:`Scheduling` holds no I/O of its own beyond the catalog writes of state
changes (through the supervisor's ``_set``, inside the turn's transaction);
starting the chosen jobs on a backend is the supervisor's business, after the
transaction.
"""

from __future__ import annotations

import time

from catalog import jobs as q

ACTIVE = ("QUEUED", "RUNNING")
OK_STATES = ("SUCCEEDED", "SKIPPED")


class Scheduling:
    """Priority order, cpu budget, dependencies and queue limits over the supervisor's job tables.

    Expects from its subclass: ``cat``, ``max_cpus``, the ``pending``/``running``/
    ``states``/``policies``/``not_before`` tables, ``_order``, ``_check_blocked``,
    ``_has_max_queue``, and the methods ``_set`` and ``_notify_job``; it may
    override ``_uses_local_cpus`` (jobs on a cluster do not count against ``max_cpus``).
    """

    def _schedule(self) -> list[dict]:
        """Cancel what cannot run any more, then pick ready jobs in priority order while cpus last.

        Runs inside the turn's transaction, so it only decides: :meth:`_launch`
        starts the jobs it returns, after the transaction.
        """
        now = time.time_ns()
        if self._check_blocked or self._has_max_queue:
            self._drop_unrunnable(now)
        if self._order is None:  # stable sort: submission (DAG) order within one priority
            self._order = sorted(self.pending, key=lambda j: -(self.pending[j].get("priority") or 0))
        free = self.max_cpus - sum(self._cpus(j) for j in self.running.values())
        ready = []
        for jid in self._order:
            job = self.pending.get(jid)
            if job is None or self.not_before.get(jid, 0) > now or self._deps_verdict(job) is not None:
                continue
            need = self._cpus(job)
            if need > free:
                break  # strict priority: a big high-priority job is not starved by small ones
            ready.append(job)
            free -= need
        return ready

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
        if not self._uses_local_cpus(job):
            return 0  # its backend has a queue of its own (Slurm): the cluster decides when it runs
        # a job asking for more than the limit runs alone rather than never
        return min(self.max_cpus, int((job.get("resources") or {}).get("cpus") or 1))

    def _uses_local_cpus(self, job: dict) -> bool:
        return True

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
