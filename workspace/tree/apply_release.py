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
from dataclasses import dataclass
from pathlib import Path

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

_BIG_FILE = 1 << 20  # files at least this big are written by several threads at once


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


def write_tree(repo: Repo, writes: list[dict], progress: Progress | None) -> dict[str, StatEntry]:
    """Stage every file under a temporary name (verified), then rename them all into place.

    A failure (a full disk is :class:`NoSpace`) leaves no temporary file behind.
    """
    with reporting_no_space(repo.root), noting_temp_folders(repo, parent_folders(f["path"] for f in writes)):
        return _write_tree(repo, writes, progress)


def _write_tree(repo: Repo, writes: list[dict], progress: Progress | None) -> dict[str, StatEntry]:
    from sync.transfer import Meter, bounded_map

    meter = Meter(progress, "writing", sum(f["size"] for f in writes))
    started = time.time_ns()
    locs = q.chunk_locations(repo.catalog, {c for f in writes for c in f["chunks"]})  # one query, not one per file
    for folder in sorted({f["path"].rpartition("/")[0] for f in writes} - {""}):
        clear_file_parents(repo, folder + "/x")  # a tracked file where the release needs a folder
        # checked again right before writing: a symlinked parent may have appeared since validation
        safe_join(repo.root, folder + "/x").parent.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[dict, str, str]] = []
    root = str(repo.root)

    def stage(batch: list[dict]) -> None:
        """Stage a batch of files (runs on worker threads for big files)."""
        for f in batch:
            dest = root + "/" + f["path"]  # every parent folder was checked by safe_join above
            tmp = _stage_one(repo, f, dest, locs)
            staged.append((f, dest, tmp))  # list.append is atomic: safe from worker threads
            checkpoint("pull:staged")  # tests: killed with temporary files in the tree
            meter.add(f["size"])

    # threads pay off for big files (hashing and I/O release the GIL); for tiny files the
    # GIL hand-offs cost more than the work, so those are staged on this thread
    big = [f for f in writes if f["size"] >= _BIG_FILE]
    small = [f for f in writes if f["size"] < _BIG_FILE]
    try:
        for _ in bounded_map(stage, _batches(big), workers=4):
            pass
        for batch in _batches(small):
            stage(batch)
    except BaseException:
        for _, _, tmp in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    rows: dict[str, StatEntry] = {}
    try:
        for f, dest, tmp in staged:  # every file verified: now they may take their real names
            if os.path.isdir(dest) and not os.path.islink(dest):
                shutil.rmtree(dest)  # an untracked folder where the release has a file (only with --force)
            os.replace(tmp, dest)
            st = os.lstat(dest)  # a symlink's own stat, as the walk sees it
            rows[f["path"]] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, f["id"], started)
    except BaseException:
        for f, _, tmp in staged:  # a rename failed (a folder that had to grow on a full disk)
            if f["path"] not in rows:
                Path(tmp).unlink(missing_ok=True)
        raise
    return rows


def _stage_one(repo: Repo, f: dict, dest: str, locs: dict) -> str:
    """One file under a temporary name, its SHA-256 and size checked."""
    from workspace.objects.store import DamagedObject

    info = q.FileInfo(f["id"], f["size"], f["chunks"])
    try:
        # every chunk was verified as it entered the store (fetched, adopted, or committed earlier)
        tmp = repo.store.stage_file(info, dest, f.get("mode", 0o644), locs, chunks_verified=True)
    except DamagedObject as exc:
        raise DamagedObjectError(f"cannot write '{f['path']}': {exc}") from exc
    if os.lstat(tmp).st_size != f["size"]:  # a link's size is its target's length
        Path(tmp).unlink(missing_ok=True)
        raise DamagedObjectError(f"cannot write '{f['path']}': the record says {f['size']} bytes")
    return tmp


def _batches(writes: list[dict], max_files: int = 256, max_bytes: int = 16 << 20):
    """Group files so that one task stages many tiny files (thread hand-offs cost more than they do)."""
    batch: list[dict] = []
    size = 0
    for f in writes:
        batch.append(f)
        size += f["size"]
        if len(batch) >= max_files or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
