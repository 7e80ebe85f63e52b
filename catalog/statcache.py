"""The fast path for ``ws status``: the stat cache and HEAD's flattened manifest.

Both are plain tables read in one query each; nothing here imports SQLModel.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from catalog.db import Catalog


class StatEntry(NamedTuple):
    """A working file as it was when last hashed."""

    size: int
    mtime_ns: int
    ino: int
    file_id: str
    recorded_ns: int


class ManifestEntry(NamedTuple):
    """One path of HEAD's tree."""

    file_id: str
    size: int
    mode: int


def load_stat_cache(cat: Catalog) -> dict[str, StatEntry]:
    """Every stat cache row keyed by path."""
    rows = cat.query("SELECT path, size, mtime_ns, ino, file_id, recorded_ns FROM stat_cache")
    return {r[0]: StatEntry(r[1], r[2], r[3], r[4], r[5]) for r in rows}


def update_stat_cache(cat: Catalog, upserts: dict[str, StatEntry], deletes: Iterable[str] = ()) -> None:
    """Insert or replace rows and drop rows of paths that are gone."""
    deletes = list(deletes)
    if not upserts and not deletes:
        return
    with cat.write() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO stat_cache(path, size, mtime_ns, ino, file_id, recorded_ns) VALUES (?,?,?,?,?,?)",
            [(p, *e) for p, e in upserts.items()],
        )
        conn.executemany("DELETE FROM stat_cache WHERE path=?", [(p,) for p in deletes])


def load_head_manifest(cat: Catalog) -> tuple[str | None, dict[str, ManifestEntry]]:
    """HEAD's manifest and the commit id it was built from."""
    row = cat.query_one("SELECT value FROM meta WHERE key='manifest_commit'")
    rows = cat.query("SELECT path, file_id, size, mode FROM head_manifest")
    return (row[0] if row else None), {r[0]: ManifestEntry(r[1], r[2], r[3]) for r in rows}


def replace_head_manifest(cat: Catalog, commit_id: str, manifest: dict[str, ManifestEntry]) -> None:
    """Replace the manifest wholesale (after HEAD moved)."""
    with cat.write() as conn:
        conn.execute("DELETE FROM head_manifest")
        conn.executemany(
            "INSERT INTO head_manifest(path, file_id, size, mode) VALUES (?,?,?,?)",
            [(p, *e) for p, e in manifest.items()],
        )
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('manifest_commit', ?)", (commit_id,))


def patch_head_manifest(cat: Catalog, commit_id: str, upserts: dict[str, ManifestEntry], deletes: Iterable[str]) -> None:
    """Apply a commit's changes to the manifest instead of rebuilding it."""
    with cat.write() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO head_manifest(path, file_id, size, mode) VALUES (?,?,?,?)",
            [(p, *e) for p, e in upserts.items()],
        )
        conn.executemany("DELETE FROM head_manifest WHERE path=?", [(p,) for p in deletes])
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('manifest_commit', ?)", (commit_id,))
