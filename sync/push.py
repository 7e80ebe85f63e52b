"""Push: send releases to a remote, uploading only the chunks it lacks.

Order of writes (DESIGN.md): packs first (several in parallel), each pack's
index after its pack, and the release record last, create-only. A release a
remote lists is therefore always complete, and an interrupted push resumes:
packs whose index made it are known (from ``index/``) and their chunks are not
sent again.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from catalog import objects as q
from catalog import remotes as rq
from catalog.db import Catalog
from sync.errors import ObjectExists, RemoteReleaseConflict, SyncError, UnknownRemoteRelease
from sync.remote import Remote, index_bytes, index_key, pack_key, record_digest
from sync.storage.base import LocalFile
from sync.transfer import DEFAULT_WORKERS, Meter, ProgressFn, bounded_map
from workspace.objects import packs

if TYPE_CHECKING:
    from workspace.objects.store import ObjectStore


@dataclass
class PushResult:
    """What a push did."""

    remote: str
    pushed: list[str] = field(default_factory=list)  # title@version written now
    already: list[str] = field(default_factory=list)  # title@version the remote had (same files)
    packs_uploaded: int = 0
    chunks_uploaded: int = 0
    bytes_uploaded: int = 0  # pack + index bytes sent

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


class LocalChunkMissing(SyncError):
    """A chunk a release needs is not in the local store (exit 6)."""

    exit_code = 6


def push_records(catalog: Catalog, store: ObjectStore, remote: Remote, records: list[dict], tmp_dir: str,
                 progress: ProgressFn | None = None, workers: int = DEFAULT_WORKERS) -> PushResult:
    """Send ``records`` (release records with chunk lists) and the chunks they need to ``remote``."""
    result = PushResult(remote.name)
    remote.ensure_initialized()
    todo = []
    for record in records:
        if _already_there(catalog, remote, record):
            result.already.append(f"{record['title']}@{record['version']}")
        else:
            todo.append(record)
    if not todo:
        return result
    remote.sync_index(catalog, workers=2 * workers)
    needed = _missing_chunks(catalog, remote.name, todo)
    _upload_chunks(catalog, store, remote, needed, tmp_dir, progress, workers, result)
    for record in todo:  # last: the one small object that makes a release visible
        try:
            remote.write_release(record)
        except ObjectExists:  # another pusher won the race; fine if it is the same release
            if not _already_there(catalog, remote, record):
                raise
            result.already.append(f"{record['title']}@{record['version']}")
            continue
        remote.mark_release(catalog, record, "pushed")
        result.pushed.append(f"{record['title']}@{record['version']}")
    return result


def _already_there(catalog: Catalog, remote: Remote, record: dict) -> bool:
    """Whether the remote holds this release; a different one under the same name is a conflict."""
    key = f"{record['title']}@{record['version']}"
    try:
        theirs = remote.read_release(record["title"], record["version"])
    except UnknownRemoteRelease:
        return False
    if record_digest(theirs) != record_digest(record):
        raise RemoteReleaseConflict(f"remote {remote.name} already has a different release {key}; "
                                    "releases are immutable: create a new version")
    remote.mark_release(catalog, record, "seen")
    return True


def _missing_chunks(catalog: Catalog, remote_name: str, records: list[dict]) -> list[str]:
    """Chunk ids the records need that the remote lacks, in first-use order (keeps files together)."""
    order: dict[str, None] = {}
    for record in records:
        for f in record["files"]:
            for c in f["chunks"]:
                order.setdefault(c, None)
    there = rq.chunk_locations(catalog, remote_name, order)
    return [c for c in order if c not in there]


def _upload_chunks(catalog: Catalog, store: ObjectStore, remote: Remote, needed: list[str], tmp_dir: str, progress, workers: int,
                   result: PushResult) -> None:
    """Upload the needed chunks, pack then index, several packs at a time.

    A local pack whose every chunk is needed goes up as it is (same format; a
    folder remote on the same filesystem just links it). The other chunks are
    copied, as stored, into new ~32 MiB packs. Every pack is verified (index
    and each chunk's SHA-256) by the uploading thread, so damaged local bytes
    never reach a remote and the hashing runs on several cores.
    """
    if not needed:
        return
    locs = q.chunk_locations(catalog, needed)
    lost = [c for c in needed if c not in locs]
    if lost:
        raise LocalChunkMissing(f"{len(lost)} chunk(s) to push are missing from the local store "
                                f"(first {lost[0][:12]}); run 'ws fsck'")
    whole, rest = _whole_local_packs(catalog, [locs[c] for c in needed])
    meter = Meter(progress, "uploading", sum(size for _, size in whole)
                  + sum(loc.length + packs.ENTRY.size for loc in rest))
    os.makedirs(tmp_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="push-", dir=tmp_dir)
    built = _build_packs(store, rest, work)
    try:
        items = itertools.chain(((pid, store.pack_path(pid), False) for pid, _ in whole),
                                ((pid, path, True) for pid, path, _ in built))
        upload = lambda item: _upload_one(remote, item, meter)  # noqa: E731
        for pack_id, size, entries in bounded_map(upload, items, workers, window=workers):
            remote.remember_pack(catalog, pack_id, entries)
            result.packs_uploaded += 1
            result.chunks_uploaded += len(entries)
            result.bytes_uploaded += size + len(entries) * packs.INDEX.size
    finally:
        built.close()  # its pack writer is aborted now, on every path, not whenever the generator is collected
        shutil.rmtree(work, ignore_errors=True)


def _whole_local_packs(catalog: Catalog, locs: list) -> tuple[list[tuple[str, int]], list]:
    """(local packs to send as they are, with sizes) and the chunk locations left to repack."""
    by_pack: dict[str, list] = {}
    for loc in locs:
        by_pack.setdefault(loc.pack_id, []).append(loc)
    info = {pid: (size, count) for pid, size, count in q.all_packs(catalog)}
    whole = sorted((pid, info[pid][0]) for pid, chunks in by_pack.items()
                   if pid in info and info[pid][1] == len(chunks))
    keep = {pid for pid, _ in whole}
    return whole, [loc for loc in locs if loc.pack_id not in keep]


def _build_packs(store: ObjectStore, locs: list, work: str):
    """Yield sealed packs (id, path, entries) of ~32 MiB holding the given chunks' stored bytes.

    Payloads are copied as stored (no recompression); the uploading thread
    verifies each pack whole (packs.verify_pack) before sending it.
    """
    writer = None
    try:
        for loc in locs:
            if writer is None:
                writer = packs.PackWriter(work)
            writer.add(loc.id, loc.raw_length, loc.codec, store.read_stored(loc))
            if writer.size >= packs.TARGET_PACK_SIZE:
                sealed, writer = writer.finish(lambda pid: os.path.join(work, pid)), None
                yield sealed
        if writer is not None:
            sealed, writer = writer.finish(lambda pid: os.path.join(work, pid)), None
            yield sealed
    finally:  # an unfinished pack (a read failed, or the caller closed us early) is dropped
        if writer is not None:
            writer.abort()


def _upload_one(remote: Remote, item, meter: Meter):
    """Verify one pack file, upload it, then its index; returns (pack id, size, entries)."""
    pack_id, path, temporary = item
    try:
        entries = packs.verify_pack(path, pack_id)  # damaged local bytes never reach a remote
    except packs.PackError as exc:
        raise LocalChunkMissing(f"local pack {pack_id[:12]} is damaged ({exc}); run 'ws fsck'") from None
    size = os.path.getsize(path)
    remote.backend.put(pack_key(pack_id), LocalFile(path))
    remote.backend.put(index_key(pack_id), index_bytes(entries))
    if temporary:
        os.unlink(path)  # frees disk as we go; the remote has it now
    meter.add(size)
    return pack_id, size, entries
