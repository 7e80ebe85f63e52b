"""The storage backend protocol: five operations on keys below one remote root.

Keys are relative POSIX paths (``packs/ab/<id>``). Every backend raises
:class:`~sync.errors.ObjectNotFound` for a missing key,
:class:`~sync.errors.ObjectExists` when a create-only put finds the key,
:class:`~sync.errors.TransientError` for failures worth retrying and
:class:`~sync.errors.RejectedCredentials` when the service refuses who we are.
Anything else is a :class:`~sync.errors.SyncError`.
"""

from __future__ import annotations

import os
from typing import BinaryIO, NamedTuple, Protocol, Union, runtime_checkable

from sync.errors import SyncError

# what put() accepts: bytes in memory, or the path of a local file to stream
Payload = Union[bytes, bytearray, memoryview, "LocalFile"]


class LocalFile(NamedTuple):
    """A local file to upload by streaming (large packs); ``put`` never loads it whole."""

    path: str

    def size(self) -> int:
        """Size in bytes."""
        return os.path.getsize(self.path)

    def open(self) -> BinaryIO:
        """Open for reading."""
        return open(self.path, "rb")


class ObjectInfo(NamedTuple):
    """A stored object: its key and size in bytes."""

    key: str
    size: int


@runtime_checkable
class Backend(Protocol):
    """What ws needs from a storage service."""

    url: str

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, or None when the key does not exist."""

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The object's bytes, or bytes ``[start, end)`` of it (a range GET)."""

    def get_file(self, key: str, local_path: str) -> int:
        """Copy a whole object into a new local file (streamed: big packs never sit in memory); returns bytes."""

    def put(self, key: str, data: Payload, exclusive: bool = False) -> None:
        """Store an object; readers never see a partial one. ``exclusive``: create-only."""

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key."""

    def delete(self, key: str) -> None:
        """Remove an object (a missing key is not an error)."""


@runtime_checkable
class ChunkQueries(Protocol):
    """An optional capability next to :class:`Backend`: a backend that knows its remote's chunks.

    The ws server (``grpc://``) answers these from its own chunk index, so push
    and pull need not read every ``index/<id>`` of a large remote. Engines use
    it when ``isinstance(backend, ChunkQueries)`` (RetryBackend passes it
    through, retried); other backends go the index path.
    """

    def missing_chunks(self, chunk_ids: list[str]) -> list[str]:
        """The given chunk ids (in order) that no indexed pack of the remote holds."""

    def locate_chunks(self, chunk_ids: list[str]) -> tuple[dict, dict]:
        """({chunk id: catalog.remotes.RemoteChunk}, {pack id: catalog.remotes.RemotePack}) of the held ones."""


# ``verifies_packs = True``: the backend checks every pack put to it with the one pack verifier
# before storing it (the ws server), so push need not hash the pack a second time first.
CAPABILITIES = ("missing_chunks", "locate_chunks", "verifies_packs")


def check_key(key: str) -> str:
    """Refuse keys that could leave the remote root ('..', absolute, empty parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise SyncError(f"invalid storage key {key!r}")
    return key


def payload_bytes(data: Payload) -> bytes:
    """The payload in memory (small objects, or backends that cannot stream)."""
    if isinstance(data, LocalFile):
        with data.open() as f:
            return f.read()
    return bytes(data)


def payload_size(data: Payload) -> int:
    """The payload's size in bytes."""
    return data.size() if isinstance(data, LocalFile) else len(data)


def slice_range(blob: bytes, start: int | None, end: int | None, key: str) -> bytes:
    """Apply a byte range to a whole object, refusing ranges past its end."""
    if start is None and end is None:
        return bytes(blob)
    lo = start or 0
    hi = len(blob) if end is None else end
    if lo < 0 or hi < lo or hi > len(blob):
        raise SyncError(f"range {lo}-{hi} is outside {key} ({len(blob)} bytes)")
    return bytes(blob[lo:hi])
