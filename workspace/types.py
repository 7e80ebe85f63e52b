"""The typed results the Python API returns. Each has ``to_dict()`` for JSON output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
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
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")


@dataclass
class Status:
    """Working tree against HEAD."""

    branch: str | None
    head: str | None
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    remotes: list[dict] = field(default_factory=list)
    scan: str = field(default="full", compare=False)  # "watch": only what `ws watch` reported changed was read

    @property
    def clean(self) -> bool:
        return not (self.added or self.modified or self.deleted)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["scan"]  # how it was computed, not what it says
        if not self.remotes:
            d.pop("remotes")
        return d


@dataclass
class Commit:
    """One commit as the API reports it."""

    id: str
    parents: list[str]
    branch: str | None
    message: str
    author: str
    time_ns: int
    tree: str
    provenance: dict | None = None

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


@dataclass
class DiffEntry:
    """One changed path between two trees."""

    path: str
    change: str  # added | removed | modified
    old_id: str | None
    new_id: str | None
    old_size: int | None
    new_size: int | None
    old_mode: int | None = None
    new_mode: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Diff:
    """Changes from ``a`` to ``b`` (``None`` for the working tree)."""

    a: str | None
    b: str | None
    entries: list[DiffEntry]

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b or "WORKTREE", "changes": [e.to_dict() for e in self.entries]}


@dataclass
class LsEntry:
    """One file of a commit."""

    path: str
    size: int
    id: str
    mode: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CommitResult:
    """What ``commit`` did."""

    commit: Commit
    files_stored: int
    bytes_read: int
    bytes_stored: int
    added: int
    modified: int
    deleted: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["commit"] = self.commit.to_dict()
        return d


class CheckReport:
    """What a check (``ws fsck``, ``ws fsck --remote``) found: ok when it found no problem."""

    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """For --json: the report's fields and ``ok``."""
        d = asdict(self)
        d["ok"] = self.ok
        return d


@dataclass
class FsckReport(CheckReport):
    """What ``fsck`` checked and found."""

    packs: int = 0
    chunks: int = 0
    files: int = 0
    commits: int = 0
    problems: list[str] = field(default_factory=list)
    damaged_paths: list[str] = field(default_factory=list)
    unknown_packs: list[str] = field(default_factory=list)  # sound packs the catalog does not know: not damage


@dataclass
class GcReport:
    """What ``gc`` reclaimed."""

    packs_deleted: int = 0
    packs_rewritten: int = 0
    temp_files_deleted: int = 0
    chunks_dropped: int = 0
    bytes_freed: int = 0
    kept: list[str] = field(default_factory=list)  # packs gc could not prove safe to drop, and why
    commits_dropped: int = 0  # --prune / squash: commits dropped from history
    files_dropped: int = 0  # file contents no kept commit or release refers to
    dry_run: bool = False  # nothing was changed: the counts say what would go

    def to_dict(self) -> dict:
        return asdict(self)
