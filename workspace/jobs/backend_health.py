"""Unreachable backends: the supervisor asks them again after an exponential backoff, and no job is lost.

A backend whose status query fails (a Slurm controller that is down, a
command that timed out) keeps its jobs in their last known state; the
supervisor logs the error and records it on the jobs once per outage, and asks
again after 1, 2, 4... seconds (at most :data:`MAX_BACKOFF_S`). A submit that
met an unreachable backend puts its jobs back to PENDING for the same delay.
"""

from __future__ import annotations

import time

from catalog import jobs as q
from sync.errors import BackendError
from workspace.jobs.notify import log_problems

MAX_BACKOFF_S = 60.0
RECORD_OK_EVERY_S = 5.0  # how often a healthy backend's answer is written to the catalog (ws jobs: "stale since")


class BackendHealth:
    """Failures in a row and the next allowed call, per backend name."""

    def __init__(self, cat, log_path: str):
        self.cat = cat
        self.log_path = log_path
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._recorded: dict[str, float] = {}  # when a backend's last answer was written to backend_polls

    def next_delay(self, name: str) -> float:
        """Count one more failure of ``name``; the seconds to wait before using it again."""
        failures = self._failures.get(name, 0)
        self._failures[name] = failures + 1
        delay = min(MAX_BACKOFF_S, 2.0 ** failures)
        self._retry_at[name] = time.monotonic() + delay
        return delay

    def reachable(self, name: str) -> None:
        """``name`` answered (a submit went through): the next failure starts the backoff afresh."""
        if self._failures.pop(name, 0):
            self._retry_at.pop(name, None)
            log_problems(self.log_path, [f"backend {name} answers again"])

    def status(self, name: str, backend, jobs: list[dict]) -> dict:
        """``backend.status`` for ``jobs`` (one call), or {} while the backend is unreachable or backing off."""
        if time.monotonic() < self._retry_at.get(name, 0.0):
            return {}
        try:
            statuses = backend.status([j["backend_id"] for j in jobs])
        except BackendError as exc:
            first = not self._failures.get(name)
            delay = self.next_delay(name)
            if first:  # once per outage, in the log and on the jobs; their states stay as they were
                message = (f"backend {name}: status failed, its jobs keep their last known state: {exc}; "
                           f"asking again with backoff (first in {delay:g}s)")
                log_problems(self.log_path, [message])
                q.add_event(self.cat, [j["id"] for j in jobs], message)
                q.record_poll(self.cat, name, error=str(exc))  # 'ws jobs' marks its jobs stale
                self._recorded.pop(name, None)
            return {}
        self.reachable(name)
        now = time.monotonic()
        if now - self._recorded.get(name, -RECORD_OK_EVERY_S) >= RECORD_OK_EVERY_S:
            q.record_poll(self.cat, name)  # ends a recorded outage at once (the first answer after one)
            self._recorded[name] = now
        return statuses
