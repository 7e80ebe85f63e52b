"""An in-process backend for ``memory://NAME`` remotes: a dict shared by every
workspace of the process (tests, dry runs). Nothing survives the process.
"""

from __future__ import annotations

import threading

from sync.errors import ObjectExists, ObjectNotFound
from sync.storage.base import ObjectInfo, Payload, check_key, payload_bytes, slice_range

_STORES: dict[str, dict[str, bytes]] = {}
_LOCK = threading.Lock()


class MemoryBackend:
    """Objects in a process-wide dict keyed by the URL's name."""

    def __init__(self, url: str):
        self.url = url
        name = url.split("://", 1)[-1].strip("/")
        with _LOCK:
            self._objects = _STORES.setdefault(name, {})

    def stat(self, key: str) -> ObjectInfo | None:
        """Size of an object or None."""
        blob = self._objects.get(check_key(key))
        return None if blob is None else ObjectInfo(key, len(blob))

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes of an object, optionally a range."""
        blob = self._objects.get(check_key(key))
        if blob is None:
            raise ObjectNotFound(f"{self.url}: no object {key}")
        return slice_range(blob, start, end, key)

    def get_file(self, key: str, local_path: str) -> int:
        """Write an object to a local file."""
        blob = self.get(key)
        with open(local_path, "wb") as f:
            f.write(blob)
        return len(blob)

    def put(self, key: str, data: Payload, exclusive: bool = False) -> None:
        """Store an object (create-only with ``exclusive``)."""
        blob = payload_bytes(data)
        with _LOCK:
            if exclusive and check_key(key) in self._objects:
                raise ObjectExists(f"{self.url}: {key} already exists")
            self._objects[check_key(key)] = blob

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects under a key prefix, sorted."""
        with _LOCK:
            items = [(k, len(v)) for k, v in self._objects.items() if k.startswith(prefix)]
        return [ObjectInfo(k, n) for k, n in sorted(items)]

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        with _LOCK:
            self._objects.pop(check_key(key), None)


def forget(name: str) -> None:
    """Drop a whole memory remote (tests)."""
    with _LOCK:
        _STORES.pop(name, None)
