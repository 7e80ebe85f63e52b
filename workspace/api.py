"""The Python API: :class:`Workspace`, the porcelain that the CLI is a thin layer over.

Nothing here prints or exits; errors are :class:`~workspace.errors.WorkspaceError`
subclasses and long operations report through an optional ``progress`` callback
``progress(phase, done, total)``.
"""

from __future__ import annotations

import fnmatch
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catalog import history, statcache
from catalog.db import Catalog
from catalog.errors import CatalogBusy, CatalogError, CatalogReadOnly
from catalog import objects as q
from workspace import config as config_mod
from workspace.history import refs, trees
from workspace.errors import (
    AlreadyAWorkspace,
    DamagedObjectError,
    InvalidArgument,
    UnknownRef,
    WorkspaceBusy,
    WorkspaceError,
)
from workspace.ignore import IgnoreRules
from workspace.layout import WS_DIR, Layout, find_root
from workspace.repo import Repo
from workspace.scan import Progress, add_tracked, classify, hash_pending, walk
from workspace.types import Commit, CommitResult, Diff, FsckReport, GcReport, LsEntry, Status


class Workspace(Repo):
    """A project folder under ws control: the repository handle plus one method per verb."""

    # -- HEAD and history -------------------------------------------------
    def head(self) -> tuple[str | None, str | None]:
        """(branch or None when detached, commit id or None before the first commit)."""
        return refs.read_head(self.catalog)

    def resolve(self, ref: str) -> str:
        """The full commit id a ref expression names."""
        return refs.resolve(self.catalog, ref)

    def get_commit(self, ref: str) -> Commit:
        """The commit a ref names."""
        rec = history.get_commit(self.catalog, self.resolve(ref))
        if rec is None:
            raise UnknownRef(f"unknown ref '{ref}'")
        return _commit(rec)

    def manifest(self, ref: str | None = "HEAD") -> dict[str, statcache.ManifestEntry]:
        """The flat manifest (path -> file id, size, mode) of a commit."""
        if ref in (None, "HEAD"):
            return self._head_manifest()
        commit = self.get_commit(ref)
        return self._flatten(commit.tree)

    def _flatten(self, tree_id: str) -> dict[str, statcache.ManifestEntry]:
        try:
            return trees.flatten(self.catalog, tree_id)
        except KeyError as exc:
            raise DamagedObjectError(f"catalog is missing a tree: {exc}; run 'ws fsck'") from exc

    def _head_manifest(self) -> dict[str, statcache.ManifestEntry]:
        _, head = self.head()
        built_for, manifest = statcache.load_head_manifest(self.catalog)
        if head is None:
            return {}
        if built_for != head:  # HEAD moved without the cache (or first use): rebuild
            rec = history.get_commit(self.catalog, head)
            manifest = self._flatten(rec.tree_id)
            try:
                statcache.replace_head_manifest(self.catalog, head, manifest)
            except (CatalogBusy, CatalogReadOnly):
                pass  # only a cache: reading must work on a busy or read-only catalog
        return manifest

    def log(self, n: int | None = None, path: str | None = None, ref: str = "HEAD") -> list[Commit]:
        """Commits reachable from ``ref``, newest first; with ``path``, only those that changed it."""
        try:
            start = self.resolve(ref)
        except UnknownRef:
            if ref == "HEAD" and self.head()[1] is None:
                return []
            raise
        out: list[Commit] = []
        seen: set[str] = set()
        frontier = [start]
        recs = {}
        while frontier and (n is None or len(out) < n):
            # newest first across branches of a merge
            for cid in frontier:
                if cid not in recs:
                    recs[cid] = history.get_commit(self.catalog, cid)
            frontier.sort(key=lambda c: recs[c].time_ns if recs[c] else 0, reverse=True)
            cid = frontier.pop(0)
            if cid in seen or recs[cid] is None:
                continue
            seen.add(cid)
            rec = recs[cid]
            frontier.extend(p for p in rec.parents if p not in seen)
            if path is None or self._touches(rec, path):
                out.append(_commit(rec))
        return out

    def _touches(self, rec, path: str) -> bool:
        mine = trees.lookup(self.catalog, rec.tree_id, path)
        if not rec.parents:
            return mine is not None
        parent = history.get_commit(self.catalog, rec.parents[0])
        theirs = trees.lookup(self.catalog, parent.tree_id, path) if parent else None
        return (mine.id if mine else None) != (theirs.id if theirs else None)

    # -- branches ---------------------------------------------------------
    def branches(self) -> list[tuple[str, str, bool]]:
        """Every branch as (name, commit id, is current)."""
        current, _ = self.head()
        return [(name, cid, name == current) for name, cid in history.list_refs(self.catalog)]

    def create_branch(self, name: str, ref: str = "HEAD") -> str:
        """Make a branch at ``ref``; returns its commit id."""
        refs.check_branch_name(name)
        if history.get_ref(self.catalog, name) is not None:
            raise InvalidArgument(f"branch '{name}' already exists")
        commit_id = self.resolve(ref)
        history.set_ref(self.catalog, name, commit_id, time.time_ns())
        return commit_id

    def delete_branch(self, name: str) -> None:
        """Remove a branch (not the current one)."""
        current, _ = self.head()
        if name == current:
            raise InvalidArgument(f"cannot delete the current branch '{name}'")
        if history.get_ref(self.catalog, name) is None:
            raise UnknownRef(f"unknown branch '{name}'")
        history.delete_ref(self.catalog, name)

    # -- status -----------------------------------------------------------
    def status(self, progress: Progress | None = None) -> Status:
        """Added, modified and deleted paths of the working tree against HEAD."""
        from workspace.status import compute_status

        st = compute_status(self, progress)
        st.remotes = self._remote_status()
        return st

    def working_ids(self, under: list[str] | None = None, progress: Progress | None = None,
                    head: dict | None = None):
        """Content ids of the working files (optionally below ``under`` prefixes) and their stats.

        ``head`` is HEAD's manifest when the caller already has it (it is read otherwise).
        """
        files = walk(self.root, IgnoreRules(self.root), under or ())
        tracked = head if head is not None else self._head_manifest()
        add_tracked(self.root, files, [p for p in tracked
                                       if p not in files and (under is None or _under_any(p, under))])
        cache = statcache.load_stat_cache(self.catalog)
        ids, todo = classify(files, cache)
        updates = hash_pending(self.root, files, todo, ids, progress)
        deletes = [p for p in cache if p not in files and (under is None or _under_any(p, under))]
        try:
            statcache.update_stat_cache(self.catalog, updates, deletes)
        except (CatalogBusy, CatalogReadOnly):
            pass  # the cache is an optimization; a busy or read-only catalog must not fail a read
        return ids, files

    def _remote_status(self) -> list[dict]:
        """Per configured remote, the releases not on it yet: answered from the catalog, offline."""
        from sync.remote_status import remote_rows  # stdlib and catalog only: cheap on the status path

        return remote_rows(self)

    # -- reading committed content ----------------------------------------------
    def ls(self, ref: str = "HEAD", pattern: str | None = None) -> list[LsEntry]:
        """Files of a commit, optionally filtered by a glob or a folder prefix."""
        manifest = self.manifest(ref)
        out = []
        for path in sorted(manifest):
            if pattern and not _matches(path, pattern):
                continue
            m = manifest[path]
            out.append(LsEntry(path, m.size, m.file_id, m.mode))
        return out

    def _entry(self, ref: str, path: str) -> statcache.ManifestEntry:
        commit = self.get_commit(ref)
        entry = trees.lookup(self.catalog, commit.tree, path.strip("/"))
        if entry is None or entry.kind != "f":
            raise UnknownRef(f"path '{path}' does not exist in {ref}")
        return statcache.ManifestEntry(entry.id, entry.size, entry.mode)

    def iter_read(self, ref: str, path: str) -> Iterator[bytes]:
        """A committed file's bytes, chunk by chunk, each verified."""
        entry = self._entry(ref, path)
        info = q.get_file(self.catalog, entry.file_id)
        if info is None:
            raise DamagedObjectError(f"content of '{path}' is missing from the store; run 'ws fsck'")
        from workspace.objects.store import DamagedObject

        try:
            yield from self.store.iter_file(info)
        except DamagedObject as exc:
            raise DamagedObjectError(f"'{path}': {exc}") from exc

    def read(self, ref: str, path: str) -> bytes:
        """A committed file's bytes."""
        return b"".join(self.iter_read(ref, path))

    # -- writing (implemented in their own modules) -------------------------
    def commit(self, message: str, paths: list[str] | None = None, *, progress: Progress | None = None,
               provenance: dict | None = None, cwd: str | None = None) -> CommitResult:
        """Record the working tree (or only ``paths``) as a new commit on the current branch."""
        from workspace.commit import commit

        return commit(self, message, paths, progress=progress, provenance=provenance, cwd=cwd)

    def transaction(self, message: str, *, provenance: dict | None = None):
        """An atomic multi-operation commit: ``with ws.transaction("msg") as t: ...``."""
        from workspace.transaction import Transaction

        return Transaction(self, message, provenance=provenance)

    def diff(self, a: str | None = None, b: str | None = None, paths: list[str] | None = None) -> Diff:
        """Changes from ``a`` (default HEAD) to ``b`` (default: the working tree)."""
        from workspace.diff import diff

        return diff(self, a, b, paths)

    def checkout(self, ref: str, *, force: bool = False, progress: Progress | None = None) -> Commit:
        """Make the working tree match ``ref``; a branch name attaches HEAD to it."""
        from workspace.checkout import checkout

        return checkout(self, ref, force=force, progress=progress)

    def switch(self, branch: str, *, create: bool = False, force: bool = False) -> Commit | None:
        """Switch to a branch (``create`` makes it at HEAD first)."""
        from workspace.checkout import switch

        return switch(self, branch, create=create, force=force)

    def restore(self, paths: list[str], source: str = "HEAD", *, cwd: str | None = None) -> list[str]:
        """Overwrite working files with their version in ``source``; returns the paths written."""
        from workspace.checkout import restore

        return restore(self, paths, source, cwd=cwd)

    def fsck(self, progress: Progress | None = None) -> FsckReport:
        """Verify every pack, chunk and catalog reference."""
        from workspace.maintenance import fsck

        return fsck(self, progress)

    def gc(self, progress: Progress | None = None) -> GcReport:
        """Reclaim pack space that no commit references."""
        from workspace.maintenance import gc

        return gc(self, progress)

    # -- releases and remotes (owned by the releases/remotes work; see workspace.releases, sync) --
    # RELEASES-API-BEGIN
    @property
    def releases(self):
        """The workspace's releases: create, list, get, resolve, import_record (see workspace.releases)."""
        from workspace.releases import Releases

        return Releases(self)

    # -- remotes, push, pull, clone (S; see workspace.remotes and sync) --
    def add_remote(self, name: str, url: str, options: dict | None = None, default: bool = False):
        """Configure a remote (``[remote.NAME]`` in .ws/config.toml); secrets go through ``ws login``."""
        from workspace.remotes import add_remote

        return add_remote(self, name, url, options, default)

    def remotes(self) -> list:
        """Every configured remote (name, url, options, default)."""
        from workspace.remotes import list_remotes

        return list_remotes(self)

    def remove_remote(self, name: str) -> None:
        """Forget a remote and what the catalog remembers about it."""
        from workspace.remotes import remove_remote

        remove_remote(self, name)

    def remote_releases(self, remote: str | None = None) -> list[dict]:
        """The releases a remote holds (asks the remote)."""
        from workspace.remotes import remote_releases

        return remote_releases(self, remote)

    def push(self, remote: str | None = None, spec: str | None = None, *, progress=None, workers: int = 4):
        """Send releases (``NAME`` or ``NAME@VERSION``; default: all not there yet) and the chunks they need."""
        from workspace.remotes import push

        return push(self, remote, spec, progress=progress, workers=workers)

    def pull(self, remote: str | None, spec: str, *, force: bool = False, progress=None, workers: int = 4):
        """Fetch release ``NAME[@EXPR]`` into the working tree; refuses to overwrite local changes unless force."""
        from workspace.remotes import pull

        return pull(self, remote, spec, force=force, progress=progress, workers=workers)

    @classmethod
    def clone(cls, url: str, spec: str, directory, *, options: dict | None = None, progress=None):
        """A new workspace in ``directory`` holding release ``NAME[@EXPR]`` from ``url`` (remote ``origin``)."""
        from workspace.remotes import clone

        ws, _ = clone(url, spec, directory, options=options, progress=progress)
        return ws

    def fsck_remote(self, remote: str | None = None, read_data: bool = False, progress=None):
        """Check a remote: every index matches its pack id, every pack is listed, every release complete."""
        from workspace.remotes import fsck_remote

        return fsck_remote(self, remote, read_data=read_data, progress=progress)

    # RELEASES-API-END

    # -- jobs (owned by the jobs work; see workspace.jobs) --
    # JOBS-API-BEGIN
    @property
    def jobs(self):
        """The jobs of this workspace (:class:`workspace.jobs.api.JobsAPI`): list, show, logs, specs."""
        from workspace.jobs.api import JobsAPI

        return JobsAPI(self)
    # JOBS-API-END


def _commit(rec) -> Commit:
    return Commit(rec.id, rec.parents, rec.branch, rec.message, rec.author, rec.time_ns, rec.tree_id, rec.provenance)


def _matches(path: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    return (
        fnmatch.fnmatchcase(path, pattern)
        or path.startswith(pattern + "/")
        or fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    )


def _under_any(path: str, prefixes: list[str]) -> bool:
    return any(not p or path == p or path.startswith(p + "/") for p in prefixes)
