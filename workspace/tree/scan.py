"""Walking the working tree and deciding, through the stat cache, what changed.

A file is re-hashed only when its size, mtime or inode differ from the cache,
or when the cached stat is "racy": taken so soon after the file was written
that a later write within the same timestamp tick could go unseen (git's rule).
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Iterable, NamedTuple

from catalog import statcache
from catalog.errors import CatalogBusy, CatalogFull, CatalogReadOnly
from catalog.statcache import ManifestEntry, StatEntry
from workspace.history.manifest import head_manifest
from workspace.objects.hashing import hash_file
from workspace.repo import Repo
from workspace.tree.ignore import IgnoreRules
from workspace.types import Progress

RACY_NS = 50_000_000  # a stat this close to its recording time is re-checked (kernel ticks are ~4 ms)
COARSE_RACY_NS = 2_000_000_000  # file systems with whole-second (or FAT's 2 s) timestamps


def is_racy(mtime_ns: int, recorded_ns: int) -> bool:
    """Whether a write within the same timestamp tick as ``mtime_ns`` could have gone unseen.

    A file whose mtime has no sub-second part lives on a file system with
    coarse timestamps, which needs the wider window.
    """
    window = COARSE_RACY_NS if mtime_ns % 1_000_000_000 == 0 else RACY_NS
    return mtime_ns >= recorded_ns - window


class FileStat(NamedTuple):
    """What the walk saw of one working file (a plain tuple, so snapshots compare at C speed)."""

    size: int
    mtime_ns: int
    ino: int
    mode: int  # 0o755 when executable, else 0o644


def file_mode(st_mode: int) -> int:
    """Git-like mode: executable or not."""
    return 0o755 if st_mode & 0o111 else 0o644


def walk(root: Path, rules: IgnoreRules, under: Iterable[str] = ()) -> dict[str, FileStat]:
    """Every regular, non-ignored file below ``root`` (or below the ``under`` prefixes).

    Symlinks are not followed and not tracked.
    """
    from workspace.tree.dirwalk import flatten, listings

    out: dict[str, FileStat] = {}
    for start in sorted(set(under)) or [""]:
        full = root / start if start else root
        if start and full.is_file() and not full.is_symlink():
            if not rules.ignored_file(start):
                st = full.stat()
                out[start] = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, file_mode(st.st_mode))
            continue
        for path, v in flatten(listings(str(full), start, rules)).items():
            out[path] = FileStat._make(v)
    return out


def add_tracked(root: Path, files: dict[str, FileStat], paths: Iterable[str]) -> None:
    """Add tracked files the walk skipped because an ignore rule matches them now.

    As in git, ignore rules apply to untracked files only: a tracked file stays
    tracked (and its changes seen) until it is removed.
    """
    for p in paths:
        full = os.path.join(root, p)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files[p] = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, file_mode(st.st_mode))


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
            fid, size = hash_file(root / path)
        except (FileNotFoundError, IsADirectoryError):
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
