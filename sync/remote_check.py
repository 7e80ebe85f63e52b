"""``ws fsck --remote``: check that a remote is whole, optionally reading every byte.

Without ``read_data`` it checks structure: every index matches its pack id and
has its pack (of the right size), every release record parses and names only
chunks some index holds. With ``read_data`` it also downloads every pack and
verifies every chunk's SHA-256. Packs without an index are reported as
leftovers of interrupted uploads: harmless, not counted as damage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from sync.errors import SyncError
from sync.remote import Remote, pack_key, pack_size_from_index
from sync.transfer import Meter, ProgressFn, bounded_map, coalesce
from workspace.objects import packs


@dataclass
class RemoteFsckReport:
    """What ``fsck --remote`` checked and found."""

    remote: str
    packs: int = 0
    chunks: int = 0
    releases: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    orphan_packs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No damage found (orphan packs are not damage)."""
        return not self.problems

    def to_dict(self) -> dict:
        """For --json."""
        d = asdict(self)
        d["ok"] = self.ok
        return d


def check_remote(remote: Remote, read_data: bool = False, progress: ProgressFn | None = None,
                 workers: int = 4) -> RemoteFsckReport:
    """Check ``remote``; never raises for damage, only for an unreachable remote."""
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
        _read_all(remote, indexes, pack_sizes, report, progress, workers)
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
              workers: int) -> None:
    """Download every indexed pack in spans and verify each chunk."""
    from catalog.remotes import RemoteChunk

    locs = [RemoteChunk(e.id, pid, e.offset, e.length, e.raw_length, e.codec)
            for pid, entries in indexes.items() if pid in pack_sizes for e in entries]
    spans = coalesce(locs, max_gap=1 << 30)
    meter = Meter(progress, "verifying", sum(s.end - s.start for s in spans))

    def verify(span) -> tuple[str | None, int]:
        try:
            data = memoryview(remote.backend.get(pack_key(span.pack_id), span.start, span.end))
        except SyncError as exc:
            return f"{pack_key(span.pack_id)}: {exc}", 0
        for c in span.chunks:
            payload = data[c.offset - span.start: c.offset - span.start + c.length]
            try:
                raw = packs.decode(c.codec, payload, c.raw_length) if c.codec else payload
            except packs.PackError:
                raw = b""
            if not packs.verify_chunk(c.chunk_id, raw):
                return f"{pack_key(span.pack_id)} is damaged (chunk {c.chunk_id[:12]} fails its SHA-256)", len(data)
        meter.add(len(data))
        return None, len(data)

    damaged: set[str] = set()
    for problem, nbytes in bounded_map(verify, spans, workers):
        report.bytes_read += nbytes
        if problem and problem.split(" ")[0] not in damaged:
            damaged.add(problem.split(" ")[0])
            report.problems.append(problem)
