"""Writing a pulled release into the working tree, safely.

Order (DESIGN.md): refuse conflicts first, then stage every file under a
temporary name next to its destination with its SHA-256 and size checked,
and only when every file passed rename them all into place. A path whose
parent folder is a symlink is refused; nothing lands outside the workspace.
"""

from __future__ import annotations

import os
import shutil
import time

from catalog import objects as q
from catalog.statcache import StatEntry
from workspace.errors import DamagedObjectError

_BIG_FILE = 1 << 20  # files at least this big are written by several threads at once


def check_not_conflicting(ws, record: dict) -> None:
    """Refuse early (before touching anything) when this workspace has other files under title@version."""
    from catalog import releases as release_queries
    from sync.remote import record_digest
    from workspace.releases import ReleaseConflict

    mine = release_queries.get_release(ws.catalog, record["title"], record["version"])
    if mine is not None and mine.digest != record_digest(record):
        raise ReleaseConflict(f"release '{record['title']}@{record['version']}' already exists here with "
                              "different files; releases are immutable")


def plan_tree(ws, record: dict, force: bool) -> tuple[list[dict], int, list[str]]:
    """The record's files that must be written, and files of an older version to remove.

    Refuses to overwrite local changes unless ``force``.
    """
    from workspace.tree.checkout import _dirty_error

    head = ws.manifest("HEAD") if ws.head()[1] else {}
    ids, stats = ws.working_ids(head=head)
    writes, conflicts, unchanged = [], [], 0
    for f in record["files"]:
        path, mode = f["path"], f.get("mode", 0o644)
        have, base = ids.get(path), head.get(path)
        if have == f["id"] and stats[path].mode == mode:
            unchanged += 1
            continue
        clean = (have is None and base is None) or (base is not None and have == base.file_id)
        if have is None and os.path.isdir(os.path.join(ws.root, path)):
            clean = False  # a folder stands where the release has a file: only --force replaces it
        if not clean and not force:
            conflicts.append(path)
        writes.append(f)
    # a file (in the tree or in HEAD) where the release needs a folder would be removed
    conflicts += [p for p in file_parents(record, set(ids) | set(head)) if not force]
    if conflicts:
        raise _dirty_error(sorted(conflicts), f"pull of {record['title']}@{record['version']}")
    return writes, unchanged, dropped_paths(ws, record, head, ids)


def dropped_paths(ws, record: dict, head: dict, ids: dict) -> list[str]:
    """Files an earlier version of this release put here that the pulled version no longer has.

    Only a file that HEAD holds exactly as another version of this release
    had it, and that is clean in the working tree, is removed: pulling
    ds@1.2.0 over ds@1.1.0 makes the release's paths match 1.2.0 without
    touching anything the user changed or added. The removal is part of the
    pull's commit, so history keeps the files.
    """
    wanted = {f["path"] for f in record["files"]}
    out: set[str] = set()
    for rel in ws.releases.list(record["title"]):
        if rel.version == record["version"]:
            continue
        for f in rel.files:
            base = head.get(f.path)
            if f.path not in wanted and base is not None and base.file_id == f.id and ids.get(f.path) == f.id:
                out.add(f.path)
    return sorted(out)


def file_parents(record: dict, files: set[str]) -> list[str]:
    """Paths in ``files`` that are parent folders of some path of the record."""
    parents = {f["path"][:i] for f in record["files"] for i, ch in enumerate(f["path"]) if ch == "/"}
    return sorted(parents & files)


def write_tree(ws, writes: list[dict], progress) -> dict[str, StatEntry]:
    """Stage every file under a temporary name (verified), then rename them all into place."""
    from sync.transfer import Meter, bounded_map
    from workspace.tree.checkout import _clear_file_parents
    from workspace.layout import safe_join

    meter = Meter(progress, "writing", sum(f["size"] for f in writes))
    started = time.time_ns()
    locs = q.chunk_locations(ws.catalog, {c for f in writes for c in f["chunks"]})  # one query, not one per file
    for folder in sorted({f["path"].rpartition("/")[0] for f in writes} - {""}):
        _clear_file_parents(ws, folder + "/x")  # a tracked file where the release needs a folder
        # checked again right before writing: a symlinked parent may have appeared since validation
        safe_join(ws.root, folder + "/x").parent.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[dict, str, str]] = []
    root = str(ws.root)

    def stage(batch: list[dict]) -> None:
        """Stage a batch of files (runs on worker threads for big files)."""
        for f in batch:
            dest = root + "/" + f["path"]  # every parent folder was checked by safe_join above
            tmp = _stage_one(ws, f, dest, locs)
            staged.append((f, dest, tmp))  # list.append is atomic: safe from worker threads
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
            _unlink(tmp)
        raise
    rows: dict[str, StatEntry] = {}
    for f, dest, tmp in staged:  # every file verified: now they may take their real names
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)  # an untracked folder where the release has a file (only with --force)
        os.replace(tmp, dest)
        st = os.stat(dest)
        rows[f["path"]] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, f["id"], started)
    return rows


def _stage_one(ws, f: dict, dest: str, locs: dict) -> str:
    """One file under a temporary name, its SHA-256 and size checked."""
    from workspace.objects.store import DamagedObject

    info = q.FileInfo(f["id"], f["size"], f["chunks"])
    try:
        # every chunk was verified as it entered the store (fetched, adopted, or committed earlier)
        tmp = ws.store.stage_file(info, dest, f.get("mode", 0o644), locs, chunks_verified=True)
    except DamagedObject as exc:
        raise DamagedObjectError(f"cannot write '{f['path']}': {exc}") from exc
    if os.path.getsize(tmp) != f["size"]:
        _unlink(tmp)
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


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
