"""Durable small writes: fsync of a folder after a rename, and atomic replacement of a small file.

Kept apart from the pack format so that code on the ``ws status`` path (ref
files) can use it without importing zstandard.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(str(path.parent))


def sync_file_system(path: str) -> None:
    """Make everything written to the file system holding ``path`` durable: one ``syncfs(2)``.

    A pull or clone calls it once, after the last working file is renamed into
    place and before the catalog records those files as clean (design-decisions
    §12): one call instead of one fsync per file. Where ``syncfs`` is missing
    (not Linux) it falls back to ``os.sync()``, which flushes every file system.
    A ``syncfs`` that fails (EIO, or ENOSPC/EDQUOT met by delayed writes) raises
    ``OSError``: ``os.sync()`` reports nothing, and files that may not be on disk
    must not be recorded as clean.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        err = _syncfs(fd)
    finally:
        os.close(fd)
    if err is None:
        os.sync()
    elif err:
        raise OSError(err, os.strerror(err), path)


def _syncfs(fd: int) -> int | None:
    """libc's syncfs(fd): 0 when done, the errno when it fails, None when it is missing."""
    global _libc_syncfs
    if _libc_syncfs is None:
        try:
            import ctypes

            _libc_syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            _libc_syncfs = False
    if not _libc_syncfs:
        return None
    if _libc_syncfs(fd) == 0:
        return 0
    import ctypes

    return ctypes.get_errno() or errno.EIO


_libc_syncfs = None
