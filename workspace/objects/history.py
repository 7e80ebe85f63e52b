"""The byte formats of history objects, the pack entries that make the catalog rebuildable.

History is stored like data: as objects in packs (``workspace.objects.packs``
kinds), each identified by the SHA-256 of its raw bytes, written and fsynced
before the catalog rows that index them. So ``.ws/`` alone holds every commit.

- a **commit** (kind 3): the canonical JSON whose SHA-256 has always been the
  commit id (sorted keys, no spaces): tree, parents, branch, message, author,
  time_ns, provenance;
- a **tree** (kind 2): the serialized directory whose SHA-256 is the tree id
  (see ``workspace.history.trees``);
- a **file** (kind 1): a file's ordered chunk list, for files of more than one
  chunk (a file of one chunk is that chunk: its id is the file id; an empty
  file has no chunk). Binary: ``b"WSF1"``, the file id (32 bytes), its size
  (u64, little-endian), then each chunk id (32 bytes).
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import NamedTuple

FILE_MAGIC = b"WSF1"
_FILE_HEAD = struct.Struct("<4s32sQ")


class FileObject(NamedTuple):
    """A file's content: its id (SHA-256 of the bytes), size and ordered chunk ids."""

    id: str
    size: int
    chunk_ids: list[str]


class CommitObject(NamedTuple):
    """The fields a commit id covers."""

    tree: str
    parents: list[str]
    branch: str | None
    message: str
    author: str
    time_ns: int
    provenance: dict | None


def needs_file_object(file_id: str, chunk_ids: list[str]) -> bool:
    """Whether a file's chunk list must be stored: not for one chunk that is the file, nor for an empty file."""
    return not (chunk_ids == [file_id] or (not chunk_ids))


def encode_file(f: FileObject) -> bytes:
    """A file object's bytes."""
    return _FILE_HEAD.pack(FILE_MAGIC, bytes.fromhex(f.id), f.size) + b"".join(bytes.fromhex(c) for c in f.chunk_ids)


def decode_file(raw: bytes) -> FileObject:
    """Parse a file object; ValueError when it is not one."""
    if len(raw) < _FILE_HEAD.size or (len(raw) - _FILE_HEAD.size) % 32:
        raise ValueError("not a file object (bad length)")
    magic, fid, size = _FILE_HEAD.unpack_from(raw)
    if magic != FILE_MAGIC:
        raise ValueError("not a file object (bad magic)")
    body = raw[_FILE_HEAD.size:]
    return FileObject(fid.hex(), size, [body[i:i + 32].hex() for i in range(0, len(body), 32)])


def encode_commit(c: CommitObject) -> bytes:
    """A commit's canonical bytes; their SHA-256 is the commit id."""
    body = {"tree": c.tree, "parents": list(c.parents), "branch": c.branch, "message": c.message,
            "author": c.author, "time_ns": c.time_ns, "provenance": c.provenance}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_commit(raw: bytes) -> CommitObject:
    """Parse a commit object; ValueError when it is not one."""
    try:
        d = json.loads(raw)
        return CommitObject(d["tree"], list(d["parents"]), d["branch"], d["message"], d["author"],
                            int(d["time_ns"]), d["provenance"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a commit object: {exc}") from None


def object_id(raw: bytes) -> str:
    """The id of any object: the SHA-256 of its raw bytes."""
    return hashlib.sha256(raw).hexdigest()
