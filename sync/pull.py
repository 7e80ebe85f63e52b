"""Pull: fetch the chunks of a remote release that the local store lacks.

Chunks are located through the remote's pack indexes (cached in the catalog),
or asked of a backend that knows them (the ws server, ``ChunkQueries``),
fetched with coalesced range GETs in parallel, and each one is verified
(decompressed and SHA-256 checked) before it is stored. A damaged pack on the
remote is named in the error and nothing of it is stored. Writing files into
the working tree is the workspace layer's job (temporary names, whole-file
SHA-256 check, rename).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from catalog import objects as q
from catalog import remotes as rq
from catalog.db import Catalog
from sync.errors import DamagedRemote, ObjectNotFound
from sync.remote import Remote, pack_key, record_size_problems, release_key
from sync.storage.base import ChunkQueries
from sync.transfer import DEFAULT_WORKERS, Meter, ProgressFn, bounded_map, coalesce
from workspace.objects import packs
from workspace.errors import reporting_no_space
from workspace.faults import checkpoint
from workspace.objects.chunking import Piece

if TYPE_CHECKING:
    from workspace.objects.store import ObjectStore


@dataclass
class FetchResult:
    """What a fetch downloaded."""

    chunks_fetched: int = 0
    bytes_fetched: int = 0
    requests: int = 0

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


def needed_chunks(catalog: Catalog, record: dict) -> list[str]:
    """Chunk ids of the record's files that the local store lacks, in file order."""
    order: dict[str, None] = {}
    have_files = q.known_files(catalog, [f["id"] for f in record["files"]])
    for f in record["files"]:
        if f["id"] not in have_files:
            for c in f["chunks"]:
                order.setdefault(c, None)
    have = q.known_chunks(catalog, order)
    return [c for c in order if c not in have]


def check_sizes(catalog: Catalog, remote: Remote, record: dict, workers: int = DEFAULT_WORKERS) -> None:
    """Refuse a (checked) record whose file sizes differ from what their chunks hold, before downloading.

    A file this workspace already has must have its size here; the others'
    chunks must add up to the record's size by the raw lengths in the local
    store or the remote's indexes (a record alone cannot tell; read
    ``sync.remote.record_size_problems``).
    """
    files = record["files"]
    local = q.get_files(catalog, {f["id"] for f in files})
    problems = [f"'{f['path']}' is {f['size']} bytes by the record, but {local[f['id']].size} bytes here"
                for f in files if f["id"] in local and local[f["id"]].size != f["size"]]
    others = [f for f in files if f["id"] not in local]
    wanted = {c for f in others for c in f["chunks"]}
    lengths = {c: loc.raw_length for c, loc in q.chunk_locations(catalog, wanted).items()}
    missing = wanted - lengths.keys()
    if missing:
        lengths.update((c, loc.raw_length) for c, loc in _locate(catalog, remote, sorted(missing), workers)[0].items())
    problems += record_size_problems({"files": others}, lengths)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedRemote(f"remote {remote.name}: {release_key(record['title'], record['version'])} is damaged: "
                            f"{problems[0]}{more}")


def fetch_chunks(catalog: Catalog, store: ObjectStore, remote: Remote, chunk_ids: list[str], progress: ProgressFn | None = None,
                 workers: int = DEFAULT_WORKERS, on_stored: Callable[[list], None] | None = None) -> FetchResult:
    """Download, verify and store ``chunk_ids``; packs and chunk rows are recorded on success.

    ``on_stored(rows)`` is told the chunk locations of each pack right after it
    is recorded (on this thread), so a caller can use those chunks at once.
    """
    result = FetchResult()
    if not chunk_ids:
        return result
    locs, known = _locate(catalog, remote, chunk_ids, workers)
    lost = [c for c in chunk_ids if c not in locs]
    if lost:
        raise DamagedRemote(f"remote {remote.name} lacks {len(lost)} chunk(s) of this release "
                            f"(first {lost[0][:12]}); its packs or indexes are missing")
    whole, rest = _whole_packs(known, locs)
    spans = coalesce(rest, max_span=8 << 20)
    total = sum(s.end - s.start for s in spans) + sum(known[p].size for p in whole)
    meter = Meter(progress, "downloading", total)
    adopt = lambda pack_id: _adopt_pack(store, remote, pack_id, meter)  # noqa: E731
    for pack_id, size, rows in bounded_map(adopt, whole, workers, window=workers + 1):
        q.add_pack(catalog, pack_id, size, rows, time.time_ns())
        if on_stored is not None:
            on_stored(rows)
        result.chunks_fetched += len(rows)
        result.bytes_fetched += size
        result.requests += 1
        checkpoint("pull:fetched")  # tests: killed with some packs recorded, the rest still to fetch
    fetch = lambda span: _fetch_span(remote, span, meter)  # noqa: E731
    with store.writer() as writer:
        # a small window keeps memory bounded: at most workers + 1 spans of 8 MiB in flight
        for pieces, nbytes in bounded_map(fetch, spans, workers, window=workers + 1):
            for piece in pieces:
                writer.add_piece(piece)
            result.chunks_fetched += len(pieces)
            result.bytes_fetched += nbytes
            result.requests += 1
            _record_sealed(catalog, writer, on_stored)
            checkpoint("pull:fetched")
        writer.seal()
        _record_sealed(catalog, writer, on_stored)
    return result


def _record_sealed(catalog: Catalog, writer, on_stored=None) -> None:
    """Record packs sealed since the last call, so an interrupted pull keeps what it verified."""
    now = time.time_ns()
    for pack_id, size, rows in writer.take_sealed():
        q.add_pack(catalog, pack_id, size, rows, now)
        if on_stored is not None:
            on_stored(rows)


def _locate(catalog: Catalog, remote: Remote, chunk_ids: list[str], workers: int) -> tuple[dict, dict]:
    """({chunk: RemoteChunk}, {pack: RemotePack}): asked of a backend that knows its chunks (the ws
    server), else from the catalog's cache of the remote's indexes, brought up to date when behind."""
    if isinstance(remote.backend, ChunkQueries):
        return remote.backend.locate_chunks(chunk_ids)
    if not rq.known_packs(catalog, remote.name):  # nothing cached yet (a clone): read the indexes first
        remote.sync_index(catalog, workers=2 * workers)
    locs = rq.chunk_locations(catalog, remote.name, chunk_ids)
    if len(locs) < len(set(chunk_ids)):
        remote.sync_index(catalog, workers=2 * workers)  # the cache may be behind the remote
        locs = rq.chunk_locations(catalog, remote.name, chunk_ids)
    return locs, rq.known_packs(catalog, remote.name)


def _whole_packs(known: dict, locs: dict) -> tuple[list[str], list]:
    """Split needed chunks into packs needed whole (copied as they are) and the rest (range GETs).

    A clone needs every chunk of most packs: copying those packs whole into the
    local store (the formats are the same) saves unpacking and re-packing them.
    """
    by_pack: dict[str, list] = {}
    for loc in locs.values():
        by_pack.setdefault(loc.pack_id, []).append(loc)
    whole = [p for p, chunks in by_pack.items() if p in known and known[p].chunk_count == len(chunks)]
    rest = [c for p, chunks in by_pack.items() if p not in set(whole) for c in chunks]
    return sorted(whole), rest


def _adopt_pack(store: ObjectStore, remote: Remote, pack_id: str, meter: Meter):
    """Copy a remote pack into the local store after checking every byte of it (packs.check_pack)."""
    with reporting_no_space(store.packs_dir):  # the local disk, whatever error the backend wrapped it in
        return _copy_pack(store, remote, pack_id, meter)


def _copy_pack(store: ObjectStore, remote: Remote, pack_id: str, meter: Meter):
    key = pack_key(pack_id)
    os.makedirs(store.packs_dir, exist_ok=True)
    tmp = os.path.join(store.packs_dir, f"tmp-{uuid.uuid4().hex}.pack")  # 'ws gc' removes leftovers
    try:
        try:
            size = remote.backend.get_file(key, tmp)
        except ObjectNotFound as exc:
            raise DamagedRemote(f"remote {remote.name}: {key} is missing but its index is there") from exc
        try:
            entries = packs.verify_pack(tmp, pack_id)
        except packs.PackError as exc:
            raise DamagedRemote(f"remote {remote.name}: {key} is damaged ({exc})") from None
        rows = [q.ChunkLocation(e.id, pack_id, e.offset, e.length, e.raw_length, e.codec, e.kind) for e in entries]
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = store.pack_path(pack_id)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp, final)
        packs.fsync_dir(os.path.dirname(final))  # the rename is durable before the catalog records it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meter.add(size)
    return pack_id, size, rows


def _fetch_span(remote: Remote, span, meter: Meter) -> tuple[list[Piece], int]:
    """GET one byte range of a pack and verify every chunk in it (the one check a fetched chunk gets)."""
    key = pack_key(span.pack_id)
    try:
        data = remote.backend.get(key, span.start, span.end)
    except ObjectNotFound as exc:
        raise DamagedRemote(f"remote {remote.name}: {key} is missing but its index is there") from exc
    view = memoryview(data)
    pieces = []
    for c in span.chunks:
        payload = view[c.offset - span.start: c.offset - span.start + c.length]
        try:
            packs.verified_chunk(c.chunk_id, c.codec, payload, c.raw_length)
        except packs.PackError as exc:
            raise DamagedRemote(f"remote {remote.name}: {key} is damaged ({exc})") from None
        pieces.append(Piece(c.chunk_id, c.raw_length, c.codec, payload))
    meter.add(span.end - span.start)
    return pieces, span.end - span.start
