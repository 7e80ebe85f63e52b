"""The workspace write lock: one writer of history at a time, others wait then give up."""

from __future__ import annotations

import errno
import fcntl
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catalog.errors import CatalogReadOnly
from workspace.errors import InvalidConfig, WorkspaceBusy

DEFAULT_TIMEOUT = 30.0


def lock_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a lock: ``timeout`` if given, else ``WS_LOCK_TIMEOUT`` as it is now (default 30).

    Read at every lock, not at import, so a process (or a test) that sets the
    variable later is obeyed. Anything but a finite number >= 0 is refused.
    """
    if timeout is not None:
        return timeout
    raw = os.environ.get("WS_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidConfig(f"WS_LOCK_TIMEOUT={raw!r} is not a number of seconds >= 0 (e.g. 30 or 0.5)")
    return value


def _acquire(fd: int, mode: int, timeout: float, busy: str) -> None:
    """flock with a deadline; raises WorkspaceBusy(busy) when it passes."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise WorkspaceBusy(f"workspace busy: {busy} (waited {timeout:g}s); try again") from None
            time.sleep(delay)  # polling a kernel lock, not synchronizing tests
            delay = min(delay * 2, 0.1)


def _open_lock_file(path: Path) -> int:
    """The lock file, opened for writing (created if missing); a read-only mount is exit 12, said once.

    Every command that takes a lock is about to record something, which a
    read-only file system cannot hold: refuse before anything is touched.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise CatalogReadOnly(f"the workspace {path.parent.parent} is on a read-only file system, so this "
                                  "command cannot record anything; reading commands (status, log, diff, ls, "
                                  "cat) still work") from exc
        raise


@contextmanager
def pack_guard(path: Path, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
    """Readers of local packs (push) hold it shared; ``ws gc``, which deletes packs, holds it exclusive.

    A push can take minutes, so it does not hold the workspace lock (commits go
    on meanwhile); this separate lock only keeps gc from removing packs it reads.
    """
    fd = _open_lock_file(path)
    try:
        busy = "a push is reading packs" if exclusive else "ws gc is rewriting packs"
        _acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, lock_timeout(timeout), busy)
        yield
    finally:
        os.close(fd)


@contextmanager
def workspace_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; raise WorkspaceBusy after ``timeout`` seconds.

    flock is released by the kernel when the process dies, so a killed commit
    never leaves a stale lock behind.
    """
    fd = _open_lock_file(path)
    try:
        _acquire(fd, fcntl.LOCK_EX, lock_timeout(timeout), "another ws process is writing")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (in this pid namespace) now.

    A pid may have been reused by another process since; callers that clean up
    after a dead process must treat "alive" as "keep" and never the reverse.
    """
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    return True
