"""Resource limits of the local backend: memory (a cgroup, or RLIMIT_AS as a fallback) and gpus.

Memory, in order of preference (``LocalBackend(memory=...)``, default ``auto``):

- ``cgroup``: the job runs in its own cgroup v1 memory controller folder,
  created below this process's own (``/proc/self/cgroup``), with
  ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` when swap is
  accounted). The kernel OOM-kills the job when it goes over, and the
  folder's ``memory.oom_control`` counts the kill (``oom_kill``): that count is
  how the job's end is told apart from an ordinary failure (OUT_OF_MEMORY).
- ``rlimit``: ``ulimit -v`` (RLIMIT_AS, address space in KiB) in the job's
  wrapper. Allocations beyond it fail inside the program, which then exits
  however it handles that (Python: MemoryError, exit 1), so such a job ends
  FAILED: nothing reliable tells it apart from other failures.
- ``none``: memory is recorded, not enforced.

``auto`` uses a cgroup when the memory controller is mounted and a folder can
be created below this process's cgroup (root, or a delegated subtree), and
falls back to ``rlimit`` otherwise. cgroup v2 is not used: a process cannot
enable the memory controller for children of the cgroup it lives in.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess

from sync.compute.base import InvalidBackendOption, UnsatisfiableRequest
from sync.errors import BackendError

MEMORY_MODES = ("auto", "cgroup", "rlimit", "none")
CGROUP_RECORD = "cgroup"  # in the job's log dir: the cgroup folder and the limit in bytes
OOM_MARKER = "oom"  # in the job's log dir: written by the wrapper when the kernel OOM-killed the job


def own_memory_cgroup() -> str | None:
    """The folder of this process's cgroup v1 memory controller, or None when there is none."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
        with open("/proc/self/mountinfo") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    path = next((ln.split(":", 2)[2] for ln in lines
                 if ln.count(":") >= 2 and "memory" in ln.split(":", 2)[1].split(",")), None)
    if path is None:
        return None
    for mount in mounts:
        left, _, right = mount.partition(" - ")
        fields, sup = left.split(), right.split()
        if len(sup) >= 3 and sup[0] == "cgroup" and "memory" in sup[2].split(","):
            root, point = fields[3], fields[4]
            rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
            return os.path.normpath(os.path.join(point, rel))
    return None


def cgroup_available() -> bool:
    """Whether jobs started by this process can get a memory cgroup (creates and removes a probe folder)."""
    parent = own_memory_cgroup()
    if parent is None:
        return False
    probe = os.path.join(parent, f"ws-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    try:
        _write(os.path.join(probe, "memory.limit_in_bytes"), str(64 * 1024 * 1024))
        return True
    except OSError:
        return False
    finally:
        os.rmdir(probe)


class MemoryLimiter:
    """Prepares the memory limit of one job attempt according to the backend's ``memory`` mode."""

    def __init__(self, mode: str = "auto"):
        if mode not in MEMORY_MODES:
            raise InvalidBackendOption(f"local backend: memory must be one of {', '.join(MEMORY_MODES)}, not {mode!r}")
        self.mode = mode
        self._cgroup_failed: str | None = None  # why cgroups did not work here (auto falls back once)

    def prepare(self, job_id: str, attempt: int, memory_mb: int | None, log_dir: str) -> tuple[str, str]:
        """(cgroup folder, address-space limit in KiB) for the wrapper; empty strings mean "none".

        A fallback to RLIMIT_AS is said in the job's stderr, with why no
        cgroup could be used, since it changes how running out ends.
        """
        if not memory_mb or self.mode == "none":
            return "", ""
        if self.mode in ("auto", "cgroup") and self._cgroup_failed is None:
            try:
                return make_cgroup(job_id, attempt, memory_mb, log_dir), ""
            except OSError as exc:
                self._cgroup_failed = str(exc)
        if self.mode == "cgroup":
            raise BackendError(f"local backend: cannot limit memory with a cgroup: {self._cgroup_failed}")
        why = f" (no memory cgroup: {self._cgroup_failed})" if self._cgroup_failed else ""
        with open(os.path.join(log_dir, "stderr"), "a") as err:
            err.write(f"ws: memory limited to {memory_mb} MiB of address space (RLIMIT_AS){why}; "
                      "going over it fails the job as an ordinary error\n")
        return "", str(memory_mb * 1024)


def make_cgroup(job_id: str, attempt: int, memory_mb: int, log_dir: str) -> str:
    """Create the job attempt's memory cgroup with its limit; records it in ``log_dir``. Raises OSError."""
    parent = own_memory_cgroup()
    if parent is None:
        raise OSError("no cgroup v1 memory controller is mounted")
    folder = os.path.join(parent, f"ws-{job_id}-{attempt}")
    if os.path.isdir(folder):  # a leftover of a killed wrapper: empty, or it would still be running
        os.rmdir(folder)
    os.mkdir(folder)
    limit = memory_mb * 1024 * 1024
    try:
        _write(os.path.join(folder, "memory.limit_in_bytes"), str(limit))
        swap = os.path.join(folder, "memory.memsw.limit_in_bytes")
        if os.path.exists(swap):
            try:
                _write(swap, str(limit))  # else swapping lets the job exceed the limit
            except OSError:
                pass  # swap accounting disabled (EINVAL): there is no swap to account
    except OSError:
        os.rmdir(folder)
        raise
    _write(os.path.join(log_dir, CGROUP_RECORD), f"{folder}\n{limit}\n")
    return folder


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def read_cgroup_record(log_dir: str) -> tuple[str, int] | None:
    """(cgroup folder, limit in bytes) of a job attempt that ran in a memory cgroup, else None."""
    try:
        with open(os.path.join(log_dir, CGROUP_RECORD)) as f:
            folder, limit = f.read().split()
        return folder, int(limit)
    except (FileNotFoundError, ValueError):
        return None


def oom_killed(log_dir: str) -> bool:
    """Whether the kernel OOM-killed a process of the job (the wrapper's marker, or its cgroup's count)."""
    if os.path.exists(os.path.join(log_dir, OOM_MARKER)):
        return True
    rec = read_cgroup_record(log_dir)
    return bool(rec) and _oom_kills(rec[0]) > 0


def _oom_kills(folder: str) -> int:
    try:
        with open(os.path.join(folder, "memory.oom_control")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except FileNotFoundError:
        pass  # gone: the wrapper removed it after writing its marker
    return 0  # (kernels before 4.13 do not count kills: no OUT_OF_MEMORY there)


def remove_cgroup(log_dir: str) -> None:
    """Remove a finished job's cgroup folder when its wrapper could not (it was killed); keeps the OOM verdict."""
    rec = read_cgroup_record(log_dir)
    if rec is None or not os.path.isdir(rec[0]):
        return
    if _oom_kills(rec[0]) > 0:
        _write(os.path.join(log_dir, OOM_MARKER), "")
    try:
        os.rmdir(rec[0])
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOENT):
            raise
        # EBUSY: a stray process of the job still lives in it; the next status call tries again


def memory_reason(log_dir: str) -> str:
    """The one-line reason of an OUT_OF_MEMORY end."""
    rec = read_cgroup_record(log_dir)
    limit = f" of {rec[1] // (1024 * 1024)} MiB" if rec else ""
    return f"out of memory: killed by the kernel at its memory limit{limit}"


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """GPUs on this machine: ``nvidia-smi -L`` when installed, else /proc/driver/nvidia/gpus, else 0."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            proc = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
            if proc.returncode == 0:
                return sum(1 for ln in proc.stdout.splitlines() if ln.startswith("GPU "))
        except (OSError, subprocess.TimeoutExpired):
            pass  # a broken driver install: fall back to the kernel's list
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def check_gpus(gpus: int) -> None:
    """Refuse more gpus than this machine has (UnsatisfiableRequest naming both numbers)."""
    if gpus and gpus > gpu_count():
        have = gpu_count()
        raise UnsatisfiableRequest(f"asks for {gpus} gpu{'s' if gpus != 1 else ''} but this machine has "
                                   f"{have} (the local backend runs jobs here)", resource="gpus")
