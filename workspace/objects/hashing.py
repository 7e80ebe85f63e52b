"""Whole-file SHA-256, streamed; kept apart from chunking so ``ws status`` does not import pyfastcdc."""

from __future__ import annotations

import hashlib
import os


def hash_file(path: str | os.PathLike, block: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, streamed in ``block``-sized reads."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(block)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return h.hexdigest(), size
