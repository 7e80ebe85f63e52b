"""``ws fsck --rebuild-catalog``: a new catalog from ``.ws/`` alone; the old file is kept aside.

What comes back (docs/local-format.md, "Rebuilding the catalog"): packs and
chunks, file chunk lists, trees, commits (from the pack objects), branches and
HEAD (from the ref files); releases and jobs are put back by their own
capabilities from ``.ws/releases/`` and ``.ws/jobs/`` (see
:func:`workspace.api.Workspace.rebuild_catalog`). Caches (the stat cache,
HEAD's manifest, what remotes hold) are rebuilt as they are used.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog.db import Catalog
from workspace.history.reconcile import sync_refs_from_files
from workspace.history.reindex import IndexReport, complete_files, index_packs
from workspace.layout import find_root
from workspace.repo import Repo


@dataclass
class RebuildReport:
    """What a rebuild found and where the old catalog went."""

    kept_aside: str | None = None
    packs: int = 0
    chunks: int = 0
    files: int = 0
    trees: int = 0
    commits: int = 0
    branches: int = 0
    releases: int = 0
    jobs: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


def rebuild_catalog(path: str | os.PathLike | None = None) -> RebuildReport:
    """Move the catalog aside and index every pack and ref file into a new one (both locks held)."""
    repo = Repo(find_root(path))
    report = RebuildReport()
    with repo.pack_guard(exclusive=True), repo.lock():
        report.kept_aside = _set_aside(repo.layout.catalog)
        repo.catalog = Catalog(repo.layout.catalog)
        repo.catalog.ensure_schema(create=True)
        index = IndexReport()
        index_packs(repo, repo.store.list_pack_files(), index)
        complete_files(repo, index)
        sync_refs_from_files(repo, index)
        report.branches = len(repo.catalog.query("SELECT name FROM refs"))
        for name in ("packs", "chunks", "files", "trees", "commits", "problems"):
            setattr(report, name, getattr(index, name))
    repo.close()
    return report


def _set_aside(db: Path) -> str | None:
    """Rename the old catalog (and its WAL files) to ``catalog.db.broken-<time>``; None when there was none."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = None
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(db) + suffix)
        if src.exists():
            dst = Path(f"{db}.broken-{stamp}{suffix}")
            os.replace(src, dst)
            aside = aside or str(dst)
    return aside
