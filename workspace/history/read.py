"""Reading committed content without touching the working tree: ``ws ls`` and ``ws cat``."""

from __future__ import annotations

from typing import Iterator

from catalog import objects as q
from catalog.db import Catalog
from catalog.statcache import ManifestEntry
from workspace import pathspecs
from workspace.errors import DamagedObjectError, UnknownRef
from workspace.history import refs, trees
from workspace.history.manifest import get_commit, manifest
from workspace.repo import Repo
from workspace.reports import LsEntry


def ls(cat: Catalog, ref: str = "HEAD", pattern: str | None = None) -> list[LsEntry]:
    """Files of a commit, optionally filtered by a pathspec relative to the root (:mod:`workspace.pathspecs`)."""
    files = manifest(cat, ref)
    spec = pathspecs.compile([pattern]) if pattern else None
    out = []
    for path in sorted(files):
        if spec is not None and not spec.matches(path):
            continue
        m = files[path]
        out.append(LsEntry(path, m.size, m.file_id, m.mode))
    return out


def ls_ref_or_pattern(cat: Catalog, ref: str | None = None, pattern: str | None = None) -> list[LsEntry]:
    """``ws ls [REF] [PATTERN]``: a lone argument that names no commit is a pattern on HEAD."""
    if ref is not None and pattern is None and not refs.is_ref(cat, ref):
        ref, pattern = "HEAD", ref
    return ls(cat, ref or "HEAD", pattern)


def file_entry(cat: Catalog, ref: str, path: str) -> ManifestEntry:
    """The manifest entry of one file of a commit; UnknownRef when the commit has no such file."""
    commit = get_commit(cat, ref)
    entry = trees.lookup(cat, commit.tree, path.strip("/"))
    if entry is None or entry.kind != "f":
        raise UnknownRef(f"path '{path}' does not exist in {ref}")
    return ManifestEntry(entry.id, entry.size, entry.mode)


def iter_read(repo: Repo, ref: str, path: str) -> Iterator[bytes]:
    """A committed file's bytes, chunk by chunk, each verified."""
    entry = file_entry(repo.catalog, ref, path)
    info = q.get_file(repo.catalog, entry.file_id)
    if info is None:
        raise DamagedObjectError(f"content of '{path}' is missing from the store; run 'ws fsck'")
    from workspace.objects.store import DamagedObject

    try:
        yield from repo.store.iter_file(info)
    except DamagedObject as exc:
        raise DamagedObjectError(f"'{path}': {exc}") from exc


def split_cat_spec(cat: Catalog, spec: str) -> tuple[str, str]:
    """``REF:PATH``, or ``PATH`` in HEAD, as (ref, path).

    Refs never contain ':' but a path may, so ``a:b.txt`` whose ``a`` names no
    commit is the file ``a:b.txt`` in HEAD.
    """
    if ":" not in spec:
        return "HEAD", spec
    ref, _, path = spec.partition(":")
    if not refs.is_ref(cat, ref or "HEAD"):
        return "HEAD", spec
    return ref or "HEAD", path

