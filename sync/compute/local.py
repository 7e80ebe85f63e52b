"""The local backend: each job a detached process group on this machine.

A job attempt runs under a tiny ``/bin/sh`` wrapper that starts the command,
waits for it and writes its exit code to ``<log_dir>/exit``. The code lives in
a file, not only in the supervisor's memory, so that a restarted supervisor
(or ``ws jobs refresh``) still learns how a job ended. The wrapper traps TERM,
INT and HUP (a trap, not an ignore, so the command itself still gets the
default handlers) and therefore outlives a polite cancel long enough to
record 128+signal.

Backend ids are ``<pid>@<log dir>`` with the log dir relative to the
backend's ``root`` when it lies below it, so a new process can find the files.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from sync.compute.base import (CANCELLED, FAILED, LOST, RUNNING, SUCCEEDED, BackendStatus, ComputeBackend,
                               SubmitRequest)
from sync.errors import BackendError

# $1 = the command, $2 = the log dir. The exit file is written with one printf
# (one write of "<code>\n"); readers only trust it once the newline is there.
_WRAPPER = (
    "trap 'ws_sig=1' TERM INT HUP\n"
    '/bin/sh -c "$1"\n'
    "ws_rc=$?\n"
    "printf '%s\\n' \"$ws_rc\" > \"$2/exit\"\n"
    "exit $ws_rc\n"
)
DEFAULT_GRACE_S = 5.0


class LocalBackend(ComputeBackend):
    """Runs jobs as local process groups; ``root`` anchors relative log dirs (``.ws/jobs``)."""

    name = "local"
    starts_at_once = True

    def __init__(self, root: str | os.PathLike | None = None, grace_s: float = DEFAULT_GRACE_S):
        self.root = os.path.abspath(root) if root is not None else None
        self.grace_s = grace_s
        self._children: dict[int, subprocess.Popen] = {}  # reaped by us, so they never linger as zombies
        self._pidfds: dict[int, int] = {}

    # -- ids ----------------------------------------------------------------
    def _make_id(self, pid: int, log_dir: str) -> str:
        log_dir = os.path.abspath(log_dir)
        if self.root and (log_dir + "/").startswith(self.root + "/"):
            log_dir = os.path.relpath(log_dir, self.root)
        return f"{pid}@{log_dir}"

    def _parse_id(self, backend_id: str) -> tuple[int, str]:
        pid_text, sep, log_dir = backend_id.partition("@")
        if not sep or not pid_text.isdigit():
            raise BackendError(f"not a local backend id: {backend_id!r}")
        if not os.path.isabs(log_dir):
            if self.root is None:
                raise BackendError(f"local backend id {backend_id!r} is relative but the backend has no root")
            log_dir = os.path.join(self.root, log_dir)
        return int(pid_text), log_dir

    # -- the protocol ------------------------------------------------------
    def submit(self, request: SubmitRequest) -> str:
        """Start the command in a new session (its own process group), logs appended under log_dir."""
        os.makedirs(request.log_dir, exist_ok=True)
        for stale in ("exit", "cancelled"):  # from an earlier attempt of the same job
            try:
                os.unlink(os.path.join(request.log_dir, stale))
            except FileNotFoundError:
                pass
        env = dict(os.environ)
        env.update(request.env)
        env["WS_JOB_ID"] = request.job_id
        env["WS_JOB_ATTEMPT"] = str(request.attempt)
        with open(os.path.join(request.log_dir, "stdout"), "ab") as out, \
                open(os.path.join(request.log_dir, "stderr"), "ab") as err:
            try:
                proc = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "ws-job", request.command, request.log_dir],
                                        cwd=request.workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, start_new_session=True, close_fds=True)
            except OSError as exc:
                raise BackendError(f"cannot start job {request.name}: {exc}") from exc
        started = time.time_ns()
        _write_text(os.path.join(request.log_dir, "pid"), f"{proc.pid} {_start_ticks(proc.pid)} {started}\n")
        self._children[proc.pid] = proc
        return self._make_id(proc.pid, request.log_dir)

    def status(self, backend_ids: list[str]) -> dict[str, BackendStatus]:
        """Read each job's exit file; without one, the job runs while its process lives."""
        return {bid: self._one_status(bid) for bid in backend_ids}

    def _one_status(self, backend_id: str) -> BackendStatus:
        pid, log_dir = self._parse_id(backend_id)
        started = _read_pid_file(log_dir)[2]
        code = _read_exit(log_dir)
        if code is None and self._alive(pid, log_dir):
            return BackendStatus(RUNNING, started_ns=started)
        if code is None:
            code = _read_exit(log_dir)  # it may have finished between the two reads
        # the exit file's mtime comes from the kernel's coarse clock: never before the recorded start
        finished = max(_mtime_ns(os.path.join(log_dir, "exit")) or time.time_ns(), started or 0)
        cancelled = os.path.exists(os.path.join(log_dir, "cancelled"))
        if cancelled:
            return BackendStatus(CANCELLED, code, started, finished, "cancelled")
        if code is None:
            return BackendStatus(LOST, None, started, finished, "process ended without recording an exit code")
        if code == 0:
            return BackendStatus(SUCCEEDED, 0, started, finished)
        reason = f"exit code {code}"
        if code > 128 and code - 128 in signal.Signals._value2member_map_:
            reason += f" (killed by {signal.Signals(code - 128).name})"
        return BackendStatus(FAILED, code, started, finished, reason)

    def _alive(self, pid: int, log_dir: str) -> bool:
        proc = self._children.get(pid)
        if proc is not None:
            if proc.poll() is None:
                return True
            self._forget(pid)
            return False
        ticks = _start_ticks(pid)
        # a pid is only ours if its start time matches: pids get reused
        return ticks is not None and ticks == _read_pid_file(log_dir)[1] and not _is_zombie(pid)

    def cancel(self, backend_ids: list[str]) -> None:
        """SIGTERM each job's process group, then SIGKILL whatever is left after the grace period."""
        groups = []
        for bid in backend_ids:
            pid, log_dir = self._parse_id(bid)
            if _read_exit(log_dir) is not None or not self._alive(pid, log_dir):
                continue
            _write_text(os.path.join(log_dir, "cancelled"), "")
            _kill_group(pid, signal.SIGTERM)
            groups.append((pid, log_dir))
        deadline = time.monotonic() + self.grace_s
        while groups and time.monotonic() < deadline:
            groups = [(p, d) for p, d in groups if _group_alive(p) and not self._reap(p)]
            if groups:
                self.wait([self._make_id(p, d) for p, d in groups], 0.05)
        for pid, _ in groups:
            _kill_group(pid, signal.SIGKILL)
        for pid, _ in groups:
            self._reap(pid, block=True)

    def logs(self, backend_id: str) -> tuple[str, str]:
        """Paths of the job's stdout and stderr files."""
        _, log_dir = self._parse_id(backend_id)
        return os.path.join(log_dir, "stdout"), os.path.join(log_dir, "stderr")

    def wait(self, backend_ids: list[str], timeout: float) -> None:
        """Block until one of our children exits (pidfds in a poll set) or ``timeout`` passes."""
        fds = []
        for bid in backend_ids:
            pid = self._parse_id(bid)[0]
            fd = self._pidfd(pid)
            if fd is not None:
                fds.append(fd)
        if not fds:
            super().wait(backend_ids, min(timeout, 0.05))  # not our children: poll their files
            return
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))

    def close(self) -> None:
        """Close pidfds; running children keep running (they are detached sessions)."""
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()

    # -- child bookkeeping -----------------------------------------------
    def _pidfd(self, pid: int) -> int | None:
        if pid not in self._children or not hasattr(os, "pidfd_open"):
            return None
        fd = self._pidfds.get(pid)
        if fd is None:
            try:
                fd = self._pidfds[pid] = os.pidfd_open(pid)
            except OSError:
                return None
        return fd

    def _reap(self, pid: int, block: bool = False) -> bool:
        proc = self._children.get(pid)
        if proc is None:
            return not _group_alive(pid)
        done = (proc.wait() if block else proc.poll()) is not None
        if done:
            self._forget(pid)
        return done

    def _forget(self, pid: int) -> None:
        self._children.pop(pid, None)
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            os.close(fd)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session made the wrapper its group's leader
    except ProcessLookupError:
        pass


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_exit(log_dir: str) -> int | None:
    try:
        with open(os.path.join(log_dir, "exit")) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if not text.endswith("\n"):
        return None  # the wrapper is still writing it
    try:
        return int(text.strip())
    except ValueError:
        return None


def _read_pid_file(log_dir: str) -> tuple[int | None, int | None, int | None]:
    try:
        with open(os.path.join(log_dir, "pid")) as f:
            parts = f.read().split()
        return int(parts[0]), (int(parts[1]) if parts[1] != "None" else None), int(parts[2])
    except (FileNotFoundError, IndexError, ValueError):
        return None, None, None


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces; everything after its ')' splits cleanly
    return text[text.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is None or fields[0] in ("Z", "X")


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
