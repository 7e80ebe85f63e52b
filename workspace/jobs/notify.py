"""Notifications when a job or a workflow ends: a shell command and/or a POSTed JSON body.

A notification never fails the job, and never holds up the supervisor: a
:class:`Notifier` sends them on a small thread pool, each bounded by a timeout,
and records every problem as an event on the job (``ws jobs show``) as well as
in the supervisor's log. The command gets the JSON payload on stdin and
``WS_JOB_*`` variables; the URL gets the same JSON via ``requests.post``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor

from catalog import jobs as q
from catalog.db import Catalog
from sync.urls import redact

COMMAND_TIMEOUT_S = 60.0
URL_TIMEOUT_S = 10.0

# which ``notify.on`` words a final state matches
_EVENTS = {
    "SUCCEEDED": {"succeeded", "finished"},
    "FAILED": {"failed", "finished"},
    "CANCELLED": {"cancelled", "finished"},
    "LOST": {"lost", "finished"},
    "OUT_OF_MEMORY": {"failed", "finished"},
    "RUNNING": {"started"},
}


def wanted(notify, state: str) -> bool:
    """Whether a notify config asks to hear about a job/workflow reaching ``state``."""
    if notify is None:
        return False
    return bool(set(notify.on) & _EVENTS.get(state, set()))


def job_payload(job: dict) -> dict:
    """The JSON body for a job event (a subset of its catalog row)."""
    keys = ("id", "workflow_id", "name", "state", "backend", "backend_id", "params", "exit_code",
            "attempts", "reason", "output_commit", "log_dir")
    body = {"kind": "job", **{k: job.get(k) for k in keys}}
    return body


def send(notify, payload: dict, cwd: str) -> list[str]:
    """Run the command and/or POST to the URL; returns problems (empty when all went well)."""
    problems = []
    if notify.command:
        problems += _run_command(notify.command, payload, cwd)
    if notify.url:
        problems += _post(notify.url, payload)
    return problems


def _env_for(payload: dict) -> dict[str, str]:
    kind = payload.get("kind", "job")
    env = dict(os.environ)
    env["WS_EVENT_KIND"] = kind
    env["WS_JOB_STATE"] = str(payload.get("state") or "")
    if kind == "job":
        env["WS_JOB_ID"] = str(payload.get("id") or "")
        env["WS_JOB_NAME"] = str(payload.get("name") or "")
        env["WS_JOB_EXIT_CODE"] = "" if payload.get("exit_code") is None else str(payload["exit_code"])
        env["WS_WORKFLOW_ID"] = str(payload.get("workflow_id") or "")
    else:
        env["WS_WORKFLOW_ID"] = str(payload.get("id") or "")
    return env


def _run_command(command: str, payload: dict, cwd: str) -> list[str]:
    try:
        # its own session, so that a timeout kills whatever it started too (else their pipes keep us waiting)
        proc = subprocess.Popen(command, shell=True, cwd=cwd, text=True, env=_env_for(payload),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        return [f"notify command could not start: {exc}"]
    try:
        _, stderr = proc.communicate(json.dumps(payload, default=str), timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return [f"notify command timed out after {COMMAND_TIMEOUT_S:g}s: {command}"]
    if proc.returncode != 0:
        return [f"notify command exited {proc.returncode}: {stderr.strip()[:200]}"]
    return []


def _post(url: str, payload: dict) -> list[str]:
    import requests  # only when a URL is configured: requests costs ~0.1 s to import

    try:
        resp = requests.post(url, data=json.dumps(payload, default=str), timeout=URL_TIMEOUT_S,
                             headers={"Content-Type": "application/json"})
    except requests.RequestException as exc:
        return [redact(f"notify POST to {url} failed: {exc}")]  # recorded as an event: no userinfo
    if resp.status_code >= 400:
        return [f"notify POST to {redact(url)} answered {resp.status_code}"]
    return []


def save_settings(path: str, settings: dict) -> None:
    """Write spec name -> Notify (as dicts) for a supervisor in another process."""
    from dataclasses import asdict

    with open(path, "w") as f:
        json.dump({name: asdict(cfg) for name, cfg in settings.items()}, f)


def load_settings(path: str) -> dict:
    """Spec name -> Notify, as :func:`save_settings` wrote them (empty when there is no file).

    A file that is not valid JSON raises DamagedObjectError: silently notifying
    nobody would hide the problem until someone misses a message.
    """
    from workspace.errors import DamagedObjectError
    from workspace.jobs.spec import Notify

    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise DamagedObjectError(f"{path}: notification settings are damaged ({exc}); "
                                 "rerun the workflow to write them again") from None
    return {name: Notify(**cfg) for name, cfg in data.items()}


class Notifier:
    """Sends notifications off the supervisor's loop and records what went wrong on the jobs.

    Each destination (a command or URL) gets its own sender thread: its
    notifications arrive in order (a job's "started" before its "finished",
    the workflow's last), and a slow one delays only itself, never the loop
    or another destination. ``job``/``workflow`` return at once;
    :meth:`close` waits for what is in flight (each send is bounded by its timeout).
    """

    def __init__(self, cat: Catalog, cwd: str, log_path: str):
        self.cat = cat
        self.cwd = cwd
        self.log_path = log_path
        self._lanes: dict[tuple, ThreadPoolExecutor] = {}
        self._futures: list[Future] = []

    def job(self, notify, row: dict) -> None:
        """Tell ``notify`` about a job (its catalog row as it is now)."""
        self._submit(notify, job_payload(row), [row["id"]], "notification")

    def workflow(self, notify, payload: dict, job_ids: list[str]) -> None:
        """Tell ``notify`` how a workflow ended; a failure is recorded on each of its jobs."""
        self._submit(notify, payload, job_ids, "workflow notification")

    def _submit(self, notify, payload: dict, job_ids: list[str], what: str) -> None:
        key = (notify.command, notify.url)
        lane = self._lanes.get(key)
        if lane is None:  # most workflows notify nobody: no threads for them
            lane = self._lanes[key] = ThreadPoolExecutor(1, thread_name_prefix="ws-notify")
        # finished sends are forgotten, unless they raised: close() re-raises that
        self._futures = [f for f in self._futures if not f.done() or f.exception() is not None]
        self._futures.append(lane.submit(self._send, notify, payload, job_ids, what))

    def _send(self, notify, payload: dict, job_ids: list[str], what: str) -> None:
        problems = send(notify, payload, self.cwd)
        if not problems:
            return
        log_problems(self.log_path, problems)  # a detached supervisor has no terminal
        for p in problems:
            q.add_event(self.cat, job_ids, f"{what} failed: {p}")

    def close(self) -> None:
        """Wait for the notifications in flight; raise what a sender raised (a bug, not a failed send)."""
        for lane in self._lanes.values():
            lane.shutdown(wait=True)
        self._lanes.clear()
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()


def log_problems(path: str, problems: list[str]) -> None:
    """Append notification problems, time-stamped, to a log file."""
    if not problems:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        for p in problems:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {p}\n")
