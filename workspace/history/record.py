"""The one place a commit is made durable and visible.

Order of writes (DESIGN.md, docs/local-format.md):

1. data chunks and the history objects (each new file's chunk list, every
   tree, the commit) go into packs, which are fsynced and renamed into place;
2. the branch's file under ``.ws/refs/heads/`` (or ``.ws/HEAD`` when
   detached) is replaced atomically: from here on the commit exists;
3. one SQLite transaction indexes it all (packs, chunks, files, trees, the
   commit, the ref, the stat cache, HEAD's manifest).

A crash before 2 leaves unreferenced pack bytes that ``ws gc`` reclaims; a
crash between 2 and 3 leaves a catalog that lags the ref files, which the next
command brings up to date from the packs (:mod:`workspace.history.reconcile`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from catalog import history, statcache
from catalog import objects as q
from catalog.history import CommitRecord
from catalog.statcache import StatEntry
from workspace.config import author
from workspace.faults import checkpoint
from workspace.history import reffiles, refs, trees
from workspace.history.manifest import Manifest
from workspace.objects import history as objects
from workspace.objects.packs import KIND_COMMIT, KIND_FILE, KIND_TREE
from workspace.repo import Repo
from workspace.types import Commit

if TYPE_CHECKING:
    from workspace.objects.store import StoreWriter


def make_commit_id(tree_id: str, parents: list[str], branch: str | None, message: str, who: str, now: int,
                   provenance: dict | None) -> str:
    """A commit's id: SHA-256 of its canonical JSON (the commit object's bytes)."""
    body = objects.CommitObject(tree_id, parents, branch, message, who, now, provenance)
    return objects.object_id(objects.encode_commit(body))


def write_history_objects(writer: StoreWriter, tree_rows: list[tuple[str, bytes]], files: list[q.FileInfo],
                          commit_bytes: bytes | None = None) -> None:
    """Store trees, the chunk lists of files made of several chunks, and a commit, as pack objects."""
    for _tree_id, data in tree_rows:
        writer.add_object(KIND_TREE, data)
    for f in files:
        if objects.needs_file_object(f.id, f.chunk_ids):
            writer.add_object(KIND_FILE, objects.encode_file(objects.FileObject(f.id, f.size, f.chunk_ids)))
    if commit_bytes is not None:
        writer.add_object(KIND_COMMIT, commit_bytes)


def record_commit(repo: Repo, writer: StoreWriter | None, branch: str | None, head: str | None, old: Manifest,
                  new: Manifest, new_files: list[q.FileInfo], message: str, provenance: dict | None,
                  cache_rows: dict[str, StatEntry] | None = None) -> Commit:
    """Record ``new`` as a commit on ``branch`` (or a detached HEAD) after ``head``.

    ``writer`` holds the commit's new data chunks (it is sealed here if it is
    not yet). The history objects go into packs of their own, so data packs
    stay pure data and push can send them as they are (history objects never
    leave the workspace: they name every path and message). Every pack is
    sealed before the ref file moves and the catalog indexes it.
    """
    now = time.time_ns()
    root_id, tree_rows = trees.build(new)
    parents = [head] if head else []
    who = author(repo.config)
    body = objects.encode_commit(objects.CommitObject(root_id, parents, branch, message, who, now, provenance))
    cid = objects.object_id(body)
    if writer is not None:
        writer.seal()
    with repo.store.writer() as meta:
        write_history_objects(meta, tree_rows, new_files, body)
        meta.seal()
        checkpoint("commit:sealed")
        if branch is not None:
            reffiles.write_ref(repo.layout, branch, cid)
        else:
            reffiles.write_head(repo.layout, None, cid)
        checkpoint("commit:ref-written")
        try:
            _index(repo, [w for w in (writer, meta) if w is not None],
                   CommitRecord(cid, root_id, parents, branch, message, who, now, provenance),
                   tree_rows, new_files, head, old, new, cache_rows)
        except BaseException:
            _undo_ref(repo, branch, head)
            raise
    return Commit(cid, parents, branch, message, who, now, root_id, provenance)


def _undo_ref(repo: Repo, branch: str | None, head: str | None) -> None:
    """The catalog refused the commit (a full disk, say): move the ref file back, so the command's
    failure means what it says. If even that fails, the commit stays and the catalog catches up later."""
    try:
        if branch is not None and head is None:
            reffiles.delete_ref(repo.layout, branch)  # the branch's first commit: there was no file
        elif head is not None:
            reffiles.put_back(reffiles.ref_path(repo.layout, branch), f"{head}\n".encode())
    except OSError:
        pass


def _index(repo: Repo, writers: list[StoreWriter], rec: CommitRecord, tree_rows: list[tuple[str, bytes]],
           new_files: list[q.FileInfo], head: str | None, old: Manifest, new: Manifest,
           cache_rows: dict[str, StatEntry] | None) -> None:
    """The catalog transaction that indexes what the packs and the ref file already hold."""
    deleted = [p for p in old if p not in new]
    changed = {p: e for p, e in new.items() if old.get(p) != e}
    cat = repo.catalog
    with cat.write():
        for writer in writers:
            writer.record(rec.time_ns)
        q.add_files(cat, new_files)
        history.add_trees(cat, tree_rows)
        history.add_commit(cat, rec)
        if rec.branch is not None:
            history.set_ref(cat, rec.branch, rec.id, rec.time_ns)
        else:
            history.set_meta(cat, refs.HEAD_KEY, rec.id)
        if cache_rows:
            statcache.update_stat_cache(cat, cache_rows)
        if head and history.get_meta(cat, "manifest_commit") == head:
            statcache.patch_head_manifest(cat, rec.id, changed, deleted)
        else:
            statcache.replace_head_manifest(cat, rec.id, new)
