"""The one transaction that makes a commit visible.

Order of writes (DESIGN.md): the caller has sealed every pack first; then one
SQLite transaction records the packs, the file rows, the trees, the commit,
the branch move (or a detached HEAD), the stat cache and HEAD's manifest. A
crash before it leaves only unreferenced pack bytes, which ``ws gc`` reclaims.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING

from catalog import history, statcache
from catalog import objects as q
from catalog.history import CommitRecord
from catalog.statcache import StatEntry
from workspace.config import author
from workspace.history import refs, trees
from workspace.history.manifest import Manifest
from workspace.repo import Repo
from workspace.types import Commit

if TYPE_CHECKING:
    from workspace.objects.store import StoreWriter


def make_commit_id(tree_id: str, parents: list[str], branch: str | None, message: str, who: str, now: int,
                   provenance: dict | None) -> str:
    """A commit's id: SHA-256 of its canonical JSON."""
    body = json.dumps({"tree": tree_id, "parents": parents, "branch": branch, "message": message,
                       "author": who, "time_ns": now, "provenance": provenance},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def record_commit(repo: Repo, writer: StoreWriter | None, branch: str | None, head: str | None, old: Manifest,
                  new: Manifest, new_files: list[q.FileInfo], message: str, provenance: dict | None,
                  cache_rows: dict[str, StatEntry] | None = None) -> Commit:
    """Record ``new`` as a commit on ``branch`` (or a detached HEAD) after ``head``. Packs must be sealed."""
    now = time.time_ns()
    root_id, tree_rows = trees.build(new)
    parents = [head] if head else []
    who = author(repo.config)
    cid = make_commit_id(root_id, parents, branch, message, who, now, provenance)
    rec = CommitRecord(cid, root_id, parents, branch, message, who, now, provenance)
    deleted = [p for p in old if p not in new]
    changed = {p: e for p, e in new.items() if old.get(p) != e}
    cat = repo.catalog
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
