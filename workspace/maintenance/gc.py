"""``ws gc``: reclaim pack space no commit or release needs, without ever losing what one does.

``ws gc --prune[=AGE]`` also drops commits nothing reaches: a commit is kept
when a branch, HEAD, a release, a job record (its input and output commits,
and the output commits of jobs deleted with ``--keep-outputs``) or a commit
younger than AGE reaches it (through parents). The dropped commits leave the
catalog and their history objects (the commit, the trees and chunk lists only
they used) leave the packs: a pack holding one is always rewritten, so
``ws fsck --rebuild-catalog`` cannot find them again. Their data chunks then
go like any other chunk no commit or release needs. ``ws squash`` rewrites a
branch and then prunes exactly the commits it replaced (whatever their age).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from catalog import history
from catalog import objects as q
from catalog.releases import live_file_ids
from catalog.jobs import job_commits
from catalog.releases import list_releases
from workspace.errors import DamagedObjectError, InvalidArgument
from workspace.history import reffiles, refs, trees
from workspace.lock import pack_guard
from workspace.maintenance.fsck import check_pack_file, pack_id_of
from workspace.objects import history as objects
from workspace.objects.packs import KIND_CHUNK
from workspace.objects.store import StoreWriter
from workspace.repo import Repo
from workspace.tree.leftovers import remove_dead_temp_files
from workspace.reports import FsckReport, GcReport
from workspace.types import Progress

REWRITE_WASTE = 0.25  # rewrite a pack when at least this share of it is garbage


class CatalogLooksEmpty(DamagedObjectError):
    """gc found sealed packs but a catalog without any commit or file: damaged or re-created (exit 6)."""


def live_files(repo: Repo) -> set[str]:
    """File ids that any commit (reachable or not) or any local release still needs."""
    return _live(repo)[0]


# -- pruning ------------------------------------------------------------------------------
DEFAULT_PRUNE_AGE = "2.weeks"
_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)[ .]?(s|sec|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?|w|weeks?|"
                     r"months?|y|years?)(?:[ .]ago)?$")
_AGE_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400, "y": 365 * 86400}


def parse_age(text: str, now_ns: int | None = None) -> int | None:
    """The cut-off (ns) of ``--prune=AGE``: commits older than it may go. ``now`` is now; ``never`` is None.

    AGE is written as git writes its expiry times: ``2.weeks``, ``3.days.ago``,
    ``3d``, ``12h``, ``90m`` (minutes), ``6.months``, ``1y``, ``now``/``never``, or a
    date (``2026-01-31``, UTC unless it says otherwise).
    """
    now = now_ns or time.time_ns()
    t = text.strip().lower()
    if t == "now":
        return now
    if t == "never":
        return None
    m = _AGE_RE.match(t)
    if not m:
        from datetime import datetime, timezone

        try:  # a date, as git also takes: commits before it may go
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"--prune={text}: expected an age like 2.weeks, 3d, 12h, 6.months, 'now', "
                                  "or a date like 2026-01-31") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return int(when.timestamp() * 1e9)
    unit = m.group(2)
    key = "mo" if unit.startswith("month") else unit[0]
    return now - int(float(m.group(1)) * _AGE_S[key] * 1e9)


def prune_roots(repo: Repo, extra: set[str] | frozenset = frozenset()) -> set[str]:
    """The commits that keep history alive: branches (ref files and catalog), HEAD, releases, job records."""
    cat = repo.catalog
    roots = set(extra)
    roots.update(reffiles.read_refs(repo.layout).values())
    roots.update(c for _, c in history.list_refs(cat))
    _, head = refs.read_head(cat)
    if head:
        roots.add(head)
    roots.update(r.commit_id for r in list_releases(cat) if r.commit_id)
    roots.update(job_commits(cat))
    return {r for r in roots if r}


def reach(parents: dict[str, list[str]], roots: set[str]) -> set[str]:
    """The commits ``roots`` reach through parents (themselves included), given every commit's parents."""
    keep: set[str] = set()
    todo = [r for r in roots if r in parents]
    while todo:
        c = todo.pop()
        if c in keep:
            continue
        keep.add(c)
        todo.extend(p for p in parents.get(c, []) if p not in keep)
    return keep


def plan_prune(repo: Repo, cutoff_ns: int | None, extra_roots: set[str] | frozenset = frozenset(),
               only: set[str] | None = None) -> list[str]:
    """The commits ``--prune`` drops: reached by no root and older than the cut-off (None: none at all).

    With ``only`` (``ws squash``), just those of them, whatever their age.
    """
    if only is None and cutoff_ns is None:  # --prune=never: no commit needs reading
        return []
    commits = history.all_commits(repo.catalog)
    parents = {c.id: c.parents for c in commits}
    roots = prune_roots(repo, extra_roots)
    if only is None:
        roots |= {c.id for c in commits if c.time_ns >= cutoff_ns}
    else:
        roots |= {c.id for c in commits if c.id not in only}
    keep = reach(parents, roots)
    return [c.id for c in commits if c.id not in keep]


def _live(repo: Repo, dropped: set[str] | frozenset = frozenset(),
          extra_trees: set[str] | frozenset = frozenset()) -> tuple[set[str], set[str]]:
    """(live file ids, the history objects of every commit but ``dropped``: commit and tree ids)."""
    cat = repo.catalog
    seen_trees: set[str] = set()
    commits = [c for c in history.all_commits(cat) if c.id not in dropped]
    for tid in extra_trees:
        trees.reachable_trees(cat, tid, seen_trees)
    for rec in commits:
        trees.reachable_trees(cat, rec.tree_id, seen_trees)
    live: set[str] = set()
    for tid in seen_trees:
        data = history.get_tree(cat, tid)
        if data:
            live.update(e.id for e in trees.decode_tree(data) if e.kind == "f")
    return live | live_file_ids(cat), {rec.id for rec in commits} | seen_trees


def _file_objects(files: list[q.FileInfo]) -> set[str]:
    """The ids of the chunk-list objects of files made of several chunks."""
    return {objects.object_id(objects.encode_file(objects.FileObject(f.id, f.size, f.chunk_ids)))
            for f in files if objects.needs_file_object(f.id, f.chunk_ids)}


def gc(repo: Repo, progress: Progress | None = None, *, prune: str | None = None, dry_run: bool = False,
       extra_roots: set[str] | frozenset = frozenset()) -> GcReport:
    """Delete unreferenced packs and rewrite mostly-garbage ones; with ``prune`` (an AGE), drop old
    unreachable commits first (see the module's text). ``dry_run``: only count what would go.

    New packs are sealed first (every chunk copied into them verified), then
    the catalog switches to them in one transaction, then old files are
    deleted: a crash at any point loses nothing. A pack file the catalog does
    not locate any chunk in is deleted only when it is proved to hold nothing
    a file needs (see :func:`_reclaim_unlocated`); anything doubtful is kept
    and named in ``report.kept``.
    """
    cutoff = parse_age(prune) if prune is not None else None
    # the one lock order: pack guard first, then the workspace lock (pull holds the guard
    # while it downloads and takes the workspace lock after; the other order could deadlock)
    with pack_guard(repo.layout.pack_lock, exclusive=True), repo.lock():
        dropped = plan_prune(repo, cutoff, extra_roots) if prune is not None else []
        return collect(repo, dropped, dry_run)


def collect(repo: Repo, dropped: list[str], dry_run: bool = False,
            extra_trees: set[str] | frozenset = frozenset()) -> GcReport:
    """The body of gc, with both locks held by the caller: drop the ``dropped`` commits, then reclaim.

    ``extra_trees``: root trees of commits not recorded yet (a squash's dry run counts with them).
    """
    report = GcReport(commits_dropped=len(dropped), dry_run=dry_run)
    cat = repo.catalog
    _refuse_an_empty_catalog(repo)
    if not dry_run:
        for tmp in repo.store.list_temp_files():  # left by killed writers (we hold both locks)
            report.bytes_freed += os.path.getsize(tmp)
            os.unlink(tmp)
            report.temp_files_deleted += 1
        report.temp_files_deleted += remove_dead_temp_files(repo, everywhere=True)  # .ws-tmp-* in the tree
    gone = set(dropped)
    live, history_ids = _live(repo, gone, extra_trees)
    all_files = q.all_files(cat)
    dead_files = [f.id for f in all_files if f.id not in live]
    # what must stay: the data chunks of live files and the history objects (commits,
    # trees, chunk lists of live files) that make the catalog rebuildable
    live_chunks = {c for f in all_files if f.id in live for c in f.chunk_ids}
    live_chunks |= history_ids | _file_objects([f for f in all_files if f.id in live])
    if dry_run:
        _count(repo, live_chunks, dead_files, report)
        return report
    report.files_dropped = len(dead_files)
    dead_trees = _trees_of(repo, gone) - history_ids
    doomed_paths = _repack(repo, live_chunks, dead_files, report, dropped, dead_trees)
    repo.store.close()
    for path in doomed_paths:
        Path(path).unlink(missing_ok=True)
    _reclaim_unlocated(repo, live_chunks, report)
    return report


def _trees_of(repo: Repo, commit_ids: set[str]) -> set[str]:
    seen: set[str] = set()
    for cid in commit_ids:
        rec = history.get_commit(repo.catalog, cid)
        if rec is not None:
            trees.reachable_trees(repo.catalog, rec.tree_id, seen)
    return seen


def _count(repo: Repo, live_chunks: set[str], dead_files: list[str], report: GcReport) -> None:
    """What a gc would free, without changing anything: the stored bytes of every chunk nothing needs."""
    cat = repo.catalog
    for pid, _size, _count in q.all_packs(cat):
        dead = [r for r in q.chunks_in_pack(cat, pid) if r.id not in live_chunks]
        report.chunks_dropped += len(dead)
        report.bytes_freed += sum(r.length for r in dead)
    report.files_dropped = len(dead_files)
    report.temp_files_deleted = len(repo.store.list_temp_files())


def _refuse_an_empty_catalog(repo: Repo) -> None:
    """A catalog with no commit and no file next to sealed packs was lost or re-created: touch nothing."""
    if history.has_commits(repo.catalog) or q.has_files(repo.catalog):
        return
    found = repo.store.list_pack_files()
    if found:
        raise CatalogLooksEmpty(
            f"the catalog has no commits and no files, but {len(found)} pack(s) hold data: it may be "
            "damaged or re-created; gc deleted nothing; run 'ws fsck --rebuild-catalog'")


def _repack(repo: Repo, live_chunks: set[str], dead_files: list[str], report: GcReport,
            dropped: list[str] | None = None, dead_trees: set[str] | None = None) -> list[str]:
    """Copy the live chunks of mostly-dead packs into new ones and switch the catalog; returns packs to delete.

    A pack holding a dead history object is rewritten however little of it is
    dead: otherwise a rebuilt catalog would find a dropped commit (or a chunk
    list whose chunks are gone) in it again.
    """
    cat = repo.catalog
    doomed_paths: list[str] = []
    with repo.store.writer() as writer:
        for pid, _size, _count in q.all_packs(cat):
            rows = q.chunks_in_pack(cat, pid)
            dead = [r for r in rows if r.id not in live_chunks]
            if not dead:
                continue
            path = repo.store.pack_path(pid)
            size = os.path.getsize(path) if os.path.exists(path) else 0
            keep = [r for r in rows if r.id in live_chunks]
            history_dead = any(r.kind != KIND_CHUNK for r in dead)
            if keep and not history_dead and sum(r.length for r in dead) < REWRITE_WASTE * max(size, 1):
                continue
            if keep and not _copy_verified(repo, pid, keep, writer, report):
                continue
            report.chunks_dropped += len(dead)
            report.packs_rewritten += 1 if keep else 0
            report.packs_deleted += 0 if keep else 1
            report.bytes_freed += size
            doomed_paths.append(path)
        sealed = writer.seal()
        doomed = {pack_id_of(p) for p in doomed_paths}
        with cat.write():
            for pack_id, size, rows in sealed:
                q.add_pack(cat, pack_id, size, rows, time.time_ns())
                q.move_chunks(cat, rows)
                report.bytes_freed -= size
            q.delete_chunks(cat, [c for c in q.all_chunk_ids(cat) if c not in live_chunks])
            for pid in doomed:
                q.delete_pack(cat, pid)
            q.delete_files(cat, dead_files)
            if dropped:
                history.delete_commits(cat, dropped)
                history.delete_trees(cat, dead_trees or set())
    return doomed_paths


def _copy_verified(repo: Repo, pack_id: str, keep: list[q.ChunkLocation], writer: StoreWriter,
                   report: GcReport) -> bool:
    """Copy ``keep`` (live chunks of one pack) into ``writer``, each verified; False (pack kept) if any fails."""
    wanted = {(r.id, r.offset) for r in keep}
    found: dict[str, tuple] = {}

    def take(entry, payload) -> None:  # called only for chunks that verified
        if (entry.id, entry.offset) in wanted:
            found[entry.id] = (entry.raw_length, entry.codec, bytes(payload))

    path = repo.store.pack_path(pack_id)
    check = check_pack_file(path, pack_id, FsckReport(), on_chunk=take)
    lost = [r for r in keep if r.id not in found]
    if check is None or lost:
        report.kept.append(f"pack {pack_id[:12]}: {len(lost) if check else len(keep)} live chunk(s) fail "
                           "verification, so it is not rewritten; run 'ws fsck'")
        return False
    for r in keep:  # stored bytes as they are (no recompression), in their old order, kind kept
        writer.force_add(r.id, *found[r.id], kind=r.kind)
    return True


def _reclaim_unlocated(repo: Repo, live: set[str], report: GcReport) -> None:
    """Delete pack files no chunk row points into, when that is proved to lose nothing.

    Such a pack is a leftover (a commit killed after sealing, a duplicate of
    a concurrent pull) or a pack a damaged catalog forgot. It goes only if it
    reads cleanly (the one pack verifier) and each of its chunks is either
    needed by no file row or stored in another pack that exists.
    """
    cat = repo.catalog
    home = q.chunk_packs(cat)
    located = set(home.values())
    needed = {c for f in q.all_files(cat) for c in f.chunk_ids} | live
    recorded = {pid for pid, _, _ in q.all_packs(cat)}
    for path in repo.store.list_pack_files():
        pid = pack_id_of(path)
        if pid in located:
            continue
        probe = FsckReport()
        check = check_pack_file(path, pid, probe)
        if check is None or not check.ok:
            report.kept.append(f"unknown pack {path} (not in the catalog) is unreadable, kept: "
                               f"{probe.problems[0] if probe.problems else 'cannot be read'}")
            continue
        only_copy = [e.id for e in check.index if e.id in needed
                     and not (e.id in home and os.path.exists(repo.store.pack_path(home[e.id])))]
        if only_copy:
            report.kept.append(f"unknown pack {path} (not in the catalog) holds the only copy of "
                               f"{len(only_copy)} chunk(s) files need, kept; run 'ws fsck --rebuild-catalog'")
            continue
        if pid in recorded:
            q.delete_pack(cat, pid)
        report.bytes_freed += os.path.getsize(path)
        os.unlink(path)
        report.packs_deleted += 1
