"""``ws fsck --remote``: check that a remote is whole, optionally reading every byte.

Without ``read_data`` it checks structure: every index matches its pack id and
has its pack (of the right size), every release record passes the checks pull
makes before it fetches anything (the same function), names only chunks some
index holds, and gives each file the size its chunks hold. With ``read_data``
it also downloads every pack and checks every byte of it (packs.check_pack:
headers, every chunk's SHA-256, the footer index, the pack id), and hashes
each file of several chunks against its id. Packs without an index are
reported as leftovers of interrupted uploads, objects under ``releases/``
that are not records as strays: both harmless (pull skips them), not damage.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Callable

from sync.errors import SyncError
from sync.remote import Remote, pack_key, pack_size_from_index, record_size_problems, release_key
from sync.transfer import Meter, ProgressFn, bounded_map
from workspace.errors import WorkspaceError
from workspace.objects import packs
from workspace.reports import CheckReport


@dataclass
class RemoteFsckReport(CheckReport):
    """What ``fsck --remote`` checked and found (orphan packs are not damage)."""

    remote: str
    packs: int = 0
    chunks: int = 0
    releases: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    orphan_packs: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)  # objects under releases/ that are not records: skipped


def check_remote(remote: Remote, read_data: bool = False, progress: ProgressFn | None = None,
                 workers: int = 4, tmp_dir: str | None = None,
                 check_record: Callable[[dict], object] | None = None) -> RemoteFsckReport:
    """Check ``remote``; never raises for damage, only for an unreachable remote.

    ``check_record`` is the check pull makes of a record before it fetches
    anything (``workspace.releases.records.check_record``, raising on a bad
    record): every record goes through it, then its sizes are compared with
    what its chunks hold by the indexes. With ``read_data`` every pack is
    downloaded (into ``tmp_dir``, one at a time per worker, each removed once
    checked) and checked by the same verifier pull uses before it adopts a
    pack, and every file of several chunks is read and hashed against its id,
    as pull hashes it before writing it.
    """
    report = RemoteFsckReport(remote.name)
    remote.check()
    pack_sizes = {o.key.rsplit("/", 1)[-1]: o.size for o in remote.backend.list("packs/")}
    index_ids = remote.list_index_ids()
    chunks: dict[str, tuple] = {}
    indexes = {}
    for pack_id in index_ids:
        try:
            entries = remote.read_index(pack_id)
        except SyncError as exc:
            report.problems.append(str(exc))
            continue
        indexes[pack_id] = entries
        size = pack_sizes.get(pack_id)
        if size is None:
            report.problems.append(f"{pack_key(pack_id)} is missing (its index is there)")
        elif size != pack_size_from_index(entries):
            report.problems.append(f"{pack_key(pack_id)} has {size} bytes, its index says "
                                   f"{pack_size_from_index(entries)}")
        for e in entries:
            chunks[e.id] = (pack_id, e)
    report.packs = len(indexes)
    report.chunks = len(chunks)
    report.orphan_packs = sorted(pack_key(p) for p in pack_sizes if p not in indexes)
    files = _check_releases(remote, chunks, report, check_record)
    if read_data:
        _read_all(remote, indexes, pack_sizes, report, progress, workers, tmp_dir)
        _check_file_contents(remote, files, chunks, report, workers)
    return report


def _check_releases(remote: Remote, chunks: dict, report: RemoteFsckReport,
                    check_record: Callable[[dict], object] | None) -> dict[tuple, tuple[str, str]]:
    """Check every record; returns the files of several chunks to hash: (id, chunks) -> (record key, path)."""
    found, report.stray = remote.scan_releases()
    lengths = {cid: e.raw_length for cid, (_pack, e) in chunks.items()}
    files: dict[tuple, tuple[str, str]] = {}
    for title, version in found:
        report.releases += 1
        key = release_key(title, version)
        try:
            record = remote.read_release(title, version)
            if check_record is not None:
                check_record(record)
            missing = [c for f in record["files"] for c in f["chunks"] if c not in chunks]
        except (SyncError, WorkspaceError, KeyError, TypeError) as exc:
            report.problems.append(f"{key} is damaged: {exc}")
            continue
        if missing:
            report.problems.append(f"{key} needs {len(missing)} chunk(s) no pack holds (first {missing[0][:12]})")
            continue
        sizes = record_size_problems(record, lengths)
        if sizes:
            report.problems.append(f"{key} is damaged: {sizes[0]}" + (f" (and {len(sizes) - 1} more)"
                                                                       if len(sizes) > 1 else ""))
            continue
        for f in record["files"]:
            if len(f["chunks"]) > 1:  # a file of one chunk is that chunk: the pack check covers it
                files.setdefault((f["id"], tuple(f["chunks"])), (key, f["path"]))
    return files


def _check_file_contents(remote: Remote, files: dict[tuple, tuple[str, str]], chunks: dict,
                         report: RemoteFsckReport, workers: int) -> None:
    """Join each file's chunks (each verified on the way) and check the whole against its id, as pull does."""
    def check(item) -> tuple[str | None, int]:
        (file_id, chunk_ids), (key, path) = item
        whole = hashlib.sha256()
        nbytes = 0
        for cid in chunk_ids:
            pack_id, e = chunks[cid]
            try:
                payload = remote.backend.get(pack_key(pack_id), e.offset, e.offset + e.length)
                whole.update(packs.verified_chunk(cid, e.codec, payload, e.raw_length))
            except (SyncError, packs.PackError) as exc:
                return f"{key}: '{path}' cannot be read: {exc}", nbytes
            nbytes += e.length
        if whole.hexdigest() != file_id:
            return f"{key} is damaged: '{path}' does not match its id (its chunks join into other bytes)", nbytes
        return None, nbytes

    for problem, nbytes in bounded_map(check, sorted(files.items()), workers):
        report.bytes_read += nbytes
        if problem:
            report.problems.append(problem)


def _read_all(remote: Remote, indexes: dict, pack_sizes: dict, report: RemoteFsckReport, progress,
              workers: int, tmp_dir: str | None) -> None:
    """Download every indexed pack and check every byte of it with the one pack verifier."""
    todo = sorted(p for p in indexes if p in pack_sizes)
    meter = Meter(progress, "verifying", sum(pack_sizes[p] for p in todo))
    work = tempfile.mkdtemp(prefix="fsck-remote-", dir=tmp_dir)

    def verify(pack_id: str) -> tuple[str | None, int]:
        key = pack_key(pack_id)
        local = os.path.join(work, pack_id)
        try:
            size = remote.backend.get_file(key, local)
            with open(local, "rb") as f:
                check = packs.check_pack(f, pack_id)
        except SyncError as exc:
            return f"{key}: {exc}", 0
        finally:
            if os.path.exists(local):
                os.unlink(local)
        meter.add(size)
        if not check.ok:
            more = f" and {len(check.problems) - 1} more problem(s)" if len(check.problems) > 1 else ""
            return f"{key} is damaged ({check.problems[0]}{more})", size
        return None, size

    try:
        for problem, nbytes in bounded_map(verify, todo, workers):
            report.bytes_read += nbytes
            if problem:
                report.problems.append(problem)
    finally:
        shutil.rmtree(work, ignore_errors=True)
