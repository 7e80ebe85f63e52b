"""Whole-file SHA-256, streamed; kept apart from chunking so ``ws status`` does not import pyfastcdc.

hashlib (which loads OpenSSL) is imported by the functions: a clean ``ws status`` hashes nothing.
"""

from __future__ import annotations

import os


def no_follow(path, flags: int) -> int:
    """An ``opener`` for open(): refuse to follow a symbolic link at the last component (ELOOP)."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def hash_file(path: str | os.PathLike, block: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, streamed in ``block``-sized reads.

    A symbolic link is not followed (OSError ELOOP): one that replaced the
    file since it was walked is hashed as a link, by :func:`hash_link`, next time.
    """
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0, opener=no_follow) as f:
        buf = bytearray(block)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


def hash_link(path: str | os.PathLike) -> tuple[str, int]:
    """SHA-256 (hex) and size of a symbolic link's target text: its content, as git stores it.

    The link is read, never followed. OSError (EINVAL) when ``path`` is no
    longer a link.
    """
    import hashlib

    target = os.readlink(os.fsencode(path))
    return hashlib.sha256(target).hexdigest(), len(target)


def release_digest(files) -> str:
    """SHA-256 of a release's canonical file listing: what 'same content' means for two releases.

    ``files`` are ``(path, file id, size, mode)``; the order does not matter
    (they are sorted by path). The one definition, used for local releases
    and for records read from remotes.
    """
    import hashlib

    h = hashlib.sha256()
    for path, file_id, size, mode in sorted(files, key=lambda f: f[0]):
        h.update(f"{path}\0{file_id}\0{size}\0{mode}\n".encode())
    return h.hexdigest()
