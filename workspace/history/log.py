"""``ws log``: commits reachable from a ref, newest first, optionally only those that changed a path."""

from __future__ import annotations

from catalog import history
from catalog.db import Catalog
from catalog.history import CommitRecord
from workspace.errors import UnknownRef
from workspace.history import refs, trees
from workspace.history.manifest import to_commit
from workspace.types import Commit


def log(cat: Catalog, n: int | None = None, path: str | None = None, ref: str = "HEAD") -> list[Commit]:
    """Commits reachable from ``ref``, newest first; with ``path``, only those that changed it."""
    try:
        start = refs.resolve(cat, ref)
    except UnknownRef:
        if ref == "HEAD" and refs.read_head(cat)[1] is None:
            return []
        raise
    out: list[Commit] = []
    seen: set[str] = set()
    frontier = [start]
    recs: dict[str, CommitRecord | None] = {}
    while frontier and (n is None or len(out) < n):
        # newest first across branches of a merge
        for cid in frontier:
            if cid not in recs:
                recs[cid] = history.get_commit(cat, cid)
        frontier.sort(key=lambda c: recs[c].time_ns if recs[c] else 0, reverse=True)
        cid = frontier.pop(0)
        if cid in seen or recs[cid] is None:
            continue
        seen.add(cid)
        rec = recs[cid]
        frontier.extend(p for p in rec.parents if p not in seen)
        if path is None or _touches(cat, rec, path):
            out.append(to_commit(rec))
    return out


def _touches(cat: Catalog, rec: CommitRecord, path: str) -> bool:
    mine = trees.lookup(cat, rec.tree_id, path)
    if not rec.parents:
        return mine is not None
    parent = history.get_commit(cat, rec.parents[0])
    theirs = trees.lookup(cat, parent.tree_id, path) if parent else None
    return (mine.id if mine else None) != (theirs.id if theirs else None)
