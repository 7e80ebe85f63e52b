"""The files a local job attempt keeps in its log dir, and the process checks that go with them.

``pid``: ``pid=<pid> ticks=<kernel start time> attempt=<n>``, written by the
job's wrapper before its command starts (older ws wrote ``<pid> <ticks> <start
ns>``, still read). ``start``: the attempt number, flocked by ``submit`` and
then by the wrapper until the pid file is complete. ``exit``: the exit code
and a newline. ``cancelled``: a marker written by ``cancel``.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass


@dataclass
class PidRecord:
    """What a job attempt's pid file says; every field is None while there is no complete file."""

    pid: int | None = None
    ticks: int | None = None  # kernel start time (clock ticks since boot): pids get reused
    attempt: int | None = None
    started_ns: int | None = None


def read_pid_file(log_dir: str) -> PidRecord:
    """The pid record of the latest attempt started in ``log_dir`` (empty when there is none yet)."""
    path = os.path.join(log_dir, "pid")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return PidRecord()
    if not text.endswith("\n"):
        return PidRecord()  # the wrapper is still writing it
    parts = text.split()
    try:
        if parts and parts[0].startswith("pid="):
            kv = dict(p.split("=", 1) for p in parts)
            ticks = kv.get("ticks")
            return PidRecord(int(kv["pid"]), int(ticks) if ticks and ticks.isdigit() else None,
                             int(kv["attempt"]), mtime_ns(path))
        return PidRecord(int(parts[0]), int(parts[1]) if parts[1].isdigit() else None, None, int(parts[2]))
    except (KeyError, IndexError, ValueError):
        return PidRecord()


def read_exit(log_dir: str) -> int | None:
    """The exit code the wrapper recorded, or None while there is none (or it is half written)."""
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


def start_lock(log_dir: str, attempt: int) -> int:
    """Create the attempt's start lock, held (LOCK_EX) by the returned fd, which becomes the wrapper's stdin."""
    fd = os.open(os.path.join(log_dir, "start"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{attempt}\n".encode())
    except OSError:
        os.close(fd)
        raise
    return fd


def read_start(log_dir: str) -> int | None:
    """The attempt the last ``submit`` in ``log_dir`` was about to start, or None."""
    try:
        with open(os.path.join(log_dir, "start")) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def start_locked(log_dir: str) -> bool:
    """Whether a submit or a starting wrapper holds the start lock (its pid file is on its way)."""
    try:
        fd = os.open(os.path.join(log_dir, "start"), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock too
    return False


def write_text(path: str, text: str) -> None:
    """Replace a small file atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def unlink(path: str) -> None:
    """Remove a file that may not exist."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def mtime_ns(path: str) -> int | None:
    """A file's modification time, or None when it does not exist."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def kill_group(pid: int, sig: int) -> None:
    """Signal a job's process group (the wrapper leads it: start_new_session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def group_alive(pid: int) -> bool:
    """Whether any process of the group led by ``pid`` exists."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces; everything after its ')' splits cleanly
    return text[text.rfind(")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    """A process's kernel start time (field 22 of /proc/PID/stat), or None when it is gone."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie."""
    fields = _proc_stat(pid)
    return fields is None or fields[0] in ("Z", "X")
