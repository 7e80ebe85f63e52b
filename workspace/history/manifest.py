"""Commits as the API reports them, and their flat manifests (path -> file id, size, mode).

HEAD's manifest is cached in the catalog (catalog.statcache) and rebuilt from
the trees when HEAD moved without the cache; other commits are flattened from
their trees on demand.
"""

from __future__ import annotations

from catalog import history, statcache
from catalog.db import Catalog
from catalog.errors import CatalogBusy, CatalogFull, CatalogReadOnly
from catalog.history import CommitRecord
from catalog.statcache import ManifestEntry
from workspace.errors import DamagedObjectError, UnknownRef
from workspace.history import refs, trees
from workspace.types import Commit

Manifest = dict[str, ManifestEntry]


def to_commit(rec: CommitRecord) -> Commit:
    """A catalog commit row as the API's :class:`~workspace.types.Commit`."""
    return Commit(rec.id, rec.parents, rec.branch, rec.message, rec.author, rec.time_ns, rec.tree_id, rec.provenance)


def get_commit(cat: Catalog, ref: str) -> Commit:
    """The commit a ref names."""
    rec = history.get_commit(cat, refs.resolve(cat, ref))
    if rec is None:
        raise UnknownRef(f"unknown ref '{ref}'")
    return to_commit(rec)


def flatten(cat: Catalog, tree_id: str) -> Manifest:
    """The flat manifest of a tree; a missing tree is damage (exit 6)."""
    try:
        return trees.flatten(cat, tree_id)
    except KeyError as exc:
        raise DamagedObjectError(f"catalog is missing a tree: {exc}; run 'ws fsck'") from exc


def head_manifest(cat: Catalog) -> Manifest:
    """HEAD's manifest, from the catalog's cache (rebuilt when HEAD moved without it); {} before a commit."""
    _, head = refs.read_head(cat)
    built_for, manifest = statcache.load_head_manifest(cat)
    if head is None:
        return {}
    if built_for != head:  # HEAD moved without the cache (or first use): rebuild
        rec = history.get_commit(cat, head)
        manifest = flatten(cat, rec.tree_id)
        try:
            statcache.replace_head_manifest(cat, head, manifest)
        except (CatalogBusy, CatalogReadOnly, CatalogFull):
            pass  # only a cache: reading must work on a busy, read-only or full catalog
    return manifest


def manifest(cat: Catalog, ref: str | None = "HEAD") -> Manifest:
    """The flat manifest (path -> file id, size, mode) of a commit."""
    if ref in (None, "HEAD"):
        return head_manifest(cat)
    return flatten(cat, get_commit(cat, ref).tree)
