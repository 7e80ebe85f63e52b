"""The typed results the Python API returns. Each has ``to_dict()`` for JSON output.

``Status`` and ``Commit`` are written out by hand rather than as dataclasses, and the reports
of the slower commands (``Diff``, ``LsEntry``, ``CommitResult``, ``FsckReport``, ``GcReport``)
live in :mod:`workspace.reports`: ``ws status`` imports this module, and :mod:`dataclasses`
(which imports :mod:`inspect`) cost more than the rest of its start-up (docs/performance.md).
"""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str, int, int], None]  # progress(phase, done, total), called by long operations

# The modes a tree entry, a manifest row or a release record may hold: git's, and nothing else
# (no setuid, setgid, sticky or world-writable bits). A symlink's content is its target text.
FILE_MODE = 0o644
EXEC_MODE = 0o755
LINK_MODE = 0o120000
ENTRY_MODES = (FILE_MODE, EXEC_MODE, LINK_MODE)


def iso(ns: int) -> str:
    """Nanoseconds since the epoch as an ISO 8601 UTC string."""
    from datetime import datetime, timezone  # not at import: ws status never shows a time

    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")


class _Record:
    """What ``@dataclass`` gave these classes: ``repr`` and ``==`` over the fields, in order."""

    _fields: tuple[str, ...] = ()
    __hash__ = None  # mutable, compared by value: unhashable, as a dataclass with eq=True

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)


class Status(_Record):
    """Working tree against HEAD."""

    _fields = ("branch", "head", "added", "modified", "deleted", "remotes")

    def __init__(self, branch: str | None, head: str | None, added: list[str] | None = None,
                 modified: list[str] | None = None, deleted: list[str] | None = None,
                 remotes: list[dict] | None = None, scan: str = "full") -> None:
        self.branch = branch
        self.head = head
        self.added: list[str] = [] if added is None else added
        self.modified: list[str] = [] if modified is None else modified
        self.deleted: list[str] = [] if deleted is None else deleted
        self.remotes: list[dict] = [] if remotes is None else remotes
        self.scan = scan  # "watch": only what `ws watch` reported changed was read; not in equality or to_dict

    @property
    def clean(self) -> bool:
        return not (self.added or self.modified or self.deleted)

    def to_dict(self) -> dict:
        d = {"branch": self.branch, "head": self.head, "added": list(self.added),
             "modified": list(self.modified), "deleted": list(self.deleted)}
        if self.remotes:
            d["remotes"] = [dict(r) for r in self.remotes]
        return d


class Commit(_Record):
    """One commit as the API reports it."""

    _fields = ("id", "parents", "branch", "message", "author", "time_ns", "tree", "provenance")

    def __init__(self, id: str, parents: list[str], branch: str | None, message: str, author: str,
                 time_ns: int, tree: str, provenance: dict | None = None) -> None:
        self.id = id
        self.parents = parents
        self.branch = branch
        self.message = message
        self.author = author
        self.time_ns = time_ns
        self.tree = tree
        self.provenance = provenance

    @property
    def time(self) -> str:
        return iso(self.time_ns)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "parent": self.parents[0] if self.parents else None,
            "parents": self.parents,
            "branch": self.branch,
            "message": self.message,
            "author": self.author,
            "time": self.time,
            "provenance": self.provenance,
        }
