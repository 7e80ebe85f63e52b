"""Comparing two commits, or a commit and the working tree."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass

from catalog.db import Catalog
from workspace import pathspecs
from workspace.history import refs
from workspace.history.manifest import get_commit, manifest
from workspace.history.read import iter_read, ls
from workspace.repo import Repo
from workspace.tree.scan import working_ids
from workspace.reports import Diff, DiffEntry
from workspace.types import LINK_MODE, Commit

TEXT_LIMIT = 1 << 20  # larger files get no line diff


@dataclass
class CommitChanges:
    """One commit and what it changed against its first parent (``ws show``)."""

    commit: Commit
    diff: Diff

    def to_dict(self) -> dict:
        data = self.commit.to_dict()
        data["changes"] = [e.to_dict() for e in self.diff.entries]
        return data


def diff(repo: Repo, a: str | None = None, b: str | None = None, paths: list[str] | None = None) -> Diff:
    """Paths added, removed or modified from ``a`` (default HEAD) to ``b`` (default working tree)."""
    cat = repo.catalog
    a_ref = a or "HEAD"
    a_id = refs.resolve(cat, a_ref) if (a or refs.read_head(cat)[1]) else None
    old = manifest(cat, a_id) if a_id else {}
    spec = pathspecs.compile(pathspecs.resolve(p, repo.rel) for p in paths) if paths else None
    if b is None:
        under = spec.prefixes() if spec is not None else None
        ids, files = working_ids(repo, under=under if under and all(under) else None)
        new = {p: (fid, files[p].size, files[p].mode) for p, fid in ids.items()}
        b_id = None
    else:
        b_id = refs.resolve(cat, b)
        new = {p: (e.file_id, e.size, e.mode) for p, e in manifest(cat, b_id).items()}
    entries: list[DiffEntry] = []
    for path in sorted(set(old) | set(new)):
        if spec is not None and not spec.matches(path):
            continue
        o = old.get(path)
        n = new.get(path)
        if o and not n:
            entries.append(DiffEntry(path, "removed", o.file_id, None, o.size, None, o.mode, None))
        elif n and not o:
            entries.append(DiffEntry(path, "added", None, n[0], None, n[1], None, n[2]))
        elif o.file_id != n[0] or o.mode != n[2]:  # content or the executable bit
            entries.append(DiffEntry(path, "modified", o.file_id, n[0], o.size, n[1], o.mode, n[2]))
    return Diff(a_id, b_id, entries)


def commit_changes(repo: Repo, ref: str) -> CommitChanges:
    """``ws show``: one commit and what it changed against its first parent (a root commit adds everything)."""
    cat: Catalog = repo.catalog
    c = get_commit(cat, ref)
    if c.parents:
        d = diff(repo, c.parents[0], c.id)
    else:
        d = Diff(None, c.id, [DiffEntry(e.path, "added", None, e.id, None, e.size) for e in ls(cat, c.id)])
    return CommitChanges(c, d)


def _text(data: bytes) -> list[str] | None:
    if len(data) > TEXT_LIMIT or b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def unified(repo: Repo, d: Diff, entry: DiffEntry) -> list[str] | None:
    """A unified diff of one entry's text, or None when either side is binary or large."""
    if max(entry.old_size or 0, entry.new_size or 0) > TEXT_LIMIT:
        return None
    old = b"".join(iter_read(repo, d.a, entry.path)) if entry.old_id else b""
    if entry.new_id is None:
        new = b""
    elif d.b is None and entry.new_mode == LINK_MODE:
        new = os.readlink(os.fsencode(repo.root / entry.path))  # a link's content is its target text
    elif d.b is None:
        new = (repo.root / entry.path).read_bytes()
    else:
        new = b"".join(iter_read(repo, d.b, entry.path))
    a_lines, b_lines = _text(old), _text(new)
    if a_lines is None or b_lines is None:
        return None
    return list(difflib.unified_diff(a_lines, b_lines,
                                     fromfile=f"a/{entry.path}" if entry.old_id else "/dev/null",
                                     tofile=f"b/{entry.path}" if entry.new_id else "/dev/null"))
