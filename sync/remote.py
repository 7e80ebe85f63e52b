"""The remote layout (docs/format.md), on top of any storage backend::

    ws-remote.json                    {"format": 1, ...}: marks a ws remote, format version
    packs/<aa>/<pack id>              pack files (workspace.objects.packs format)
    index/<pack id>                   the pack's footer index bytes; SHA-256 of them == pack id
    releases/<title>/<version>.json   release records, written last and create-only

A pack without its index is not part of the remote (an interrupted upload);
``ws fsck --remote`` reports it and the next push re-sends its chunks.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from catalog import remotes as rq
from catalog.db import Catalog
from sync.errors import (DamagedRemote, NotARemote, ObjectExists, ObjectNotFound, RemoteTooNew,
                         UnknownRemoteRelease)
from workspace.objects import packs
from workspace.objects.hashing import release_digest

FORMAT = 1
MARKER = "ws-remote.json"
TITLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a release title (docs/format.md)
MAX_DEPTH = 64  # JSON nesting a record or the marker may have; ws writes 4 levels, metadata a few more


def pack_key(pack_id: str) -> str:
    """Where a pack lives on a remote."""
    return f"packs/{pack_id[:2]}/{pack_id}"


def index_key(pack_id: str) -> str:
    """Where a pack's index lives on a remote."""
    return f"index/{pack_id}"


def release_key(title: str, version: str) -> str:
    """Where a release record lives on a remote."""
    return f"releases/{title}/{version}.json"


def record_digest(record: dict) -> str:
    """The release digest of a record's file listing: two records with equal digests hold the same files."""
    return release_digest((f["path"], f["id"], f["size"], f.get("mode", 0o644)) for f in record.get("files", []))


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COMPRESS_OVER = 64 * 1024  # records of big releases are mostly hex ids: zstd makes them ~5x smaller
_MAX_RECORD = 1 << 30


def encode_record(record: dict) -> bytes:
    """A record as stored: UTF-8 JSON with sorted keys; one zstd frame of it when over 64 KiB."""
    raw = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    if len(raw) <= _COMPRESS_OVER:
        return raw
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(raw)


def parse_json(data: bytes | str) -> Any:
    """JSON from a remote, nested at most MAX_DEPTH levels; ValueError otherwise (never a RecursionError)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    stack = [(value, 1)]
    while stack:  # iterative: a check of nesting must not itself recurse
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_DEPTH:
                    raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
                stack.append((child, depth + 1))
    return value


def decode_record(data: bytes) -> dict:
    """The record in a stored object (plain JSON, or a zstd frame of it); ValueError when damaged."""
    if data[:4] == ZSTD_MAGIC:
        import zstandard

        try:
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=_MAX_RECORD)
        except zstandard.ZstdError as exc:
            raise ValueError(f"cannot decompress: {exc}") from exc
    return parse_json(data)


def is_version(text: str) -> bool:
    """Whether ``text`` is a normalized semantic version (the only names a record file may have)."""
    import semver

    try:
        return str(semver.Version.parse(text)) == text
    except (ValueError, TypeError):
        return False


def record_size_problems(record: dict, raw_lengths: Mapping[str, int]) -> list[str]:
    """Files of a (checked) record whose size is not what their chunks hold, by the chunks' raw lengths.

    Chunks missing from ``raw_lengths`` are not judged here.
    """
    out = []
    for f in record["files"]:
        lengths = [raw_lengths.get(c) for c in f["chunks"]]
        if None not in lengths and sum(lengths) != f["size"]:
            out.append(f"'{f['path']}' is {f['size']} bytes by the record, but its chunks hold {sum(lengths)} bytes")
    return out


def index_bytes(entries: list[packs.PackEntry]) -> bytes:
    """A pack's footer index (also the content of ``index/<pack id>``); its SHA-256 is the pack id."""
    return b"".join(packs.index_record(e) for e in entries)


def pack_size_from_index(entries: list[packs.PackEntry]) -> int:
    """A pack's byte size, computed from its index (entries are contiguous)."""
    end = max((e.offset + e.length for e in entries), default=len(packs.MAGIC))
    return end + len(entries) * packs.INDEX.size + packs.TRAILER.size


class Remote:
    """One remote: a backend plus the layout above. ``name`` labels messages and the catalog cache."""

    def __init__(self, backend, name: str):
        self.backend = backend
        self.name = name

    # -- the marker -------------------------------------------------------------
    def check(self) -> dict:
        """The parsed ``ws-remote.json``; NotARemote when absent, RemoteTooNew when newer than us."""
        try:
            raw = self.backend.get(MARKER)
        except ObjectNotFound:
            raise NotARemote(f"remote {self.name} ({self.backend.url}) is not a ws remote yet "
                             f"(no {MARKER}); push a release to it first") from None
        try:
            info = parse_json(raw)
            fmt = int(info["format"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedRemote(f"remote {self.name}: {MARKER} is damaged ({exc})") from None
        if fmt > FORMAT:
            raise RemoteTooNew(f"remote {self.name} has format {fmt}; this ws reads format {FORMAT}; upgrade ws")
        return info

    def ensure_initialized(self) -> dict:
        """Write ``ws-remote.json`` if the remote is new (create-only, so two pushers agree)."""
        try:
            return self.check()
        except NotARemote:
            pass
        info = {"format": FORMAT, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "layout": "packs/<aa>/<pack id>, index/<pack id>, releases/<title>/<version>.json"}
        try:
            self.backend.put(MARKER, json.dumps(info, indent=1).encode(), exclusive=True)
        except ObjectExists:
            pass  # another pusher initialized it first
        return self.check()

    # -- releases --------------------------------------------------------------
    def scan_releases(self, title: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
        """(title, version) of every release record (of ``title`` only, if given), and the stray keys.

        A record is ``releases/<title>/<version>.json`` with a valid title and a
        normalized semantic version. Anything else under ``releases/`` is a
        stray object: readers skip it (it must not block a pull of the title),
        and ``ws fsck --remote`` reports it.
        """
        found, stray = [], []
        for obj in self.backend.list(f"releases/{title}/" if title else "releases/"):
            parts = obj.key.split("/")
            if (len(parts) == 3 and parts[2].endswith(".json") and TITLE_RE.match(parts[1])
                    and is_version(parts[2][:-5])):
                found.append((parts[1], parts[2][:-5]))
            else:
                stray.append(obj.key)
        return found, stray

    def list_releases(self) -> list[tuple[str, str]]:
        """(title, version) of every release record on the remote (stray objects skipped)."""
        return self.scan_releases()[0]

    def read_release(self, title: str, version: str) -> dict:
        """The release record title@version; UnknownRemoteRelease when absent."""
        key = release_key(title, version)
        try:
            raw = self.backend.get(key)
        except ObjectNotFound:
            raise UnknownRemoteRelease(f"remote {self.name} has no release {title}@{version}") from None
        try:
            record = decode_record(raw)
        except ValueError as exc:
            raise DamagedRemote(f"remote {self.name}: {key} is not a valid release record ({exc})") from None
        if not isinstance(record, dict) or record.get("title") != title or record.get("version") != version:
            raise DamagedRemote(f"remote {self.name}: {key} does not hold {title}@{version}")
        return record

    def write_release(self, record: dict) -> None:
        """Write a record create-only; ObjectExists when the remote already has title@version."""
        self.backend.put(release_key(record["title"], record["version"]), encode_record(record), exclusive=True)

    # -- pack indexes ----------------------------------------------------------
    def list_index_ids(self) -> list[str]:
        """Pack ids that have an index on the remote (complete packs)."""
        return [o.key.split("/", 1)[1] for o in self.backend.list("index/") if o.key.count("/") == 1]

    def read_index(self, pack_id: str) -> list[packs.PackEntry]:
        """A pack's index, verified against the pack id."""
        raw = self.backend.get(index_key(pack_id))
        if hashlib.sha256(raw).hexdigest() != pack_id or len(raw) % packs.INDEX.size:
            raise DamagedRemote(f"remote {self.name}: {index_key(pack_id)} is damaged (does not match its id)")
        return packs.parse_index(raw, len(raw) // packs.INDEX.size)

    def sync_index(self, catalog: Catalog, workers: int = 8) -> int:
        """Bring the catalog's cache of this remote's chunks up to date; returns packs learned.

        Indexes already cached are not fetched again; cached packs the remote no
        longer lists are forgotten (someone pruned the remote).
        """
        from sync.transfer import bounded_map

        listed = set(self.list_index_ids())
        cached = rq.known_packs(catalog, self.name)
        gone = [p for p in cached if p not in listed]
        if gone:
            rq.forget_packs(catalog, self.name, gone)
        new = sorted(listed - set(cached))
        for pack_id, entries in bounded_map(lambda p: (p, self.read_index(p)), new, workers):
            self.remember_pack(catalog, pack_id, entries)
        return len(new)

    def remember_pack(self, catalog: Catalog, pack_id: str, entries: list[packs.PackEntry]) -> None:
        """Record in the catalog that the remote holds a complete pack."""
        chunks = [rq.RemoteChunk(e.id, pack_id, e.offset, e.length, e.raw_length, e.codec) for e in entries]
        rq.add_pack(catalog, self.name, pack_id, pack_size_from_index(entries), chunks)

    def mark_release(self, catalog: Catalog, record: dict, state: str) -> None:
        """Record in the catalog that the remote holds this release."""
        rq.mark_release(catalog, self.name, record["title"], record["version"], record_digest(record), state)


def now_ns() -> int:
    """The current time (a seam for tests)."""
    return time.time_ns()
