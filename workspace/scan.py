"""Walking the working tree and deciding, through the stat cache, what changed.

A file is re-hashed only when its size, mtime or inode differ from the cache,
or when the cached stat is "racy": taken so soon after the file was written
that a later write within the same timestamp tick could go unseen (git's rule).
"""

from __future__ import annotations

import os
import stat as statmod
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from catalog.statcache import StatEntry
from workspace.ignore import IgnoreRules
from workspace.objects.hashing import hash_file

RACY_NS = 50_000_000  # a stat this close to its recording time is re-checked (kernel ticks are ~4 ms)
COARSE_RACY_NS = 2_000_000_000  # file systems with whole-second (or FAT's 2 s) timestamps


def is_racy(mtime_ns: int, recorded_ns: int) -> bool:
    """Whether a write within the same timestamp tick as ``mtime_ns`` could have gone unseen.

    A file whose mtime has no sub-second part lives on a file system with
    coarse timestamps, which needs the wider window.
    """
    window = COARSE_RACY_NS if mtime_ns % 1_000_000_000 == 0 else RACY_NS
    return mtime_ns >= recorded_ns - window
PARALLEL_MIN_FILES = 20_000  # below this a second walker process costs more than it saves

Progress = Callable[[str, int, int], None]


class FileStat(NamedTuple):
    """What the walk saw of one working file (a plain tuple, so snapshots compare at C speed)."""

    size: int
    mtime_ns: int
    ino: int
    mode: int  # 0o755 when executable, else 0o644


def file_mode(st_mode: int) -> int:
    """Git-like mode: executable or not."""
    return 0o755 if st_mode & 0o111 else 0o644


def walk(root: Path, rules: IgnoreRules, under: Iterable[str] = (), parallel: bool = False) -> dict[str, FileStat]:
    """Every regular, non-ignored file below ``root`` (or below the ``under`` prefixes).

    Symlinks are not followed and not tracked. With ``parallel``, a forked
    helper process walks half of the top-level folders (lstat is the cost,
    and it parallelizes across cores where threads do not).
    """
    make = FileStat._make
    return {k: make(v) for k, v in walk_raw(root, rules, under, parallel).items()}


def walk_raw(root: Path, rules: IgnoreRules, under: Iterable[str] = (), parallel: bool = False) -> dict[str, tuple]:
    """Like :func:`walk`, with plain ``(size, mtime_ns, ino, mode)`` tuples (cheapest to build and compare)."""
    starts = sorted(set(under)) or [""]
    out: dict[str, tuple] = {}
    if starts == [""] and parallel:
        return _walk_parallel(str(root), rules)
    for start in starts:
        full = root / start if start else root
        if start and full.is_file() and not full.is_symlink():
            st = full.stat()
            if not rules.ignored_file(start):
                out[start] = (st.st_size, st.st_mtime_ns, st.st_ino, file_mode(st.st_mode))
            continue
        _walk_dirs([(str(full), start + "/" if start else "")], rules, out)
    return out


def _walk_dirs(stack: list[tuple[str, str]], rules: IgnoreRules, out: dict) -> None:
    """Depth-first walk; ``rel`` prefixes end with '/' (or are empty at the root)."""
    check_files = rules.has_patterns
    lstat = os.lstat
    S_ISREG = statmod.S_ISREG
    while stack:
        top, rel = stack.pop()
        try:
            it = os.scandir(top)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for entry in it:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not rules.ignored_dir(rel + name, name):
                            stack.append((top + "/" + name, rel + name + "/"))
                        continue
                    st = lstat(top + "/" + name)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                mode = st.st_mode
                if not S_ISREG(mode) or name.startswith(".ws-tmp-"):
                    continue
                if check_files and rules.ignored_file(rel + name):
                    continue
                out[rel + name] = (st.st_size, st.st_mtime_ns, st.st_ino, 0o755 if mode & 0o111 else 0o644)


def _walk_parallel(root: str, rules: IgnoreRules) -> dict[str, tuple]:
    return ParallelWalk(root, rules).finish()


class ParallelWalk:
    """A walk split between this process and a forked helper.

    lstat dominates a large walk and Python threads do not overlap it, but a
    second process does. The helper starts at once, so the caller can do other
    work (load the status snapshot) before calling :meth:`finish`.
    """

    CHILD_SHARE = (0, 2, 3)  # of every 5 top-level folders, the helper takes 3

    def __init__(self, root: str, rules: IgnoreRules):
        import threading

        self.rules = rules
        self.out: dict[str, tuple] = {}
        tops: list[tuple[str, str]] = []
        _walk_top(root, rules, self.out, tops)
        self.pid = None
        if len(tops) < 2 or threading.active_count() > 1 or not hasattr(os, "fork"):
            self.mine, self.theirs = tops, []
            return
        self.theirs = [t for i, t in enumerate(tops) if i % 5 in self.CHILD_SHARE]
        self.mine = [t for i, t in enumerate(tops) if i % 5 not in self.CHILD_SHARE]
        self.rfd, wfd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # helper: walk its share, send it back, leave without cleanup handlers
            code = 0
            try:
                import marshal

                os.close(self.rfd)
                part: dict = {}
                _walk_dirs(list(self.theirs), rules, part)
                with os.fdopen(wfd, "wb") as f:
                    f.write(marshal.dumps(part))
            except BaseException:
                code = 1
            os._exit(code)
        os.close(wfd)

    def finish(self) -> dict[str, tuple]:
        """Walk this process's share and merge the helper's."""
        import marshal

        _walk_dirs(list(self.mine), self.rules, self.out)
        if self.pid is None:
            return self.out
        try:
            with os.fdopen(self.rfd, "rb") as f:
                data = f.read()
        finally:
            _, status = os.waitpid(self.pid, 0)
        if status != 0 or not data:
            _walk_dirs(list(self.theirs), self.rules, self.out)  # the helper failed: do its share
        else:
            self.out.update(marshal.loads(data))
        return self.out


def _walk_top(root: str, rules: IgnoreRules, out: dict, tops: list) -> None:
    """Files directly in the root go to ``out``; folders become walk starts."""
    stack = [(root, "")]
    top, rel = stack.pop()
    with os.scandir(top) as it:
        for entry in it:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                if not rules.ignored_dir(name, name):
                    tops.append((top + "/" + name, name + "/"))
                continue
            st = os.lstat(top + "/" + name)
            if statmod.S_ISREG(st.st_mode) and not name.startswith(".ws-tmp-") and not (
                rules.has_patterns and rules.ignored_file(name)
            ):
                out[name] = (st.st_size, st.st_mtime_ns, st.st_ino, file_mode(st.st_mode))


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


def _under(path: str, prefixes: list[str]) -> bool:
    return any(not pre or path == pre or path.startswith(pre + "/") for pre in prefixes)


def under_any(path: str, prefixes: list[str]) -> bool:
    """Whether ``path`` is one of, or below one of, the given prefixes ('' is everything)."""
    return _under(path, prefixes)
