"""``ws commit``: store new content, then record the commit in one transaction.

Order of writes (DESIGN.md): chunks go into packs that are fsynced and renamed
into place first; then one SQLite transaction records packs, files, trees, the
commit, the branch move, the stat cache and HEAD's manifest. A crash before
that transaction leaves only unreferenced pack bytes, which ``ws gc`` reclaims.
"""

from __future__ import annotations

import hashlib
import json
import time

from catalog import history, statcache
from catalog import objects as q
from catalog.history import CommitRecord
from catalog.statcache import ManifestEntry, StatEntry
from workspace.history import refs, trees
from workspace.config import author
from workspace.faults import checkpoint
from workspace.errors import InvalidArgument, NothingToCommit, UnknownRef
from workspace.ignore import IgnoreRules
from workspace.objects.store import StoreWriter
from workspace.scan import Progress, add_tracked, classify, under_any, walk
from workspace.types import CommitResult, Commit


def commit(ws, message: str, paths: list[str] | None = None, *, progress: Progress | None = None,
           provenance: dict | None = None, cwd: str | None = None) -> CommitResult:
    """Commit the working tree, or only ``paths`` (files or folders), on the current branch."""
    if not message or not message.strip():
        raise InvalidArgument("a commit needs a message (-m)")
    prefixes = None
    if paths:
        prefixes = sorted({ws.rel(p, cwd) for p in paths})
    with ws.lock():
        branch, head = ws.head()
        old = ws.manifest("HEAD") if head else {}
        files = walk(ws.root, IgnoreRules(ws.root), prefixes or ())
        add_tracked(ws.root, files, [p for p in old if p not in files and (not prefixes or under_any(p, prefixes))])
        if prefixes:
            _check_pathspecs(prefixes, files, old)
        cache = statcache.load_stat_cache(ws.catalog)
        ids, todo = classify(files, cache)
        # cached ids whose content is not stored yet (status hashed them) must be read too
        stored = q.known_files(ws.catalog, ids.values())
        todo += [p for p, fid in ids.items() if fid not in stored]
        todo = sorted(set(todo))
        with ws.store.writer() as writer:
            new_files, cache_rows = _ingest(ws, writer, files, todo, ids, progress)
            new = _apply(old, files, ids, prefixes)
            if new == old:
                writer.seal()  # nothing new can have been written; drop the empty pack
                statcache.update_stat_cache(ws.catalog, cache_rows)
                raise NothingToCommit("nothing to commit, working tree clean" if not prefixes
                                      else "nothing to commit in the given paths")
            writer.seal()
            checkpoint("commit:sealed")
            result = _record(ws, writer, branch, head, old, new, new_files, cache_rows,
                             message.strip(), provenance)
        checkpoint("commit:recorded")
        return result


def _check_pathspecs(prefixes: list[str], files, old) -> None:
    for pre in prefixes:
        if not any(under_any(p, [pre]) for p in files) and not any(under_any(p, [pre]) for p in old):
            raise UnknownRef(f"path '{pre or '.'}' matches no file in the working tree or HEAD")


def _ingest(ws, writer: StoreWriter, files, todo, ids, progress):
    """Chunk and store every file in ``todo``; returns file records and stat cache rows."""
    total = sum(files[p].size for p in todo)
    done = 0
    new_files: list[q.FileInfo] = []
    cache_rows: dict[str, StatEntry] = {}
    root = str(ws.root) + "/"
    for full, recorded, digest in writer.add_files(root + p for p in todo):
        path = full[len(root):]
        st = files[path]
        if digest is None:  # deleted since the walk
            del files[path]
            ids.pop(path, None)
            continue
        ids[path] = digest.id
        new_files.append(q.FileInfo(digest.id, digest.size, digest.chunk_ids))
        if digest.size == st.size:
            cache_rows[path] = StatEntry(st.size, st.mtime_ns, st.ino, digest.id, recorded)
        else:  # it changed while we read it; record what we read
            files[path] = type(st)(digest.size, st.mtime_ns, st.ino, st.mode)
        done += st.size
        if progress:
            progress("storing", done, total)
        checkpoint("commit:ingest")
    return new_files, cache_rows


def _apply(old: dict, files, ids, prefixes) -> dict[str, ManifestEntry]:
    """HEAD's manifest with the working tree's state applied (within ``prefixes``)."""
    new = dict(old)
    for path in list(new):
        if path not in files and (prefixes is None or under_any(path, prefixes)):
            del new[path]
    for path, st in files.items():
        new[path] = ManifestEntry(ids[path], st.size, st.mode)
    return new


def make_commit_id(tree_id: str, parents: list[str], branch, message: str, who: str, now: int,
                   provenance: dict | None) -> str:
    """A commit's id: SHA-256 of its canonical JSON."""
    body = json.dumps({"tree": tree_id, "parents": parents, "branch": branch, "message": message,
                       "author": who, "time_ns": now, "provenance": provenance},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def record_commit(ws, writer: StoreWriter | None, branch: str | None, head: str | None, old: dict, new: dict,
                  new_files: list[q.FileInfo], message: str, provenance: dict | None,
                  cache_rows: dict[str, StatEntry] | None = None) -> Commit:
    """The one transaction that makes a commit visible. Packs must already be sealed."""
    now = time.time_ns()
    root_id, tree_rows = trees.build(new)
    parents = [head] if head else []
    who = author(ws.config)
    cid = make_commit_id(root_id, parents, branch, message, who, now, provenance)
    rec = CommitRecord(cid, root_id, parents, branch, message, who, now, provenance)
    deleted = [p for p in old if p not in new]
    changed = {p: e for p, e in new.items() if old.get(p) != e}
    cat = ws.catalog
    with cat.write():
        if writer is not None:
            writer.record(now)
        q.add_files(cat, new_files)
        history.add_trees(cat, tree_rows)
        history.add_commit(cat, rec)
        if branch is not None:
            history.set_ref(cat, branch, cid, now)
        else:
            refs.set_head_detached(cat, cid)
        if cache_rows:
            statcache.update_stat_cache(cat, cache_rows)
        if head and history.get_meta(cat, "manifest_commit") == head:
            statcache.patch_head_manifest(cat, cid, changed, deleted)
        else:
            statcache.replace_head_manifest(cat, cid, new)
    return Commit(cid, parents, branch, message, who, now, root_id, provenance)


def _record(ws, writer, branch, head, old, new, new_files, cache_rows, message, provenance) -> CommitResult:
    c = record_commit(ws, writer, branch, head, old, new, new_files, message, provenance, cache_rows)
    added = sum(1 for p in new if p not in old)
    modified = sum(1 for p in new if p in old and old[p] != new[p])
    deleted = sum(1 for p in old if p not in new)
    return CommitResult(c, len(new_files), writer.bytes_in, writer.bytes_stored, added, modified, deleted)
