"""The local backend: each job a detached process group on this machine.

A job attempt runs under a tiny ``/bin/sh`` wrapper that joins the job's
memory cgroup (when it has one), writes ``<log_dir>/pid`` (pid, kernel start
time, attempt), starts the command, waits for it and writes its exit code to
``<log_dir>/exit``. Everything lives in files, not only in the supervisor's
memory, so that a restarted supervisor (or ``ws jobs refresh``) still learns
what was started and how it ended. The wrapper traps TERM, INT and HUP (a
trap, not an ignore, so the command itself still gets the default handlers)
and therefore outlives a polite cancel long enough to record 128+signal.

The pid file is the job's own record of its attempt, written before the
command starts, so it exists even when the supervisor died right after the
fork. For the instant before it is written, ``submit`` hands the wrapper a
*start lock* (``<log_dir>/start``, flocked, as the wrapper's stdin) that the
wrapper drops once the pid file is complete: a held lock means "started, pid
file on its way". :meth:`LocalBackend.find` relies on both.

Backend ids are ``<pid>@<log dir>`` with the log dir relative to the
backend's ``root`` when it lies below it, so a new process can find the files.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from sync.compute import local_limits as limits
from sync.compute.local_files import (PidRecord, group_alive, is_zombie, kill_group, mtime_ns, read_exit,
                                      read_pid_file, read_start, start_lock, start_locked, start_ticks, unlink,
                                      write_text)
from sync.compute.base import (CANCELLED, FAILED, LOST, OUT_OF_MEMORY, RUNNING, SUCCEEDED, BackendStatus,
                               ComputeBackend, InvalidBackendOption, SubmitRequest)
from sync.errors import BackendError

# $1 = the command, $2 = the log dir, $3 = the attempt, $4 = the memory cgroup folder (or ""),
# $5 = the address-space limit in KiB (or ""). Only shell builtins run before the command, so
# starting a job costs one exec. The exit file is written with one printf (one write of
# "<code>\n"); readers only trust it (and the pid file) once the newline is there.
_WRAPPER = r"""trap 'ws_sig=1' TERM INT HUP
ws_cmd=$1 ws_dir=$2 ws_try=$3 ws_cg=$4 ws_vm=$5
ws_fail() { echo "ws: $1" >&2; printf '125\n' > "$ws_dir/exit"; exit 125; }
if [ -n "$ws_cg" ]; then echo $$ > "$ws_cg/cgroup.procs" || ws_fail "cannot enter memory cgroup $ws_cg"; fi
ws_ticks=-
if read -r ws_stat 2>/dev/null < /proc/$$/stat; then set -f; set -- $ws_stat; ws_ticks=${22}; fi
printf 'pid=%s ticks=%s attempt=%s\n' $$ "$ws_ticks" "$ws_try" > "$ws_dir/pid"
exec 0</dev/null
if [ -n "$ws_vm" ]; then ulimit -v "$ws_vm" || ws_fail "cannot limit memory to $ws_vm KiB"; fi
/bin/sh -c "$ws_cmd"
ws_rc=$?
if [ -n "$ws_cg" ]; then
  while read -r ws_k ws_v; do
    if [ "$ws_k" = oom_kill ] && [ "$ws_v" != 0 ]; then : > "$ws_dir/oom"; fi
  done < "$ws_cg/memory.oom_control"
  echo $$ > "$ws_cg/../cgroup.procs" && rmdir "$ws_cg" 2>/dev/null
fi
printf '%s\n' "$ws_rc" > "$ws_dir/exit"
exit $ws_rc
"""
DEFAULT_GRACE_S = 5.0
START_WAIT_S = 10.0  # how long find() waits for a wrapper that holds its start lock to write its pid file
_STALE = ("exit", "cancelled", "pid", limits.OOM_MARKER, limits.CGROUP_RECORD)  # from an earlier attempt


class LocalBackend(ComputeBackend):
    """Runs jobs as local process groups; ``root`` anchors relative log dirs (``.ws/jobs``).

    ``memory`` says how ``resources.memory`` is enforced: ``auto`` (a cgroup
    when possible, else RLIMIT_AS), ``cgroup``, ``rlimit`` or ``none`` (see
    :mod:`sync.compute.local_limits`).
    """

    name = "local"
    starts_at_once = True
    fetches_artifacts = True  # into the job's workdir, before it starts (sync/compute/artifacts.py)

    def __init__(self, root: str | os.PathLike | None = None, grace_s: float = DEFAULT_GRACE_S,
                 memory: str = "auto"):
        self.root = os.path.abspath(root) if root is not None else None
        try:  # strings too: options come from .ws/config.toml
            self.grace_s = float(grace_s)
        except (TypeError, ValueError):
            raise InvalidBackendOption(f"local backend: option grace_s must be a number of seconds, "
                                       f"not {grace_s!r}") from None
        if self.grace_s < 0:
            raise InvalidBackendOption("local backend: option grace_s must not be negative")
        self.memory = limits.MemoryLimiter(memory)
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
    def check(self) -> list[tuple[str, bool, str]]:
        """Local jobs need only this machine: its cpus, and how memory limits are enforced."""
        return [("machine", True, f"runs jobs as processes here ({os.cpu_count() or 1} cpus)")]

    def check_resources(self, cpus: int = 1, memory_mb: int | None = None, gpus: int = 0) -> None:
        """Refuse more gpus than this machine has (cpus over the limit run alone; memory is enforced)."""
        limits.check_gpus(gpus)

    def check_request(self, request: SubmitRequest) -> None:
        """The default refusals (a container, nodes > 1, artifacts...), and scratch disk (``resources.disk``)
        only while the job's folder has that much free space."""
        super().check_request(request)
        if request.disk_mb:
            from sync.compute.base import UnsatisfiableRequest

            folder = request.workdir if os.path.isdir(request.workdir) else os.getcwd()
            st = os.statvfs(folder)
            free_mb = st.f_bavail * st.f_frsize // (1024 * 1024)
            if free_mb < request.disk_mb:
                raise UnsatisfiableRequest(f"the local backend has {free_mb} MiB free where the job runs, "
                                           f"the spec asks for {request.disk_mb} MiB", resource="disk")

    def submit(self, request: SubmitRequest) -> str:
        """Start the command in a new session (its own process group), logs appended under log_dir."""
        self.check_resources(request.cpus, request.memory_mb, request.gpus)
        if request.artifacts:
            from sync.compute.artifacts import fetch_artifacts

            fetch_artifacts(request.artifacts, request.workdir)
        log_dir = request.log_dir
        os.makedirs(log_dir, exist_ok=True)
        for stale in _STALE:
            unlink(os.path.join(log_dir, stale))
        cgroup, vm_kib = self.memory.prepare(request.job_id, request.attempt, request.memory_mb, log_dir)
        env = dict(os.environ)
        env.update(request.env)
        env["WS_JOB_ID"] = request.job_id
        env["WS_JOB_ATTEMPT"] = str(request.attempt)
        argv = ["/bin/sh", "-c", _WRAPPER, "ws-job", request.command, log_dir, str(request.attempt), cgroup, vm_kib]
        lock = start_lock(log_dir, request.attempt)
        try:
            with open(os.path.join(log_dir, "stdout"), "ab") as out, \
                    open(os.path.join(log_dir, "stderr"), "ab") as err:
                proc = subprocess.Popen(argv, cwd=request.workdir, env=env, stdin=lock, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True)
        except OSError as exc:
            if cgroup:
                limits.remove_cgroup(log_dir)
            raise BackendError(f"cannot start job {request.name}: {exc}") from exc
        finally:
            os.close(lock)  # the wrapper's stdin keeps the lock until its pid file is written
        self._children[proc.pid] = proc
        return self._make_id(proc.pid, log_dir)

    def find(self, request: SubmitRequest) -> str | None:
        """The id of attempt ``request.attempt`` from the files in its log dir, or None if it never started."""
        log_dir = request.log_dir
        rec = read_pid_file(log_dir)
        if rec.attempt == request.attempt:
            return self._make_id(rec.pid, log_dir)
        if read_start(log_dir) != request.attempt:
            return None  # this attempt never got as far as the fork
        deadline = time.monotonic() + START_WAIT_S
        while start_locked(log_dir):  # forked: its wrapper is about to write the pid file
            if time.monotonic() > deadline:
                raise BackendError(f"job {request.job_id} attempt {request.attempt} is still starting after "
                                   f"{START_WAIT_S:g}s; try again")
            time.sleep(0.01)  # a rare recovery path: poll the lock with a deadline
        rec = read_pid_file(log_dir)
        return self._make_id(rec.pid, log_dir) if rec.attempt == request.attempt else None

    def status(self, backend_ids: list[str]) -> dict[str, BackendStatus]:
        """Read each job's exit file; without one, the job runs while its process lives."""
        return {bid: self._one_status(bid) for bid in backend_ids}

    def _one_status(self, backend_id: str) -> BackendStatus:
        pid, log_dir = self._parse_id(backend_id)
        rec = read_pid_file(log_dir)
        started = rec.started_ns
        code = read_exit(log_dir)
        if code is None and self._alive(pid, log_dir, rec):
            return BackendStatus(RUNNING, started_ns=started)
        if code is None:
            code = read_exit(log_dir)  # it may have finished between the two reads
        # the exit file's mtime comes from the kernel's coarse clock: never before the recorded start
        finished = max(mtime_ns(os.path.join(log_dir, "exit")) or time.time_ns(), started or 0)
        limits.remove_cgroup(log_dir)  # when a killed wrapper could not
        if os.path.exists(os.path.join(log_dir, "cancelled")):
            return BackendStatus(CANCELLED, code, started, finished, "cancelled")
        if code != 0 and limits.oom_killed(log_dir):
            return BackendStatus(OUT_OF_MEMORY, code, started, finished, limits.memory_reason(log_dir))
        if code is None:
            return BackendStatus(LOST, None, started, finished, "process ended without recording an exit code")
        if code == 0:
            return BackendStatus(SUCCEEDED, 0, started, finished)
        reason = f"exit code {code}"
        if code > 128 and code - 128 in signal.Signals._value2member_map_:
            reason += f" (killed by {signal.Signals(code - 128).name})"
        return BackendStatus(FAILED, code, started, finished, reason)

    def _alive(self, pid: int, log_dir: str, rec: PidRecord | None = None) -> bool:
        proc = self._children.get(pid)
        if proc is not None:
            if proc.poll() is None:
                return True
            self._forget(pid)
            return False
        rec = rec or read_pid_file(log_dir)
        if rec.pid is None:
            return start_locked(log_dir)  # forked; its wrapper has not written the pid file yet
        # a pid is only ours if its start time matches: pids get reused
        return rec.pid == pid and rec.ticks is not None and start_ticks(pid) == rec.ticks and not is_zombie(pid)

    def cancel(self, backend_ids: list[str]) -> None:
        """SIGTERM each job's process group, then SIGKILL whatever is left after the grace period."""
        groups = []
        for bid in backend_ids:
            pid, log_dir = self._parse_id(bid)
            if read_exit(log_dir) is not None or not self._alive(pid, log_dir):
                continue
            write_text(os.path.join(log_dir, "cancelled"), "")
            kill_group(pid, signal.SIGTERM)
            groups.append((pid, log_dir))
        deadline = time.monotonic() + self.grace_s
        while groups and time.monotonic() < deadline:
            groups = [(p, d) for p, d in groups if group_alive(p) and not self._reap(p)]
            if groups:
                self.wait([self._make_id(p, d) for p, d in groups], 0.05)
        for pid, _ in groups:
            kill_group(pid, signal.SIGKILL)
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
            return not group_alive(pid)
        done = (proc.wait() if block else proc.poll()) is not None
        if done:
            self._forget(pid)
        return done

    def _forget(self, pid: int) -> None:
        self._children.pop(pid, None)
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            os.close(fd)
