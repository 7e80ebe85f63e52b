"""``ws fsck --remote``: check that a remote is whole, optionally reading every byte.

Without ``read_data`` it checks structure: every index matches its pack id and
has its pack (of the right size), every release record parses and names only
chunks some index holds. With ``read_data`` it also downloads every pack and
checks every byte of it (packs.check_pack: headers, every chunk's SHA-256,
the footer index, the pack id). Packs without an index are reported as
leftovers of interrupted uploads: harmless, not counted as damage.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from sync.errors import SyncError
from sync.remote import Remote, pack_key, pack_size_from_index
from sync.transfer import Meter, ProgressFn, bounded_map
from workspace.objects import packs
from workspace.types import CheckReport


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


def check_remote(remote: Remote, read_data: bool = False, progress: ProgressFn | None = None,
                 workers: int = 4, tmp_dir: str | None = None) -> RemoteFsckReport:
    """Check ``remote``; never raises for damage, only for an unreachable remote.

    With ``read_data`` every pack is downloaded (into ``tmp_dir``, one at a
    time per worker, each removed once checked) and checked by the same
    verifier pull uses before it adopts a pack.
    """
    report = RemoteFsckReport(remote.name)
    remote.check()
    pack_sizes = {o.key.rsplit("/", 1)[-1]: o.size for o in remote.backend.list("packs/")}
    index_ids = remote.list_index_ids()
    chunks: dict[str, object] = {}
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
    _check_releases(remote, chunks, report)
    if read_data:
        _read_all(remote, indexes, pack_sizes, report, progress, workers, tmp_dir)
    return report


def _check_releases(remote: Remote, chunks: dict, report: RemoteFsckReport) -> None:
    for title, version in remote.list_releases():
        report.releases += 1
        key = f"releases/{title}/{version}.json"
        try:
            record = remote.read_release(title, version)
            missing = [c for f in record["files"] for c in f["chunks"] if c not in chunks]
        except (SyncError, KeyError, TypeError, json.JSONDecodeError) as exc:
            report.problems.append(f"{key} is damaged: {exc}")
            continue
        if missing:
            report.problems.append(f"{key} needs {len(missing)} chunk(s) no pack holds (first {missing[0][:12]})")


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
                os.unlink(local)  # (for a folder remote, a hard link: the remote's copy stays)
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
