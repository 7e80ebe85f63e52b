"""``ws fsck`` (verify everything) and ``ws gc`` (reclaim unreferenced pack space)."""

from __future__ import annotations

import os
import time

from catalog import history
from catalog import objects as q
from catalog.releases import live_file_ids
from workspace.history import trees
from workspace.lock import pack_guard
from workspace.objects import packs
from workspace.errors import DamagedObjectError
from workspace.types import Progress
from workspace.types import FsckReport, GcReport

REWRITE_WASTE = 0.25  # rewrite a pack when at least this share of it is garbage


class CatalogLooksEmpty(DamagedObjectError):
    """gc found sealed packs but a catalog without any commit or file: damaged or re-created (exit 6)."""


def _check_file(path: str, pack_id: str, report, what: str = "pack", on_chunk=None) -> packs.PackCheck | None:
    """Run the one pack verifier on a pack file; its problems go into ``report.problems``."""
    try:
        with open(path, "rb") as f:
            check = packs.check_pack(f, pack_id, on_chunk)
    except OSError as exc:
        report.problems.append(f"cannot read {what} {path}: {exc}")
        return None
    report.problems.extend(f"damaged {what} {path}: {p}" for p in check.structure)
    report.problems.extend(f"damaged chunk {e.id[:12]} at offset {e.offset} of {path}" for e in check.damaged)
    return check


def fsck(ws, progress: Progress | None = None) -> FsckReport:
    """Re-read every pack and check every byte, every chunk hash and every catalog reference.

    Pack files the catalog does not know are listed in ``unknown_packs`` (a
    leftover of an interrupted commit is normal: ``ws gc`` reclaims it); they
    are problems only when they are damaged, because then gc keeps them.
    """
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
        check = _check_file(path, pack_id, report)
        good = {e.id: e.offset for e in check.entries} if check else {}
        bad = {e.id for e in check.damaged} if check else set()
        report.packs += 1
        for r in rows:
            report.chunks += 1
            if good.get(r.id) != r.offset:
                damaged_chunks.add(r.id)
                if r.id not in bad:  # not reached (a damaged entry header) or not where recorded
                    report.problems.append(f"chunk {r.id[:12]} is not intact at offset {r.offset} of {path}")
        if progress:
            progress("checking packs", i + 1, len(recorded))
    _check_unknown_packs(ws, {pid for pid, _, _ in recorded}, report)
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


def _check_unknown_packs(ws, recorded: set[str], report: FsckReport) -> None:
    """List pack files the catalog does not record; those the verifier rejects are problems too."""
    for path in ws.store.list_pack_files():
        if _pack_id_of(path) in recorded:
            continue
        before = len(report.problems)
        _check_file(path, _pack_id_of(path), report, what="unknown pack")
        if len(report.problems) == before:
            report.unknown_packs.append(f"unknown pack {path} (not in the catalog)")
        else:  # gc keeps it: say so where the problem is named
            report.problems[before:] = [p.replace(path, f"{path} (not in the catalog)", 1)
                                        for p in report.problems[before:]]


def _pack_id_of(path: str) -> str:
    """The pack id a pack file's name claims (``<aa>/<id>.pack``)."""
    return os.path.basename(path)[: -len(".pack")]


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

    New packs are sealed first (every chunk copied into them verified), then
    the catalog switches to them in one transaction, then old files are
    deleted: a crash at any point loses nothing. A pack file the catalog does
    not locate any chunk in is deleted only when it is proved to hold nothing
    a file needs (see :func:`_reclaim_unlocated`); anything doubtful is kept
    and named in ``report.kept``.
    """
    report = GcReport()
    cat = ws.catalog
    # the one lock order: pack guard first, then the workspace lock (pull holds the guard
    # while it downloads and takes the workspace lock after; the other order could deadlock)
    with pack_guard(ws.layout.pack_lock, exclusive=True), ws.lock():
        _refuse_an_empty_catalog(ws)
        for tmp in ws.store.list_temp_files():  # left by killed writers (we hold both locks)
            report.bytes_freed += os.path.getsize(tmp)
            os.unlink(tmp)
            report.temp_files_deleted += 1
        live = live_files(ws)
        all_files = q.all_files(cat)
        dead_files = [f.id for f in all_files if f.id not in live]
        live_chunks = {c for f in all_files if f.id in live for c in f.chunk_ids}
        doomed_paths = _repack(ws, live_chunks, dead_files, report)
        ws.store.close()
        for path in doomed_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        _reclaim_unlocated(ws, report)
    return report


def _refuse_an_empty_catalog(ws) -> None:
    """A catalog with no commit and no file next to sealed packs was lost or re-created: touch nothing."""
    cat = ws.catalog
    if cat.query_one("SELECT 1 FROM commits LIMIT 1") or cat.query_one("SELECT 1 FROM files LIMIT 1"):
        return
    found = ws.store.list_pack_files()
    if found:
        raise CatalogLooksEmpty(
            f"the catalog has no commits and no files, but {len(found)} pack(s) hold data: it may be "
            "damaged or re-created; gc deleted nothing; run 'ws fsck --rebuild-catalog'")


def _repack(ws, live_chunks: set[str], dead_files: list[str], report: GcReport) -> list[str]:
    """Copy the live chunks of mostly-dead packs into new ones and switch the catalog; returns packs to delete."""
    cat = ws.catalog
    doomed_paths: list[str] = []
    with ws.store.writer() as writer:
        for pid, _size, _count in q.all_packs(cat):
            rows = q.chunks_in_pack(cat, pid)
            dead = [r for r in rows if r.id not in live_chunks]
            if not dead:
                continue
            path = ws.store.pack_path(pid)
            size = os.path.getsize(path) if os.path.exists(path) else 0
            keep = [r for r in rows if r.id in live_chunks]
            if keep and sum(r.length for r in dead) < REWRITE_WASTE * max(size, 1):
                continue
            if keep and not _copy_verified(ws, pid, keep, writer, report):
                continue
            report.chunks_dropped += len(dead)
            report.packs_rewritten += 1 if keep else 0
            report.packs_deleted += 0 if keep else 1
            report.bytes_freed += size
            doomed_paths.append(path)
        sealed = writer.seal()
        doomed = {_pack_id_of(p) for p in doomed_paths}
        with cat.write():
            for pack_id, size, rows in sealed:
                q.add_pack(cat, pack_id, size, rows, time.time_ns())
                q.move_chunks(cat, rows)
                report.bytes_freed -= size
            q.delete_chunks(cat, [r[0] for r in cat.query("SELECT id FROM chunks") if r[0] not in live_chunks])
            for pid in doomed:
                q.delete_pack(cat, pid)
            q.delete_files(cat, dead_files)
    return doomed_paths


def _copy_verified(ws, pack_id: str, keep: list, writer, report: GcReport) -> bool:
    """Copy ``keep`` (live chunks of one pack) into ``writer``, each verified; False (pack kept) if any fails."""
    wanted = {(r.id, r.offset) for r in keep}
    found: dict[str, tuple] = {}

    def take(entry, payload) -> None:  # called only for chunks that verified
        if (entry.id, entry.offset) in wanted:
            found[entry.id] = (entry.raw_length, entry.codec, bytes(payload))

    path = ws.store.pack_path(pack_id)
    check = _check_file(path, pack_id, FsckReport(), on_chunk=take)
    lost = [r for r in keep if r.id not in found]
    if check is None or lost:
        report.kept.append(f"pack {pack_id[:12]}: {len(lost) if check else len(keep)} live chunk(s) fail "
                           "verification, so it is not rewritten; run 'ws fsck'")
        return False
    for r in keep:  # stored bytes as they are (no recompression), in their old order
        writer.force_add(r.id, *found[r.id])
    return True


def _reclaim_unlocated(ws, report: GcReport) -> None:
    """Delete pack files no chunk row points into, when that is proved to lose nothing.

    Such a pack is a leftover (a commit killed after sealing, a duplicate of
    a concurrent pull) or a pack a damaged catalog forgot. It goes only if it
    reads cleanly (the one pack verifier) and each of its chunks is either
    needed by no file row or stored in another pack that exists.
    """
    cat = ws.catalog
    home = dict(cat.query("SELECT id, pack_id FROM chunks"))
    located = set(home.values())
    needed = {c for f in q.all_files(cat) for c in f.chunk_ids}
    recorded = {pid for pid, _, _ in q.all_packs(cat)}
    for path in ws.store.list_pack_files():
        pid = _pack_id_of(path)
        if pid in located:
            continue
        probe = FsckReport()
        check = _check_file(path, pid, probe)
        if check is None or not check.ok:
            report.kept.append(f"unknown pack {path} (not in the catalog) is unreadable, kept: "
                               f"{probe.problems[0] if probe.problems else 'cannot be read'}")
            continue
        only_copy = [e.id for e in check.index if e.id in needed
                     and not (e.id in home and os.path.exists(ws.store.pack_path(home[e.id])))]
        if only_copy:
            report.kept.append(f"unknown pack {path} (not in the catalog) holds the only copy of "
                               f"{len(only_copy)} chunk(s) files need, kept; run 'ws fsck --rebuild-catalog'")
            continue
        if pid in recorded:
            q.delete_pack(cat, pid)
        report.bytes_freed += os.path.getsize(path)
        os.unlink(path)
        report.packs_deleted += 1
