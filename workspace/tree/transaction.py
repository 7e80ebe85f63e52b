"""Atomic multi-operation commits: ``with ws.transaction("msg") as t: ...``.

Operations are staged in memory (content goes into new packs as it comes).
Leaving the block without an exception lands them in git's order: the new
files are written under temporary names next to their destinations (and
files to delete are put aside), then one commit is recorded, then the files
are renamed into place (workspace.tree.staging). If anything fails before the
commit is recorded, the working tree is put back as it was and no commit
exists; after it, only renames remain. An exception in the block discards
everything (unreferenced pack bytes are reclaimed by ``ws gc``).
"""

from __future__ import annotations

import os

from catalog import objects as q
from catalog import statcache
from catalog.statcache import ManifestEntry
from workspace.errors import DamagedObjectError, InvalidArgument, UnknownRef
from workspace.history import refs
from workspace.history.manifest import head_manifest, manifest
from workspace.history.record import record_commit
from workspace.layout import safe_join
from workspace.objects.names import MAX_LINK_TARGET
from workspace.repo import Repo
from workspace.tree.scan import under_any, working_ids
from workspace.tree.staging import StagedTree
from workspace.tree.write import dirty_error
from workspace.types import EXEC_MODE, FILE_MODE, LINK_MODE, Commit


def _check_file_mode(mode: int) -> None:
    """Only the modes ws writes: no setuid, setgid, sticky or group/world-writable bits."""
    if mode not in (FILE_MODE, EXEC_MODE):
        raise InvalidArgument(f"mode {mode!r} is not one ws writes: use 0o644 or 0o755 (put_symlink for links)")


class Transaction:
    """Stages puts, copies and deletes; commits them all at once on a clean exit."""

    def __init__(self, repo: Repo, message: str, provenance: dict | None = None):
        if not message or not message.strip():
            raise InvalidArgument("a transaction needs a commit message")
        self.repo = repo
        self.message = message.strip()
        self.provenance = provenance
        self.commit: Commit | None = None
        self._lock = None
        self._writer = None
        self._files: list[q.FileInfo] = []
        self._touched: set[str] = set()

    def __enter__(self) -> "Transaction":
        self._lock = self.repo.lock()
        self._lock.__enter__()
        try:
            self.branch, self.head = refs.read_head(self.repo.catalog)
            self.base = head_manifest(self.repo.catalog) if self.head else {}
            self.manifest = dict(self.base)
            self._writer = self.repo.store.writer().__enter__()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def _path(self, path: str) -> str:
        rel = path.strip().strip("/")
        safe_join(self.repo.root, rel)  # refuses '..', absolute and .ws/ paths
        return rel

    def put_bytes(self, path: str, data: bytes, mode: int = FILE_MODE) -> None:
        """Stage ``data`` as the content of ``path`` (``mode`` 0o644 or 0o755)."""
        rel = self._path(path)
        _check_file_mode(mode)
        digest = self._writer.add_bytes(bytes(data))
        self._stage(rel, digest, mode)

    def put_file(self, path: str, local_path: str | os.PathLike, mode: int | None = None) -> None:
        """Stage the content of a local file as ``path`` (a symlink given here is followed: its content)."""
        rel = self._path(path)
        st = os.stat(local_path)
        mode = mode if mode is not None else (EXEC_MODE if st.st_mode & 0o111 else FILE_MODE)
        _check_file_mode(mode)
        digest = self._writer.add_file(os.fspath(local_path))
        self._stage(rel, digest, mode)

    def put_symlink(self, path: str, target: str | bytes) -> None:
        """Stage a symbolic link at ``path`` whose target text is ``target`` (recorded as text, never followed)."""
        rel = self._path(path)
        raw = os.fsencode(target)
        if not 0 < len(raw) <= MAX_LINK_TARGET or b"\x00" in raw:
            raise InvalidArgument(f"a symbolic link's target is 1 to {MAX_LINK_TARGET} bytes without NUL, "
                                  f"not {target!r}")
        self._stage(rel, self._writer.add_bytes(raw), LINK_MODE)

    def _stage(self, rel: str, digest, mode: int) -> None:
        self._files.append(q.FileInfo(digest.id, digest.size, digest.chunk_ids))
        self.manifest[rel] = ManifestEntry(digest.id, digest.size, mode)
        self._touched.add(rel)

    def copy(self, ref: str, src: str, dst: str) -> None:
        """Stage a copy of a file or folder from commit ``ref`` to ``dst``."""
        source = manifest(self.repo.catalog, ref)
        src = src.strip("/")
        dst_rel = self._path(dst)
        hits = {p: e for p, e in source.items() if under_any(p, [src])}
        if not hits:
            raise UnknownRef(f"path '{src}' does not exist in {ref}")
        for path, e in hits.items():
            target = dst_rel if path == src else dst_rel + path[len(src):]
            self._path(target)
            self.manifest[target] = e
            self._touched.add(target)

    def delete(self, path: str) -> None:
        """Stage the removal of a file or folder."""
        rel = self._path(path)
        hits = [p for p in self.manifest if under_any(p, [rel])]
        if not hits:
            raise UnknownRef(f"path '{rel}' does not exist")
        for p in hits:
            del self.manifest[p]
            self._touched.add(p)

    def __exit__(self, exc_type, exc, tb) -> None:
        failed = exc_type is not None
        try:
            if not failed:
                try:
                    self._land()
                except BaseException:
                    failed = True
                    raise
        finally:
            try:
                self._writer.__exit__(Exception if failed else None, None, None)
            finally:
                self._lock.__exit__(None, None, None)

    def _land(self) -> None:
        repo = self.repo
        if self.manifest == self.base:
            self._writer.seal()
            return
        touched = sorted(self._touched)
        ids, _ = working_ids(repo, under=touched)
        dirty = [p for p in touched if ids.get(p) != (self.base[p].file_id if p in self.base else None)]
        if dirty:
            raise dirty_error(dirty, "this transaction")
        writes = {p: self.manifest[p] for p in touched if p in self.manifest}
        removals = [p for p in touched if p not in self.manifest and p in ids]
        self._writer.seal()
        infos, locs = self._content(writes)
        with StagedTree(repo, writes, removals, infos, locs) as staged:  # a failure up to the record undoes the tree
            self.commit = record_commit(repo, self._writer, self.branch, self.head, self.base,
                                                   self.manifest, self._files, self.message, self.provenance)
            rows = staged.apply()
        statcache.update_stat_cache(repo.catalog, rows, [p for p in touched if p not in self.manifest])

    def _content(self, writes: dict[str, ManifestEntry]):
        """File records and chunk locations of every file to write.

        This transaction's own content is in sealed packs that the catalog does
        not list yet (it is recorded with the commit), so it comes from the
        writer; copies of committed files come from the catalog.
        """
        cat = self.repo.catalog
        infos = {f.id: f for f in self._files}
        infos.update(q.get_files(cat, {e.file_id for e in writes.values()} - set(infos)))
        missing = sorted(p for p, e in writes.items() if e.file_id not in infos)
        chunk_ids = {c for e in writes.values() if e.file_id in infos for c in infos[e.file_id].chunk_ids}
        locs = q.chunk_locations(cat, chunk_ids)
        for _pack_id, _size, rows in self._writer.sealed:
            locs.update((r.id, r) for r in rows if r.id in chunk_ids)
        missing += sorted(p for p, e in writes.items()
                          if e.file_id in infos and not set(infos[e.file_id].chunk_ids) <= locs.keys())
        if missing:
            raise DamagedObjectError(f"content of {missing[0]} is missing from the store; run 'ws fsck'")
        return infos, locs
