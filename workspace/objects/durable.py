"""Durable small writes: fsync of a folder after a rename, and atomic replacement of a small file.

Kept apart from the pack format so that code on the ``ws status`` path (ref
files) can use it without importing zstandard.
"""

from __future__ import annotations

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
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _syncfs(fd: int) -> int:
    """libc's syncfs(fd); -1 when it is missing or fails (the caller then syncs everything)."""
    global _libc_syncfs
    if _libc_syncfs is None:
        try:
            import ctypes

            _libc_syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            _libc_syncfs = False
    return _libc_syncfs(fd) if _libc_syncfs else -1


_libc_syncfs = None
