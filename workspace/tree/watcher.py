"""The inotify side of ``ws watch``: which folders changed since a point, and a barrier.

One inotify instance (through watchdog's bindings) watches every folder of
the working tree except ignored built-ins (``.ws/``, ``.git/``). Each event
marks its folder *dirty* with a sequence number; an event about a sub-folder
(created, deleted, moved, chmod) marks that whole sub-tree dirty, because
what is below it may have changed without an event of its own (a folder
moved in from outside, say).

The watcher can vouch for a folder only as long as it runs without a gap, so
its state carries an *epoch*: a new one at start, after a queue overflow
(events were lost) and when ``.wsignore`` changes (what the walk sees
changed). A status snapshot remembers the epoch and sequence number it was
taken at; a watcher with another epoch cannot tell what changed since.

The *barrier* orders status after every event that happened before it: the
watcher creates a file in its own watched folder and waits for that file's
event. One inotify instance has one queue, in the order things happened, so
when the barrier's event is read every earlier event has been handled.

Watchdog's Observer is not used: it delays events behind an unmatched move
for half a second, hides queue overflows, and passes events through threads
whose order a barrier could not rely on. Its inotify bindings are enough.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from workspace.errors import WatchUnavailable
from workspace.tree.ignore import BUILTIN_DIRS, IGNORE_FILE

try:
    from watchdog.observers.inotify_c import InotifyConstants as C, inotify_add_watch, inotify_init, inotify_rm_watch
except Exception as exc:  # not Linux, or a C library without inotify (watchdog raises its own error type)
    raise WatchUnavailable(f"ws watch needs Linux inotify, which this system lacks ({exc}); "
                           "ws status scans the whole tree instead") from exc

DIR_MASK = (C.IN_MODIFY | C.IN_ATTRIB | C.IN_MOVED_FROM | C.IN_MOVED_TO | C.IN_CREATE | C.IN_DELETE
            | C.IN_DELETE_SELF | C.IN_MOVE_SELF | C.IN_DONT_FOLLOW | C.IN_ONLYDIR)
SUBTREE_EVENTS = C.IN_CREATE | C.IN_MOVED_TO | C.IN_DELETE | C.IN_MOVED_FROM | C.IN_ATTRIB
MAX_WATCHES_FILE = "/proc/sys/fs/inotify/max_user_watches"
_BUILTIN = frozenset(os.fsencode(n) for n in BUILTIN_DIRS)
_IGNORE_FILE = os.fsencode(IGNORE_FILE)


def max_user_watches() -> int | None:
    """The kernel's limit on inotify watches per user, or None where it cannot be read."""
    try:
        with open(MAX_WATCHES_FILE) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _limit_error(root: Path, folders: int) -> WatchUnavailable:
    limit = max_user_watches()
    return WatchUnavailable(
        f"inotify watch limit reached while watching {root} ({folders} folders watched; "
        f"{MAX_WATCHES_FILE} is {limit}); raise it, e.g. 'sudo sysctl fs.inotify.max_user_watches=524288', "
        "or go on without a watcher: ws status then scans the whole tree")


@dataclass
class Watcher:
    """inotify watches on every folder of ``root``, and the folders that changed since each point.

    ``dirty`` maps a folder (workspace-relative, '' the root) to (last sequence
    number, whether its whole sub-tree is in doubt). ``unwatched`` holds folders
    a watch could not be put on (unreadable, or over the limit at run time):
    they are reported dirty at every barrier. Without ``barrier_dir`` there
    is no barrier (a caller that only waits for events needs none).
    """

    root: Path
    barrier_dir: Path | None = None
    epoch: str = field(default_factory=lambda: secrets.token_hex(8))
    seq: int = 0
    pruned_upto: int = 0
    barrier_seen: int = 0
    events: int = 0
    overflows: int = 0
    dirty: dict[str, tuple[int, bool]] = field(default_factory=dict)
    unwatched: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._root = os.fsencode(self.root)
        self.fd = inotify_init()
        if self.fd < 0:
            import ctypes

            err = ctypes.get_errno()
            hint = (" (fs.inotify.max_user_instances reached: other programs hold inotify instances)"
                    if err == errno.EMFILE else "")
            raise WatchUnavailable(f"cannot start inotify: {os.strerror(err)}{hint}")
        fcntl.fcntl(self.fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.paths: dict[int, bytes] = {}  # watch descriptor -> folder (relative, b'' the root)
        self.barrier_wd = -1  # never a watch descriptor
        self._barrier_next = 0
        try:
            if self.barrier_dir is not None:
                self._watch_barrier(self.barrier_dir)
            self._add_tree(b"", strict=True)
        except BaseException:
            self.close()
            raise

    # -- watches ----------------------------------------------------------------------
    def _watch_barrier(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(folder):  # leftovers of an earlier watcher
            os.unlink(folder / name)
        try:
            self.barrier_wd = self._add_watch(os.fsencode(folder), C.IN_CREATE | C.IN_ONLYDIR)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:  # the watch budget, not the disk
                raise _limit_error(self.root, 0) from None
            raise

    def _add_watch(self, path: bytes, mask: int) -> int:
        wd = inotify_add_watch(self.fd, path, mask)
        if wd < 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), os.fsdecode(path))
        return wd

    def _add_tree(self, rel: bytes, strict: bool = False) -> None:
        """Watch ``rel`` and every folder below it: each folder is watched *before* it is listed,
        so a sub-folder made meanwhile is either listed or reported by an event."""
        stack = [rel]
        while stack:
            d = stack.pop()
            full = os.path.join(self._root, d) if d else self._root
            try:
                wd = self._add_watch(full, DIR_MASK)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    continue  # gone already: its parent's event says so
                if exc.errno == errno.ENOSPC and strict:
                    raise _limit_error(self.root, len(self.paths)) from None
                self.unwatched.add(os.fsdecode(d))  # unreadable or over the limit: never vouched for
                continue
            self.paths[wd] = d
            try:
                with os.scandir(full) as it:
                    for entry in it:
                        if entry.name in _BUILTIN:
                            continue
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                stack.append(os.path.join(d, entry.name) if d else entry.name)
                        except OSError:
                            continue
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError:
                self.unwatched.add(os.fsdecode(d))

    def _drop_tree(self, rel: bytes) -> None:
        """Stop watching ``rel`` and below (it moved away; its new place gets watches of its own)."""
        prefix = rel + b"/"
        for wd, p in list(self.paths.items()):
            if p == rel or p.startswith(prefix):
                del self.paths[wd]
                inotify_rm_watch(self.fd, wd)

    def folders(self) -> int:
        """How many folders are watched."""
        return len(self.paths)

    def close(self) -> None:
        """Release the inotify instance (and with it every watch)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- events -----------------------------------------------------------------------
    def _mark(self, rel: bytes, subtree: bool) -> None:
        key = os.fsdecode(rel)
        old = self.dirty.get(key)
        self.dirty[key] = (self.seq, subtree or (old is not None and old[1]))

    def read(self) -> bool:
        """Handle every event waiting in the queue (never blocks); whether any was read."""
        try:
            buf = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return False
        i = 0
        while i + 16 <= len(buf):
            wd, mask, _cookie, length = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16 : i + 16 + length].rstrip(b"\0")
            i += 16 + length
            self._handle(wd, mask, name)
        return True

    def _handle(self, wd: int, mask: int, name: bytes) -> None:
        self.events += 1
        if mask & C.IN_Q_OVERFLOW:
            self._restart("the inotify queue overflowed: events were lost")
            return
        if wd == self.barrier_wd:
            if mask & C.IN_CREATE and name.isdigit():
                self.barrier_seen = max(self.barrier_seen, int(name))
                try:
                    os.unlink(os.path.join(os.fsencode(self.barrier_dir), name))
                except OSError:
                    pass
            return
        if mask & C.IN_IGNORED:
            self.paths.pop(wd, None)
            return
        base = self.paths.get(wd)
        if base is None:
            return  # a watch dropped a moment ago
        self.seq += 1
        if not name:  # about the watched folder itself
            self._mark(base, subtree=True)
            if mask & C.IN_MOVE_SELF and base == b"":
                self._new_epoch("the workspace folder itself moved")
            return
        if name in _BUILTIN and mask & C.IN_ISDIR:
            return
        if base == b"" and name == _IGNORE_FILE:
            self._new_epoch(f"{IGNORE_FILE} changed")
            return
        self._mark(base, subtree=False)
        if mask & (C.IN_CREATE | C.IN_MOVED_TO) and not mask & C.IN_ISDIR and self._hard_linked(base, name):
            self._new_epoch("a file with several hard links appeared")  # status walks all, finds each name
        if mask & C.IN_ISDIR and mask & SUBTREE_EVENTS:
            child = os.path.join(base, name) if base else name
            if mask & C.IN_MOVED_FROM:
                self._drop_tree(child)
            if mask & (C.IN_CREATE | C.IN_MOVED_TO):
                self._add_tree(child)
            self._mark(child, subtree=True)

    def _hard_linked(self, base: bytes, name: bytes) -> bool:
        try:
            st = os.lstat(os.path.join(self._root, base, name))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_nlink > 1

    def _new_epoch(self, why: str) -> None:
        """From here on, no earlier snapshot is vouched for (status walks everything once)."""
        self.last_restart = why
        self.epoch = secrets.token_hex(8)
        self.dirty.clear()
        self.pruned_upto = self.seq

    def _restart(self, why: str) -> None:
        """Events were lost: a new epoch, and every folder watched again."""
        self.overflows += 1
        self._new_epoch(why)
        self._add_tree(b"")  # adding a watch that exists returns the same descriptor

    # -- what status asks -------------------------------------------------------------
    def request_barrier(self) -> int:
        """Create the next barrier file; the barrier is passed once ``barrier_seen`` reaches the number returned."""
        if self.barrier_dir is None:
            raise ValueError("this watcher was started without a barrier folder")
        self._barrier_next += 1
        n = self._barrier_next
        fd = os.open(self.barrier_dir / str(n), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        os.close(fd)
        return n

    def changes_since(self, epoch: str | None, since: int, limit: int) -> dict:
        """What a status whose snapshot was taken at (``epoch``, ``since``) must look at again.

        ``vouch`` is false when this watcher cannot tell (another epoch, history
        already forgotten, or too much changed); status then walks everything.
        """
        out = {"epoch": self.epoch, "seq": self.seq, "root": os.fsdecode(self._root), "vouch": False}
        if epoch != self.epoch or since < self.pruned_upto or since > self.seq:
            return out
        dirty = [[p, sub] for p, (s, sub) in self.dirty.items() if s > since]
        dirty += [[p, True] for p in self.unwatched]
        if len(dirty) > limit:
            return out
        out["vouch"] = True
        out["dirty"] = dirty
        if len(self.dirty) > limit:  # forget what every snapshot from now on has seen
            self.dirty = {p: v for p, v in self.dirty.items() if v[0] > since}
            self.pruned_upto = since
        return out

