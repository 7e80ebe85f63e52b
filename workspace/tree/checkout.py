"""Moving the working tree: checkout, switch and restore.

Every file is written to a temporary name in its folder, verified against its
SHA-256, and renamed into place, so a crash never leaves a half-written file
under a real name. All needed content is checked to be present before the
first file is touched.
"""

from __future__ import annotations

import os
import time

from catalog import history, statcache
from catalog import objects as q
from catalog.statcache import ManifestEntry, StatEntry
from workspace.history import refs
from workspace.errors import DamagedObjectError, UncommittedChanges, UnknownRef
from workspace.layout import safe_join
from workspace.objects.store import DamagedObject
from workspace.tree.scan import Progress, under_any
from workspace.types import Commit


def _dirty_error(paths: list[str], what: str) -> UncommittedChanges:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return UncommittedChanges(f"{what} would overwrite uncommitted changes in {shown}; "
                              "commit them or use --force")


def checkout(ws, ref: str, *, force: bool = False, progress: Progress | None = None) -> Commit:
    """Make the working tree match ``ref``. A branch name attaches HEAD; anything else detaches it."""
    is_branch = history.get_ref(ws.catalog, ref) is not None
    target_id = ws.resolve(ref)
    with ws.lock():
        target = ws.get_commit(target_id)
        _move_tree(ws, target_id, force, progress, what=f"checkout of {ref}")
        if is_branch:
            refs.set_head_branch(ws.catalog, ref)
        else:
            refs.set_head_detached(ws.catalog, target_id)
    return target


def switch(ws, branch: str, *, create: bool = False, force: bool = False) -> Commit | None:
    """Switch to ``branch``; with ``create`` make it at HEAD first (no files change then)."""
    if create:
        refs.check_branch_name(branch)
        if history.get_ref(ws.catalog, branch) is not None:
            from workspace.errors import InvalidArgument

            raise InvalidArgument(f"branch '{branch}' already exists")
        _, head = ws.head()
        with ws.lock():
            if head is not None:
                history.set_ref(ws.catalog, branch, head, time.time_ns())
            refs.set_head_branch(ws.catalog, branch)
        return ws.get_commit(head) if head else None
    if history.get_ref(ws.catalog, branch) is None:
        raise UnknownRef(f"unknown branch '{branch}' (use 'ws switch -c {branch}' to create it)")
    return checkout(ws, branch, force=force)


def _move_tree(ws, target_id: str, force: bool, progress, what: str) -> None:
    old = ws.manifest("HEAD")
    new = ws.manifest(target_id)
    ids, files = ws.working_ids(head=old)
    dirty = {p for p in old if ids.get(p) != old[p].file_id or (p in files and files[p].mode != old[p].mode)}
    conflicts = [p for p in dirty if new.get(p) != old[p]]
    conflicts += [p for p in ids if p not in old and p in new and ids[p] != new[p].file_id]
    if conflicts and not force:
        raise _dirty_error(sorted(conflicts), what)

    def needs_write(p: str, e: ManifestEntry) -> bool:
        if p in ids and ids[p] == e.file_id and files[p].mode == e.mode:
            return False
        # a local change to a file the target does not change is carried over, as git does
        return force or p not in dirty or new.get(p) != old.get(p)

    to_write = {p: e for p, e in new.items() if needs_write(p, e)}
    to_delete = [p for p in old if p not in new and p in ids]
    _check_destinations(ws, to_write, set(to_delete))
    _ensure_available(ws, to_write)
    for path in to_delete:
        _remove(ws, path)
    written = _write_files(ws, to_write, progress)
    statcache.update_stat_cache(ws.catalog, written, to_delete)
    statcache.replace_head_manifest(ws.catalog, target_id, new)


def _check_destinations(ws, to_write: dict, deleting: set[str]) -> None:
    """Refuse, before touching anything, paths that are unsafe or blocked by a folder of other files."""
    for path in to_write:
        dest = safe_join(ws.root, path)
        if dest.is_dir() and not dest.is_symlink():
            for folder, _dirs, names in os.walk(dest):
                for name in names:
                    rel = os.path.relpath(os.path.join(folder, name), ws.root).replace(os.sep, "/")
                    if rel not in deleting:
                        raise UncommittedChanges(
                            f"'{path}' is a folder holding files the target does not remove ({rel}); "
                            "move them away first")


def _ensure_available(ws, entries: dict[str, ManifestEntry]) -> None:
    infos = q.get_files(ws.catalog, {e.file_id for e in entries.values()})
    missing = [p for p, e in entries.items() if e.file_id not in infos]
    if missing:
        raise DamagedObjectError(f"content of {missing[0]} is missing from the store; run 'ws fsck'")
    chunk_ids = {c for info in infos.values() for c in info.chunk_ids}
    have = q.known_chunks(ws.catalog, chunk_ids)
    lost = chunk_ids - have
    if lost:
        bad = next(p for p, e in entries.items() if set(infos[e.file_id].chunk_ids) & lost)
        raise DamagedObjectError(f"content of {bad} is missing from the store; run 'ws fsck'")


def _write_files(ws, entries: dict[str, ManifestEntry], progress) -> dict[str, StatEntry]:
    total = sum(e.size for e in entries.values())
    done = 0
    rows: dict[str, StatEntry] = {}
    infos = q.get_files(ws.catalog, {e.file_id for e in entries.values()})
    for path in sorted(entries):
        e = entries[path]
        dest = safe_join(ws.root, path)
        _clear_file_parents(ws, path)
        recorded = time.time_ns()
        try:
            ws.store.write_file_to(infos[e.file_id], str(dest), e.mode)
        except DamagedObject as exc:
            raise DamagedObjectError(f"cannot write '{path}': {exc}") from exc
        st = os.stat(dest)
        rows[path] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, e.file_id, recorded)
        done += e.size
        if progress:
            progress("writing", done, total)
    return rows


def _clear_file_parents(ws, path: str) -> None:
    """A file where a folder must go (tracked file replaced by a folder) is removed."""
    parts = path.split("/")[:-1]
    cur = ws.root
    for part in parts:
        cur = cur / part
        if cur.is_file() and not cur.is_symlink():
            cur.unlink()
            return


def _remove(ws, path: str) -> None:
    full = safe_join(ws.root, path)
    try:
        full.unlink()
    except FileNotFoundError:
        return
    parent = full.parent
    while parent != ws.root:
        try:
            parent.rmdir()  # only succeeds when empty
        except OSError:
            break
        parent = parent.parent


def restore(ws, paths: list[str], source: str = "HEAD", *, cwd: str | None = None) -> list[str]:
    """Write ``source``'s version of the given files or folders over the working tree."""
    prefixes = [ws.rel(p, cwd) for p in paths]
    manifest = ws.manifest(source)
    chosen: dict[str, ManifestEntry] = {}
    for pre in prefixes:
        hits = {p: e for p, e in manifest.items() if under_any(p, [pre])}
        if not hits:
            raise UnknownRef(f"path '{pre or '.'}' does not exist in {source}")
        chosen.update(hits)
    with ws.lock():
        _ensure_available(ws, chosen)
        rows = _write_files(ws, chosen, None)
        statcache.update_stat_cache(ws.catalog, rows)
    return sorted(chosen)
