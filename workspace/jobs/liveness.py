"""Lost-job detection: no job stays RUNNING forever after its supervisor died.

Cheap enough to run before every ``ws jobs`` answer: one indexed query for
unfinished jobs and, per workflow, a check whether its recorded supervisor
process still lives on this host. No backend is contacted; ``ws jobs refresh``
asks the backends what really became of a LOST job.
"""

from __future__ import annotations

import os
import socket
import time

from catalog import jobs as q

# a workflow recorded without a supervisor pid is being started; after this long, its starter died
from workspace.repo import Repo
START_GRACE_NS = 60 * 10**9


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_file(repo: Repo, workflow_id: str) -> str:
    return os.path.join(repo.layout.jobs_dir, f"wf-{workflow_id}", "supervisor.pid")


def record_supervisor(repo: Repo, workflow_id: str, pid: int) -> None:
    """Write a supervisor's pid and kernel start time, so that a reused pid is not taken for it."""
    path = _pid_file(repo, workflow_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{pid}"
    with open(tmp, "w") as f:
        f.write(f"{pid} {start_ticks(pid)}\n")
    os.replace(tmp, path)


def _same_process(repo: Repo, wf_id: str, pid: int) -> bool:
    """False when the supervisor's recorded start time shows its pid now belongs to another process."""
    try:
        with open(_pid_file(repo, wf_id)) as f:
            rec_pid, rec_ticks = f.read().split()
    except (OSError, ValueError):
        return True  # nothing recorded: trust the pid
    if int(rec_pid) != pid or rec_ticks == "None":
        return True
    return start_ticks(pid) == int(rec_ticks)


def _supervisor_dead(wf: dict | None, host: str, now: int) -> str | None:
    """Why this workflow's supervisor is known to be gone, or None if it may be alive."""
    if wf is None:
        return "its workflow record is missing"
    pid = wf["supervisor_pid"]
    if pid is None:
        if now - wf["created_ns"] > START_GRACE_NS:
            return "its supervisor never started"
        return None
    if wf["supervisor_host"] and wf["supervisor_host"] != host:
        return None  # another machine's process: we cannot tell
    if pid == os.getpid() or pid_alive(pid):
        return None
    return f"its supervisor (pid {pid}) is gone"


def _dead_reason(repo: Repo, wf: dict | None, host: str, now: int) -> str | None:
    why = _supervisor_dead(wf, host, now)
    if why is None and wf is not None and wf["supervisor_pid"] and wf["supervisor_pid"] != os.getpid() \
            and wf["supervisor_host"] in (None, host) and not _same_process(repo, wf["id"], wf["supervisor_pid"]):
        why = f"its supervisor (pid {wf['supervisor_pid']}) is gone (the pid now belongs to another process)"
    return why


def mark_lost(repo: Repo) -> int:
    """Mark PENDING/QUEUED/RUNNING jobs whose supervisor died as LOST; returns how many changed."""
    active = q.jobs_in_states(repo.catalog, q.ACTIVE_STATES)
    if not active:
        return 0
    host, now = socket.gethostname(), time.time_ns()
    by_wf: dict[str, list[str]] = {}
    for job in active:
        by_wf.setdefault(job["workflow_id"], []).append(job["id"])
    changed = 0
    for wf_id, ids in by_wf.items():
        why = _dead_reason(repo, q.get_workflow(repo.catalog, wf_id), host, now)
        if why is None:
            continue
        reason = f"lost: {why}; 'ws jobs refresh' asks the backend what became of it"
        with repo.catalog.write():
            changed += len(q.set_states(repo.catalog, ids, "LOST", reason, only_from=q.ACTIVE_STATES,
                                        reason=reason))
            q.update_workflow(repo.catalog, wf_id, state="LOST")
    return changed
