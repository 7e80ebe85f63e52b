"""``ws status``: the working tree against HEAD, as cheaply as the tree allows.

The walk (workspace.tree.dirwalk) summarizes each folder as a digest of its files'
stats. The catalog keeps a *snapshot*: the digests of the folders last proved
clean (every file tracked, identical to HEAD, stat not racy) and the folders
HEAD has files in. Folders whose digest matches need nothing more; only the
others are checked file by file against the stat cache and HEAD's manifest,
re-hashing what the cache cannot vouch for. On 100,000 unchanged files this
replaces 200,000 catalog rows and 100,000 Python comparisons with one small
blob and 2,000 digest comparisons.

The snapshot is tied to a generation counter that every write to the caches
bumps (catalog.statcache), so a stale snapshot is never used.

With ``ws watch`` running, even the walk is skipped: the snapshot also
remembers the watcher's epoch and sequence number (asked, after a barrier,
*before* the walk it describes), and the next status asks the watcher which
folders changed since then and lists only those (and the folders that were
not clean, or hold a file with several hard links: a write through another
name has no event in this folder). Any doubt (no watcher, another epoch, no answer) means the full
walk, so the answer is the same either way.
"""

from __future__ import annotations

import marshal

from catalog import statcache
from catalog.errors import CatalogBusy, CatalogFull, CatalogReadOnly
from workspace.history import refs
from workspace.history.manifest import head_manifest
from workspace.repo import Repo
from workspace.tree import watch_client
from workspace.tree.dirwalk import DirWalk, flatten as _paths, relist
from workspace.tree.ignore import IgnoreRules
from workspace.tree.scan import FileStat, add_tracked, classify, hash_pending, is_racy
from workspace.types import Progress, Status

_SNAPSHOT_FORMAT = 4  # 4: + the other folders with files and the watcher's (epoch, seq); 3: links too
_PARALLEL_MIN_DIRS = 200  # below this a forked helper costs more than it saves


def compute_status(repo: Repo, progress: Progress | None = None) -> Status:
    """Added, modified and deleted paths against HEAD."""
    cat = repo.catalog
    branch, head = refs.read_head(cat)
    manifest_commit, gen, blob = statcache.load_snapshot(cat)
    snap = _decode(blob) if blob is not None and manifest_commit == head and head else None
    clean, tracked_dirs, others, w_epoch, w_seq = snap if snap else ({}, None, [], None, 0)
    # no head: everything is added, whatever the watcher says (skip its round trip and barrier)
    watch = watch_client.changes_since(repo.layout.watch_dir, repo.root, w_epoch, w_seq) if head is not None else None
    rules = IgnoreRules(repo.root)
    if snap and watch is not None and watch.vouch:
        digests, detail, linked = relist(str(repo.root), rules, clean, others, watch.dirty)
        scan = "watch"
    else:
        walk = DirWalk(str(repo.root), rules, clean, parallel=len(clean) >= _PARALLEL_MIN_DIRS)
        digests, detail = walk.finish()
        linked = walk.linked
        scan = "full"
    if head is None:
        return Status(branch, None, added=sorted(_paths(detail)), scan=scan)
    full = None
    if tracked_dirs is None:  # no usable snapshot: everything is in scope
        full = head_manifest(cat)
        tracked_dirs = {p.rpartition("/")[0] for p in full}
    vanished = [d for d in tracked_dirs if d not in digests]
    mark = (watch.epoch, watch.seq) if watch is not None else (None, 0)
    if not detail and not vanished and (mark == (w_epoch, w_seq) or (scan == "watch" and not watch.dirty)):
        return Status(branch, head, scan=scan)  # the snapshot still says it all
    scope = set(detail) | set(vanished)
    if full is not None:
        manifest = {p: e for p, e in full.items() if p.rpartition("/")[0] in scope}
    else:
        manifest = statcache.manifest_in_dirs(cat, scope)
    walked = {p: FileStat._make(v) for p, v in _paths(detail).items()}
    add_tracked(repo.root, walked, [p for p in manifest if p not in walked])
    cache = statcache.stat_entries(cat, list(walked)) if full is None else statcache.load_stat_cache(cat)
    ids, todo = classify(walked, cache)
    updates = hash_pending(repo.root, walked, todo, ids, progress)
    st = Status(branch, head, scan=scan)
    for path, fid in ids.items():
        m = manifest.get(path)
        if m is None:
            st.added.append(path)
        elif m.file_id != fid or m.mode != walked[path].mode:
            st.modified.append(path)
    st.deleted = [p for p in manifest if p not in ids]
    st.added.sort()
    st.modified.sort()
    st.deleted.sort()
    new_clean = {d: dg for d, dg in digests.items() if d not in detail and clean.get(d) == dg}
    new_clean.update(_proved_clean(detail, digests, ids, manifest, cache, updates))
    deletes = [p for p in cache if p not in walked] if full is not None else []
    others = sorted({d for d in digests if d not in new_clean} | linked)  # hard links: listed every time
    _save(repo, gen, updates, deletes, (_SNAPSHOT_FORMAT, new_clean, sorted(tracked_dirs), others, *mark))
    return st


def _proved_clean(detail, digests, ids, manifest, cache, updates) -> dict[str, bytes]:
    """Folders of ``detail`` whose every file is tracked, identical to HEAD and not racy."""
    tracked_here: dict[str, int] = {}
    for p in manifest:
        d = p.rpartition("/")[0]
        tracked_here[d] = tracked_here.get(d, 0) + 1
    out = {}
    for d, (names, ints) in detail.items():
        if tracked_here.get(d, 0) != len(names):
            continue  # untracked files here, or tracked ones missing
        prefix = d + "/" if d else ""
        ok = True
        for i, name in enumerate(names):
            p = prefix + name
            m = manifest.get(p)
            entry = updates.get(p) or cache.get(p)
            if (m is None or ids.get(p) != m.file_id or m.mode != ints[4 * i + 3] or entry is None
                    or is_racy(entry.mtime_ns, entry.recorded_ns)):
                ok = False
                break
        if ok:
            out[d] = digests[d]
    return out


def _decode(blob: bytes):
    """(clean digests, folders HEAD has files in, other folders with files, watcher epoch, seq) or None."""
    try:
        fmt, clean, tracked_dirs, others, epoch, seq = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    return (clean, set(tracked_dirs), others, epoch, seq) if fmt == _SNAPSHOT_FORMAT else None


def _save(repo: Repo, gen: int, updates: dict, deletes: list[str], snapshot: tuple) -> None:
    blob = marshal.dumps(snapshot)
    try:
        statcache.update_with_snapshot(repo.catalog, gen, updates, deletes, blob)
    except (CatalogBusy, CatalogReadOnly, CatalogFull):
        pass  # caches only: a busy, read-only or full catalog must not fail a read-only command;
        # anything else (a damaged catalog, an I/O error) is the command's error
