"""Keeping the catalog in step with ``.ws/``: the files are the truth, the catalog their index.

Two situations need it:

- **after a crash** between moving a ref file and the catalog transaction
  that indexes the commit (workspace.history.record): the ref files name a
  commit the catalog does not know. :func:`catch_up` indexes the packs the
  catalog does not record (the commit's objects are in them) and makes the
  catalog's refs equal the files.
- **a workspace from before history objects** (no ``.ws/HEAD``): its history
  lives only in the catalog. :func:`export` writes every commit, tree and
  chunk list as objects into packs, then the ref files, HEAD last.

Both run with the workspace lock held. Checking costs two small file reads
and one query, so it runs whenever the lock is taken and when a workspace is
opened.
"""

from __future__ import annotations

import time

from catalog import history
from catalog import objects as q
from catalog.errors import CatalogBusy, CatalogReadOnly
from workspace.errors import DamagedObjectError, WorkspaceBusy
from workspace.history import reffiles
from workspace.history.reffiles import head_value, in_sync
from workspace.history.record import write_history_objects
from workspace.history.reindex import IndexReport, complete_files, index_packs, unknown_pack_files
from workspace.objects import history as objects
from workspace.repo import DEFAULT_BRANCH, HEAD_KEY, Repo


def on_open(repo: Repo) -> bool:
    """Bring the catalog up to date if it lags ``.ws/`` and the lock is free; True when history was exported.

    A reader that finds the lock taken goes on with the catalog as it is (a
    writer is mid-commit, or will catch up itself); so does one that cannot
    write (a read-only catalog).
    """
    if repo.layout.head_file.exists() and in_sync(repo):
        return False
    try:
        with Repo.lock(repo, timeout=0):  # the plain lock: a Workspace's own lock() would catch up itself
            return catch_up(repo)
    except (WorkspaceBusy, CatalogBusy, CatalogReadOnly, PermissionError):
        return False


def catch_up(repo: Repo) -> bool:
    """With the lock held: export a catalog-only history, or index what the ref files name; True on export."""
    if reffiles.read_head(repo.layout) is None:
        export(repo)
        return True
    if in_sync(repo):
        return False
    report = index_packs(repo, unknown_pack_files(repo))
    complete_files(repo, report)
    sync_refs_from_files(repo, report)
    return False


def sync_refs_from_files(repo: Repo, report: IndexReport) -> None:
    """Make the catalog's branches and HEAD those of the files (refs naming unknown commits are reported)."""
    cat = repo.catalog
    branches = {}
    for name, cid in reffiles.read_refs(repo.layout).items():
        if history.get_commit(cat, cid) is None:
            report.problems.append(f"branch '{name}' names commit {cid[:12]}, which no pack holds")
            continue
        branches[name] = cid
    head = reffiles.read_head(repo.layout) or (DEFAULT_BRANCH, None)
    history.replace_refs(cat, branches, head_value(*head), time.time_ns())


def export(repo: Repo) -> None:
    """Write the catalog's commits, trees and chunk lists as pack objects, then the ref files, HEAD last."""
    cat = repo.catalog
    stored = q.history_object_ids(cat)
    with repo.store.writer() as writer:
        write_history_objects(writer, [(tid, data) for tid, data in history.iter_trees(cat) if tid not in stored],
                              [f for f in q.all_files(cat) if objects.object_id(_file_bytes(f)) not in stored])
        for rec in history.all_commits(cat):
            if rec.id in stored:
                continue
            body = objects.encode_commit(objects.CommitObject(rec.tree_id, rec.parents, rec.branch, rec.message,
                                                              rec.author, rec.time_ns, rec.provenance))
            if objects.object_id(body) != rec.id:
                raise DamagedObjectError(f"commit {rec.id[:12]} in the catalog does not match its id; "
                                         "run 'ws fsck'")
            write_history_objects(writer, [], [], body)
        writer.seal()
        with cat.write():
            writer.record(time.time_ns())
    for name, cid in history.list_refs(cat):
        reffiles.write_ref(repo.layout, name, cid)
    value = history.get_meta(cat, HEAD_KEY) or f"ref:{DEFAULT_BRANCH}"
    if value.startswith("ref:"):
        reffiles.write_head(repo.layout, value[4:])
    else:
        reffiles.write_head(repo.layout, None, value)


def _file_bytes(f: q.FileInfo) -> bytes:
    return objects.encode_file(objects.FileObject(f.id, f.size, f.chunk_ids))
