"""``ws fsck`` (verify everything) and ``ws gc`` (reclaim unreferenced pack space)."""

from __future__ import annotations

import os
import time

from catalog import history
from catalog import objects as q
from catalog.releases import live_file_ids
from workspace import trees
from workspace.lock import pack_guard
from workspace.objects import packs
from workspace.scan import Progress
from workspace.types import FsckReport, GcReport

REWRITE_WASTE = 0.25  # rewrite a pack when at least this share of it is garbage


def _verify_pack(path: str, report: FsckReport) -> tuple[dict[str, int], set[str]]:
    """Read a pack entry by entry; returns ({chunk id: payload offset} of good chunks, bad chunk ids)."""
    good: dict[str, int] = {}
    bad: set[str] = set()
    try:
        with open(path, "rb") as f:
            for entry, payload in packs.scan_entries(f):
                try:
                    raw = packs.decode(entry.codec, payload, entry.raw_length)
                    ok = len(raw) == entry.raw_length and packs.verify_chunk(entry.id, raw)
                except packs.PackError:
                    ok = False
                if ok:
                    good[entry.id] = entry.offset
                else:
                    bad.add(entry.id)
                    report.problems.append(f"damaged chunk {entry.id[:12]} at offset {entry.offset} of {path}")
        packs.read_index(path)
    except (packs.PackError, OSError) as exc:
        report.problems.append(f"damaged pack {path}: {exc}")
    return good, bad


def fsck(ws, progress: Progress | None = None) -> FsckReport:
    """Re-read every pack and check every chunk hash and every catalog reference."""
    report = FsckReport()
    cat = ws.catalog
    damaged_chunks: set[str] = set()
    recorded = q.all_packs(cat)
    for i, (pack_id, _size, _count) in enumerate(recorded):
        path = ws.store.pack_path(pack_id)
        rows = q.chunks_in_pack(cat, pack_id)
        if not os.path.exists(path):
            report.problems.append(f"pack {pack_id[:12]} is missing ({path})")
            damaged_chunks.update(r.id for r in rows)
            continue
        good, bad = _verify_pack(path, report)
        report.packs += 1
        for r in rows:
            report.chunks += 1
            if good.get(r.id) != r.offset:
                damaged_chunks.add(r.id)
                if r.id not in bad:  # not reached (a damaged entry header) or not where recorded
                    report.problems.append(f"chunk {r.id[:12]} is not intact at offset {r.offset} of {path}")
        if progress:
            progress("checking packs", i + 1, len(recorded))
    damaged_files: set[str] = set()
    files = q.all_files(cat)
    chunk_rows = {r[0] for r in cat.query("SELECT id FROM chunks")}
    for f in files:
        report.files += 1
        missing = [c for c in f.chunk_ids if c not in chunk_rows]
        if missing:
            report.problems.append(f"file {f.id[:12]} refers to unknown chunk {missing[0][:12]}")
        if missing or damaged_chunks.intersection(f.chunk_ids):
            damaged_files.add(f.id)
    known = {f.id for f in files}
    _check_history(ws, report, known, damaged_files)
    return report


def _check_history(ws, report: FsckReport, known_files: set[str], damaged_files: set[str]) -> None:
    cat = ws.catalog
    damaged_paths: dict[str, list[str]] = {}
    for rec in history.all_commits(cat):
        report.commits += 1
        try:
            manifest = trees.flatten(cat, rec.tree_id)
        except (KeyError, ValueError) as exc:
            report.problems.append(f"commit {rec.id[:12]}: tree is missing or unreadable: {exc}")
            continue
        for path, e in manifest.items():
            if e.file_id not in known_files:
                report.problems.append(f"commit {rec.id[:12]}: '{path}' refers to unknown content {e.file_id[:12]}")
                damaged_paths.setdefault(path, []).append(rec.id[:12])
            elif e.file_id in damaged_files:
                damaged_paths.setdefault(path, []).append(rec.id[:12])
        for parent in rec.parents:
            if history.get_commit(cat, parent) is None:
                report.problems.append(f"commit {rec.id[:12]}: parent {parent[:12]} is missing")
    for name, cid in history.list_refs(cat):
        if history.get_commit(cat, cid) is None:
            report.problems.append(f"branch '{name}' points at missing commit {cid[:12]}")
    report.damaged_paths = [f"{p} (in commit {', '.join(sorted(set(c)))})" for p, c in sorted(damaged_paths.items())]


def live_files(ws) -> set[str]:
    """File ids that any commit (reachable or not) or any local release still needs."""
    cat = ws.catalog
    seen_trees: set[str] = set()
    for rec in history.all_commits(cat):
        trees.reachable_trees(cat, rec.tree_id, seen_trees)
    live: set[str] = set()
    for tid in seen_trees:
        data = history.get_tree(cat, tid)
        if data:
            live.update(e.id for e in trees.decode_tree(data) if e.kind == "f")
    return live | live_file_ids(cat)


def gc(ws, progress: Progress | None = None) -> GcReport:
    """Delete unreferenced packs and rewrite mostly-garbage ones.

    New packs are sealed first, then the catalog switches to them in one
    transaction, then old files are deleted: a crash at any point loses nothing.
    """
    report = GcReport()
    cat = ws.catalog
    with ws.lock(), pack_guard(ws.layout.pack_lock, exclusive=True):
        for tmp in ws.store.list_temp_files():  # left by killed writers (we hold the lock)
            report.bytes_freed += os.path.getsize(tmp)
            os.unlink(tmp)
            report.temp_files_deleted += 1
        live = live_files(ws)
        all_files = q.all_files(cat)
        dead_files = [f.id for f in all_files if f.id not in live]
        live_chunks = {c for f in all_files if f.id in live for c in f.chunk_ids}
        recorded = {pid for pid, _, _ in q.all_packs(cat)}
        doomed_paths: list[str] = []
        with ws.store.writer() as writer:
            moves: dict[str, str] = {}
            for pid in sorted(recorded):
                rows = q.chunks_in_pack(cat, pid)
                dead = [r for r in rows if r.id not in live_chunks]
                if not dead:
                    continue
                size = os.path.getsize(ws.store.pack_path(pid)) if os.path.exists(ws.store.pack_path(pid)) else 0
                waste = sum(r.length for r in dead)
                keep = [r for r in rows if r.id in live_chunks]
                if keep and waste < REWRITE_WASTE * max(size, 1):
                    continue
                for r in keep:  # copy live chunks into a new pack (stored bytes as they are)
                    stored = ws.store.read_stored(r)
                    writer.force_add(r.id, r.raw_length, r.codec, stored)
                    moves[r.id] = pid
                report.chunks_dropped += len(dead)
                report.packs_rewritten += 1 if keep else 0
                report.packs_deleted += 0 if keep else 1
                report.bytes_freed += size
                doomed_paths.append(ws.store.pack_path(pid))
            sealed = writer.seal()
            doomed = {os.path.basename(p)[:-5] for p in doomed_paths}
            with cat.write():
                for pack_id, size, rows in sealed:
                    q.add_pack(cat, pack_id, size, rows, time.time_ns())
                    q.move_chunks(cat, rows)
                    report.bytes_freed -= size
                q.delete_chunks(cat, [r[0] for r in cat.query("SELECT id FROM chunks")
                                      if r[0] not in live_chunks])
                for pid in doomed:
                    q.delete_pack(cat, pid)
                q.delete_files(cat, dead_files)
        ws.store.close()
        for path in doomed_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        recorded = {pid for pid, _, _ in q.all_packs(cat)}
        for path in ws.store.list_pack_files():  # sealed by a commit that never landed
            if os.path.basename(path)[:-5] not in recorded:
                report.bytes_freed += os.path.getsize(path)
                os.unlink(path)
                report.packs_deleted += 1
    return report
