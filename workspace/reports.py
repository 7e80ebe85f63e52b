"""The typed reports of the slower commands: diff, ls, commit, fsck, gc.

Kept apart from :mod:`workspace.types` so that ``ws status`` (which needs only ``Status``,
``Commit`` and ``Progress``) does not import :mod:`dataclasses` (and with it :mod:`inspect`):
that import was a fifth of the status start-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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

    commit: Commit  # workspace.types.Commit (a name only: this module imports no sibling)
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
