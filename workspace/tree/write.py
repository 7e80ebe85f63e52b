"""Writing committed files into the working tree, and the checks made before the first one is touched.

Every file is written to a temporary name in its folder, verified against its
SHA-256, and renamed into place (the store's ``write_file_to``), so a crash
never leaves a half-written file under a real name. All needed content is
checked to be present before the first file is touched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from catalog import objects as q
from catalog.statcache import ManifestEntry, StatEntry
from workspace.errors import DamagedObjectError, UncommittedChanges
from workspace.layout import check_rel, safe_join
from workspace.objects.names import require_symlinks
from workspace.repo import Repo
from workspace.tree.leftovers import noting_temp_folders, parent_folders
from workspace.types import LINK_MODE, Progress


def dirty_error(paths: list[str], what: str) -> UncommittedChanges:
    """The error for ``what`` (a checkout, a pull...) refusing to overwrite uncommitted changes in ``paths``."""
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return UncommittedChanges(f"{what} would overwrite uncommitted changes in {shown}; "
                              "commit them or use --force")


def check_destinations(repo: Repo, to_write: dict, deleting: set[str]) -> None:
    """Refuse, before touching anything, paths that are unsafe or blocked by a folder of other files.

    A parent folder that is a symlink is unsafe, unless that symlink is itself
    one of the paths ``deleting`` removes first (a link replaced by a folder).
    """
    for path in to_write:
        dest = _join_after_deletes(repo, path, deleting)
        if dest is None:
            continue  # below a link the move deletes first: nothing stands there yet
        if dest.is_dir() and not dest.is_symlink():
            for folder, _dirs, names in os.walk(dest):
                for name in names:
                    rel = os.path.relpath(os.path.join(folder, name), repo.root).replace(os.sep, "/")
                    if rel not in deleting:
                        raise UncommittedChanges(
                            f"'{path}' is a folder holding files the target does not remove ({rel}); "
                            "move them away first")


def _join_after_deletes(repo: Repo, path: str, deleting: set[str]) -> Path | None:
    """safe_join; None for a path below a parent the move deletes first (a link that becomes a folder)."""
    parts = check_rel(path)
    for i in range(1, len(parts)):
        above = "/".join(parts[:i])
        if above in deleting:
            safe_join(repo.root, above)  # the link's own parents must be real folders
            return None
    return safe_join(repo.root, path)


def ensure_available(repo: Repo, entries: dict[str, ManifestEntry]) -> None:
    """Refuse (DamagedObjectError) when the content of any of ``entries`` is not all in the store.

    Symbolic links among them are refused (SymlinksNotSupported) where this
    system cannot create them: before the first file is touched.
    """
    links = sorted(p for p, e in entries.items() if e.mode == LINK_MODE)
    if links:
        require_symlinks("the target", links)
    infos = q.get_files(repo.catalog, {e.file_id for e in entries.values()})
    missing = [p for p, e in entries.items() if e.file_id not in infos]
    if missing:
        raise DamagedObjectError(f"content of {missing[0]} is missing from the store; run 'ws fsck'")
    chunk_ids = {c for info in infos.values() for c in info.chunk_ids}
    have = q.known_chunks(repo.catalog, chunk_ids)
    lost = chunk_ids - have
    if lost:
        bad = next(p for p, e in entries.items() if set(infos[e.file_id].chunk_ids) & lost)
        raise DamagedObjectError(f"content of {bad} is missing from the store; run 'ws fsck'")


def write_files(repo: Repo, entries: dict[str, ManifestEntry], progress: Progress | None) -> dict[str, StatEntry]:
    """Write committed files into the tree (each verified, renamed into place); their stat cache rows."""
    from workspace.objects.store import DamagedObject

    total = sum(e.size for e in entries.values())
    done = 0
    rows: dict[str, StatEntry] = {}
    infos = q.get_files(repo.catalog, {e.file_id for e in entries.values()})
    with noting_temp_folders(repo, parent_folders(entries)):  # found and removed if we are killed
        for path in sorted(entries):
            e = entries[path]
            dest = safe_join(repo.root, path)
            clear_file_parents(repo, path)
            recorded = time.time_ns()
            try:
                repo.store.write_file_to(infos[e.file_id], str(dest), e.mode)
            except DamagedObject as exc:
                raise DamagedObjectError(f"cannot write '{path}': {exc}") from exc
            st = os.lstat(dest)  # a symlink's own stat, as the walk sees it
            rows[path] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, e.file_id, recorded)
            done += e.size
            if progress:
                progress("writing", done, total)
    return rows


def clear_file_parents(repo: Repo, path: str) -> None:
    """A file where a folder must go (tracked file replaced by a folder) is removed."""
    parts = path.split("/")[:-1]
    cur = repo.root
    for part in parts:
        cur = cur / part
        if cur.is_file() and not cur.is_symlink():
            cur.unlink()
            return


def remove_file(repo: Repo, path: str) -> None:
    """Delete a working file and the folders it leaves empty."""
    full = safe_join(repo.root, path)
    try:
        full.unlink()
    except FileNotFoundError:
        return
    parent = full.parent
    while parent != repo.root:
        try:
            parent.rmdir()  # only succeeds when empty
        except OSError:
            break
        parent = parent.parent
