"""Walking the working tree and deciding, through the stat cache, what changed.

A file is re-hashed only when its size, mtime or inode differ from the cache,
or when the cached stat is "racy": taken so soon after the file was written
that a later write within the same timestamp tick could go unseen (git's rule).
"""

from __future__ import annotations

import os
import stat as statmod
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from catalog.statcache import StatEntry
from workspace.ignore import IgnoreRules
from workspace.objects.chunking import hash_file

RACY_NS = 1_000_000_000  # stats this close to their recording time are re-checked

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FileStat:
    """What the walk saw of one working file."""

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
    out: dict[str, FileStat] = {}
    starts = sorted(set(under)) or [""]
    for start in starts:
        full = root / start if start else root
        if start and full.is_file() and not full.is_symlink():
            st = full.stat()
            if not rules.ignored_file(start):
                out[start] = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, file_mode(st.st_mode))
            continue
        _walk_dir(str(full), start, rules, out)
    return out


def _walk_dir(top: str, top_rel: str, rules: IgnoreRules, out: dict[str, FileStat]) -> None:
    stack = [(top, top_rel)]
    check_files = rules.has_patterns
    S_ISREG = statmod.S_ISREG
    while stack:
        path, rel = stack.pop()
        try:
            it = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for entry in it:
                name = entry.name
                erel = f"{rel}/{name}" if rel else name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not rules.ignored_dir(erel, name):
                            stack.append((entry.path, erel))
                        continue
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not S_ISREG(st.st_mode) or name.startswith(".ws-tmp-"):
                    continue
                if check_files and rules.ignored_file(erel):
                    continue
                out[erel] = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, 0o755 if st.st_mode & 0o111 else 0o644)


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
            and c.mtime_ns < c.recorded_ns - RACY_NS
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


def _under(path: str, prefixes: list[str]) -> bool:
    return any(not pre or path == pre or path.startswith(pre + "/") for pre in prefixes)


def under_any(path: str, prefixes: list[str]) -> bool:
    """Whether ``path`` is one of, or below one of, the given prefixes ('' is everything)."""
    return _under(path, prefixes)
