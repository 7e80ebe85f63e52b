"""Walking the working tree and deciding, through the stat cache, what changed.

A file is re-hashed only when its size, mtime or inode differ from the cache,
or when the cached stat is "racy": taken so soon after the file was written
that a later write within the same timestamp tick could go unseen (git's rule).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Iterable, NamedTuple

from catalog import statcache
from catalog.errors import CatalogBusy, CatalogFull, CatalogReadOnly
from catalog.statcache import ManifestEntry, StatEntry
from workspace.history.manifest import head_manifest
from workspace.objects.hashing import hash_file, hash_link
from workspace.repo import Repo
from workspace.tree.ignore import IgnoreRules
from workspace.types import EXEC_MODE, FILE_MODE, LINK_MODE, Progress

RACY_NS = 50_000_000  # a stat this close to its recording time is re-checked (kernel ticks are ~4 ms)
COARSE_RACY_NS = 2_000_000_000  # file systems with whole-second (or FAT's 2 s) timestamps


def is_racy(mtime_ns: int, recorded_ns: int) -> bool:
    """Whether a write within the same timestamp tick as ``mtime_ns`` could have gone unseen.

    A file whose mtime has no sub-second part lives on a file system with
    coarse timestamps, which needs the wider window.
    """
    window = COARSE_RACY_NS if mtime_ns % 1_000_000_000 == 0 else RACY_NS
    return mtime_ns >= recorded_ns - window


# The functional form, for ws status's start-up: see catalog/statcache.py.
FileStat = NamedTuple("FileStat", [
    ("size", int),
    ("mtime_ns", int),
    ("ino", int),
    ("mode", int),  # 0o755 when executable, 0o644, or 0o120000 for a symbolic link (its own lstat)
])
FileStat.__doc__ = """What the walk saw of one working file (a plain tuple, so snapshots compare at C speed)."""


def file_mode(st_mode: int) -> int:
    """Git-like mode of an lstat: a symbolic link, or a file executable or not."""
    if stat.S_ISLNK(st_mode):
        return LINK_MODE
    return EXEC_MODE if st_mode & 0o111 else FILE_MODE


def _entry(st: os.stat_result) -> FileStat | None:
    """A regular file or symbolic link as the walk records it (from lstat); None for anything else."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return None
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino, file_mode(st.st_mode))


def walk(root: Path, rules: IgnoreRules, under: Iterable[str] = ()) -> dict[str, FileStat]:
    """Every regular file and symbolic link below ``root`` (or below the ``under`` prefixes), not ignored.

    Symlinks are recorded as links and never followed: below a folder that
    is a symlink there is nothing of ours, so such a prefix yields nothing
    (``ws commit`` refuses it first, as git refuses a path "beyond a symbolic link").
    """
    from workspace.tree.dirwalk import flatten, listings

    out: dict[str, FileStat] = {}
    real_dirs: set[str] = set()
    for start in sorted(set(under)) or [""]:
        full = root / start if start else root
        if start:
            if _below_a_link(root, start, real_dirs):
                continue
            try:
                st = os.lstat(full)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(st.st_mode):
                entry = _entry(st)
                if entry is not None and not rules.ignored_file(start):
                    out[start] = entry
                continue
        for path, v in flatten(listings(str(full), start, rules)).items():
            out[path] = FileStat._make(v)
    return out


def _below_a_link(root: Path, path: str, real_dirs: set[str]) -> bool:
    """Whether a folder on ``path`` is not a real folder (a symlink, say); ``real_dirs`` caches the good ones."""
    parent = path.rpartition("/")[0]
    todo = []
    while parent and parent not in real_dirs:
        todo.append(parent)
        parent = parent.rpartition("/")[0]
    for folder in reversed(todo):  # outermost first
        try:
            if not stat.S_ISDIR(os.lstat(os.path.join(root, folder)).st_mode):
                return True
        except OSError:
            return True
        real_dirs.add(folder)
    return False


def add_tracked(root: Path, files: dict[str, FileStat], paths: Iterable[str]) -> None:
    """Add tracked files the walk skipped because an ignore rule matches them now.

    As in git, ignore rules apply to untracked files only: a tracked file stays
    tracked (and its changes seen) until it is removed. A tracked path whose
    folder has become a symlink is gone (what the link leads to is not ours).
    """
    real_dirs: set[str] = set()
    for p in paths:
        full = os.path.join(root, p)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        entry = _entry(st)
        if entry is not None and not _below_a_link(root, p, real_dirs):
            files[p] = entry


def classify(files: dict[str, FileStat], cache: dict[str, StatEntry]) -> tuple[dict[str, str], list[str]]:
    """Content ids the cache can vouch for, and the paths that must be read."""
    ids: dict[str, str] = {}
    todo: list[str] = []
    for path, st in files.items():
        c = cache.get(path)
        if (
            c is not None
            and c.size == st.size
            and c.mtime_ns == st.mtime_ns
            and c.ino == st.ino
            and not is_racy(c.mtime_ns, c.recorded_ns)
        ):
            ids[path] = c.file_id
        else:
            todo.append(path)
    return ids, todo


def hash_pending(
    root: Path, files: dict[str, FileStat], todo: list[str], ids: dict[str, str], progress: Progress | None = None
) -> dict[str, StatEntry]:
    """Hash the paths the cache could not vouch for; fills ``ids``, returns cache rows."""
    updates: dict[str, StatEntry] = {}
    total = sum(files[p].size for p in todo)
    done = 0
    for path in todo:
        st = files[path]
        recorded = time.time_ns()
        try:
            fid, size = hash_link(root / path) if st.mode == LINK_MODE else hash_file(root / path)
        except (FileNotFoundError, IsADirectoryError):
            del files[path]
            continue
        except OSError as exc:  # a link that became a file (EINVAL) or the reverse (ELOOP): seen next time
            if exc.errno not in (errno.EINVAL, errno.ELOOP):
                raise
            del files[path]
            continue
        ids[path] = fid
        if size == st.size:  # a size change means it changed while we read it: leave it uncached
            updates[path] = StatEntry(st.size, st.mtime_ns, st.ino, fid, recorded)
        done += st.size
        if progress:
            progress("hashing", done, total)
    return updates


def under_any(path: str, prefixes: list[str]) -> bool:
    """Whether ``path`` is one of, or below one of, the given prefixes ('' is everything)."""
    return any(not pre or path == pre or path.startswith(pre + "/") for pre in prefixes)


def working_ids(repo: Repo, under: list[str] | None = None, progress: Progress | None = None,
                head: dict[str, ManifestEntry] | None = None) -> tuple[dict[str, str], dict[str, FileStat]]:
    """Content ids of the working files (optionally below ``under`` prefixes) and their stats.

    ``head`` is HEAD's manifest when the caller already has it (it is read otherwise).
    """
    files = walk(repo.root, IgnoreRules(repo.root), under or ())
    tracked = head if head is not None else head_manifest(repo.catalog)
    add_tracked(repo.root, files, [p for p in tracked
                                   if p not in files and (under is None or under_any(p, under))])
    cache = statcache.load_stat_cache(repo.catalog)
    ids, todo = classify(files, cache)
    updates = hash_pending(repo.root, files, todo, ids, progress)
    deletes = [p for p in cache if p not in files and (under is None or under_any(p, under))]
    try:
        statcache.update_stat_cache(repo.catalog, updates, deletes)
    except (CatalogBusy, CatalogReadOnly, CatalogFull):
        pass  # the cache is an optimization; a busy, read-only or full catalog must not fail a read
    return ids, files
