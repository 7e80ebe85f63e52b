"""Notifications when a job or a workflow ends: a shell command and/or a POSTed JSON body.

A notification never fails the job: problems come back as strings that the
supervisor records in its log. The command gets the JSON payload on stdin and
``WS_JOB_*`` variables; the URL gets the same JSON via ``requests.post``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

COMMAND_TIMEOUT_S = 60.0
URL_TIMEOUT_S = 10.0

# which ``notify.on`` words a final state matches
_EVENTS = {
    "SUCCEEDED": {"succeeded", "finished"},
    "FAILED": {"failed", "finished"},
    "CANCELLED": {"cancelled", "finished"},
    "LOST": {"lost", "finished"},
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
        proc = subprocess.run(command, shell=True, cwd=cwd, input=json.dumps(payload, default=str), text=True,
                              env=_env_for(payload), capture_output=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return [f"notify command timed out after {COMMAND_TIMEOUT_S:g}s: {command}"]
    except OSError as exc:
        return [f"notify command could not start: {exc}"]
    if proc.returncode != 0:
        return [f"notify command exited {proc.returncode}: {proc.stderr.strip()[:200]}"]
    return []


def _post(url: str, payload: dict) -> list[str]:
    import requests  # only when a URL is configured: requests costs ~0.1 s to import

    try:
        resp = requests.post(url, data=json.dumps(payload, default=str), timeout=URL_TIMEOUT_S,
                             headers={"Content-Type": "application/json"})
    except requests.RequestException as exc:
        return [f"notify POST to {url} failed: {exc}"]
    if resp.status_code >= 400:
        return [f"notify POST to {url} answered {resp.status_code}"]
    return []


def save_settings(path: str, settings: dict) -> None:
    """Write spec name -> Notify (as dicts) for a supervisor in another process."""
    from dataclasses import asdict

    with open(path, "w") as f:
        json.dump({name: asdict(cfg) for name, cfg in settings.items()}, f)


def load_settings(path: str) -> dict:
    """Spec name -> Notify, as :func:`save_settings` wrote them (empty when there is no file)."""
    from workspace.jobs.spec import Notify

    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return {}
    return {name: Notify(**cfg) for name, cfg in data.items()}


def log_problems(path: str, problems: list[str]) -> None:
    """Append notification problems, time-stamped, to a log file."""
    if not problems:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        for p in problems:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {p}\n")
