"""Real objects of the remote format for storage tests: a sealed pack and a release record."""

from __future__ import annotations

import hashlib

from sync.remote import encode_record
from workspace.objects import packs


def sealed_pack(folder, *chunks: bytes):
    """(pack id, path, entries) of a real pack holding ``chunks`` (raw), under ``folder``."""
    writer = packs.PackWriter(folder / "tmp-packs")
    for data in chunks:
        writer.add(hashlib.sha256(data).hexdigest(), len(data), packs.CODEC_RAW, data)
    return writer.finish(lambda pid: str(folder / "sealed" / pid))


def record(title: str, version: str, chunk_ids: list[str] = (), description: str = "") -> bytes:
    """A release record as stored: one file made of ``chunk_ids`` (no file when there are none)."""
    files = [{"path": "f.bin", "id": "0" * 64, "size": 0, "sha256": "0" * 64, "mode": 420, "chunks": list(chunk_ids)}]
    return encode_record({"format": 1, "title": title, "version": version, "description": description,
                          "files": files if chunk_ids else []})
