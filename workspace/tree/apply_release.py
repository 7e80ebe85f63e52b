"""Writing a pulled release's files into the working tree, safely.

Order (DESIGN.md): refuse conflicts first, then stage every file under a
temporary name next to its destination with its SHA-256 and size checked,
and only when every file passed rename them all into place. A path whose
parent folder is a symlink is refused; nothing lands outside the workspace.
The files are a release record's entries (path, id, size, mode, chunks);
what is release-specific (a conflicting local release, files an older
version put here) is decided by :mod:`workspace.releases.exchange`.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from catalog import objects as q
from catalog.statcache import StatEntry
from workspace.errors import DamagedObjectError, reporting_no_space
from workspace.faults import checkpoint
from workspace.history import refs
from workspace.history.manifest import Manifest, head_manifest
from workspace.layout import safe_join
from workspace.repo import Repo
from workspace.tree.leftovers import noting_temp_folders, parent_folders
from workspace.tree.scan import working_ids
from workspace.tree.write import clear_file_parents, dirty_error
from workspace.types import Progress

_BIG_FILE = 1 << 20  # files at least this big are staged one per task, the rest in batches
_BATCH_FILES, _BATCH_BYTES = 128, 16 << 20  # one task stages this many small files (hand-offs cost)
_WORKERS = 4  # staging threads: file creation waits on the kernel, hashing and copies release the GIL


@dataclass
class TreePlan:
    """What writing a release's files would do: the files to write, and what the tree and HEAD hold now."""

    writes: list[dict]
    unchanged: int
    head: Manifest  # HEAD's manifest
    ids: dict[str, str]  # working file -> content id


def plan_files(repo: Repo, files: list[dict], force: bool, what: str) -> TreePlan:
    """The release files (record entries) that must be written; refuses to overwrite local changes unless ``force``.

    ``what`` names the operation in the refusal ("pull of ds@1.2.0").
    """
    head = head_manifest(repo.catalog) if refs.read_head(repo.catalog)[1] else {}
    ids, stats = working_ids(repo, head=head)
    writes, conflicts, unchanged = [], [], 0
    folders: dict[str, set[str]] = {}
    for f in files:
        path, mode = f["path"], f.get("mode", 0o644)
        have, base = ids.get(path), head.get(path)
        if have == f["id"] and stats[path].mode == mode:
            unchanged += 1
            continue
        # clean: as HEAD has it, content and kind (a file turned into a link of the same text is a change)
        clean = (have is None and base is None) or (
            base is not None and have == base.file_id and stats[path].mode == base.mode)
        if have is None and _is_folder(str(repo.root), path, folders):
            clean = False  # a folder stands where the release has a file: only --force replaces it
        if not clean and not force:
            conflicts.append(path)
        writes.append(f)
    # a file (in the tree or in HEAD) where the release needs a folder would be removed
    conflicts += [p for p in file_parents(files, set(ids) | set(head)) if not force]
    if conflicts:
        raise dirty_error(sorted(conflicts), what)
    return TreePlan(writes, unchanged, head, ids)


def _is_folder(root: str, path: str, folders: dict[str, set[str]]) -> bool:
    """``os.path.isdir(root/path)``, from one listing per parent folder (``folders`` caches them).

    A clone asked this of every file of the release, one stat each (8,000 of them for ``mixed``,
    a tenth of its time on a busy disk); the parent folders are far fewer, and in a new clone
    none exists yet.
    """
    parent, _, name = path.rpartition("/")
    names = folders.get(parent)
    if names is None:
        names = set()
        try:
            with os.scandir(os.path.join(root, parent) if parent else root) as it:
                for entry in it:
                    try:
                        if entry.is_dir():  # follows a link, as os.path.isdir does
                            names.add(entry.name)
                    except OSError:
                        continue
        except OSError:  # no such folder (or not one): nothing in it is a folder
            pass
        folders[parent] = names
    return name in names


def file_parents(files: list[dict], paths: set[str]) -> list[str]:
    """Those of ``paths`` that are parent folders of some file of a release."""
    parents = {f["path"][:i] for f in files for i, ch in enumerate(f["path"]) if ch == "/"}
    return sorted(parents & paths)


def write_tree(repo: Repo, writes: list[dict], progress: Progress | None,
               fetch: Callable[[Callable[[list], None]], None] | None = None) -> dict[str, StatEntry]:
    """Stage every file under a temporary name (verified), then rename them all into place.

    ``fetch(on_stored)``, when given, downloads the chunks the store lacks
    meanwhile, calling ``on_stored(rows)`` with the chunk locations of each
    pack once it is recorded: a file is staged as soon as its last chunk is
    stored, so writing the tree overlaps the download. A failure (a full disk
    is :class:`NoSpace`) leaves no temporary file behind.
    """
    with reporting_no_space(repo.root), noting_temp_folders(repo, parent_folders(f["path"] for f in writes)):
        tree = _TreeWriter(repo, writes, progress)
        try:
            if fetch is not None:
                fetch(tree.stored)
            tree.stage_rest()
            return tree.rename_all()
        except BaseException:
            tree.abort()
            raise


class _TreeWriter:
    """Stages a release's files on a thread pool as their chunks become available, then renames them."""

    def __init__(self, repo: Repo, writes: list[dict], progress: Progress | None):
        from sync.transfer import Meter

        self.repo, self.root = repo, str(repo.root)
        self.meter = Meter(progress, "writing", sum(f["size"] for f in writes))
        self.started = time.time_ns()
        wanted = {c for f in writes for c in f["chunks"]}
        self.locs = q.chunk_locations(repo.catalog, wanted)  # one query, not one per file
        for folder in sorted({f["path"].rpartition("/")[0] for f in writes} - {""}):
            clear_file_parents(repo, folder + "/x")  # a tracked file where the release needs a folder
            # checked again right before writing: a symlinked parent may have appeared since validation
            safe_join(repo.root, folder + "/x").parent.mkdir(parents=True, exist_ok=True)
        self.staged: list[tuple[dict, str, str, os.stat_result]] = []
        self.futures: list[Future] = []
        self.failed: BaseException | None = None  # the first failure of a staging task, set as it ends
        self.batch: list[dict] = []
        self.batch_bytes = 0
        # Every file on the pool, tiny ones in batches: creating a file is mostly the kernel's work
        # (the GIL is released), so several creates, copies and hashes overlap across files.
        self.pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="ws-stage")
        self.missing: dict[int, int] = {}  # file index -> chunks not stored yet
        self.waiting: dict[str, list[int]] = {}  # chunk -> indexes of the files waiting for it
        self.order = sorted(writes, key=_big_first)  # big files first: the pool does not end on one alone
        for i, f in enumerate(self.order):
            lacking = {c for c in f["chunks"] if c not in self.locs}
            if lacking:
                self.missing[i] = len(lacking)
                for c in lacking:
                    self.waiting.setdefault(c, []).append(i)
            else:
                self._ready(f)
        self._flush()

    def stored(self, rows: list) -> None:
        """Chunks just recorded in the store (on the caller's thread): stage the files now complete."""
        for row in rows:
            waiting = self.waiting.pop(row.id, None)
            if waiting is None:
                continue
            self.locs.setdefault(row.id, row)  # before any file that needs it is handed to a thread
            for i in waiting:
                self.missing[i] -= 1
                if not self.missing[i]:
                    del self.missing[i]
                    self._ready(self.order[i])
        self._flush()
        if self.failed is not None:  # a file that failed stops the download now, not after it
            raise self.failed

    def stage_rest(self) -> None:
        """Stage what is still waiting (its missing chunk is then reported) and wait for every file."""
        for i in sorted(self.missing):
            self._ready(self.order[i])
        self.missing.clear()
        self._flush()
        for fut in self.futures:
            fut.result()

    def _ready(self, f: dict) -> None:
        self.batch.append(f)
        self.batch_bytes += f["size"]
        if len(self.batch) >= _BATCH_FILES or self.batch_bytes >= _BATCH_BYTES or f["size"] >= _BIG_FILE:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            fut = self.pool.submit(self._stage, self.batch)
            fut.add_done_callback(self._note_failure)  # stored() checks one field, not every task so far
            self.futures.append(fut)
            self.batch, self.batch_bytes = [], 0

    def _note_failure(self, fut: Future) -> None:
        """A task ended (on its worker thread): keep the first exception of one that was not cancelled."""
        if self.failed is None and not fut.cancelled():
            self.failed = fut.exception()

    def _stage(self, batch: list[dict]) -> None:
        """Stage a batch of files (on a worker thread)."""
        for f in batch:
            dest = self.root + "/" + f["path"]  # every parent folder was checked by safe_join above
            tmp, st = _stage_one(self.repo, f, dest, self.locs)
            self.staged.append((f, dest, tmp, st))  # list.append is atomic: safe from worker threads
            checkpoint("pull:staged")  # tests: killed with temporary files in the tree
            self.meter.add(f["size"])

    def abort(self) -> None:
        """After a failure: stop staging and remove every temporary file."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        for _, _, tmp, _ in self.staged:  # those renamed already are gone under this name
            Path(tmp).unlink(missing_ok=True)

    def rename_all(self) -> dict[str, StatEntry]:
        """Every file verified: give each its real name; their stat cache rows.

        A rename that fails (a folder that had to grow on a full disk) leaves the
        files not yet renamed to :meth:`abort`, which ``write_tree`` calls.
        """
        self.pool.shutdown(wait=True)
        rows: dict[str, StatEntry] = {}
        for f, dest, tmp, st in self.staged:
            try:
                os.replace(tmp, dest)
            except IsADirectoryError:  # an untracked folder where the release has a file (only with --force)
                if os.path.islink(dest):
                    raise
                shutil.rmtree(dest)
                os.replace(tmp, dest)
            # a rename keeps size, mtime and inode: the stat taken when staging is the file's
            rows[f["path"]] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, f["id"], self.started)
        return rows


def _big_first(f: dict) -> int:
    """Sort key: big files first, so the pool does not end waiting on one big file alone."""
    return -f["size"] if f["size"] >= _BIG_FILE else 0


def _stage_one(repo: Repo, f: dict, dest: str, locs: dict) -> tuple[str, os.stat_result]:
    """One file under a temporary name, its SHA-256 and size checked; the name and its stat."""
    from workspace.objects.store import DamagedObject

    info = q.FileInfo(f["id"], f["size"], f["chunks"])
    try:
        # every chunk was verified as it entered the store (fetched, adopted, or committed earlier)
        # the caller syncs the file system once at the end: big files start their write-back now
        tmp = repo.store.stage_file(info, dest, f.get("mode", 0o644), locs, chunks_verified=True, write_back=True)
    except DamagedObject as exc:
        raise DamagedObjectError(f"cannot write '{f['path']}': {exc}") from exc
    st = os.lstat(tmp)  # a symlink's own stat, as the walk sees it
    if st.st_size != f["size"]:  # a link's size is its target's length
        Path(tmp).unlink(missing_ok=True)
        raise DamagedObjectError(f"cannot write '{f['path']}': the record says {f['size']} bytes")
    return tmp, st
