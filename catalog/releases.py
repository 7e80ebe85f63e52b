"""Queries about releases (tables in :mod:`catalog.models.releases`).

Plain ``sqlite3`` only: the gc live-files provider runs on cheap paths.
"""

from __future__ import annotations

from typing import NamedTuple

from catalog.db import Catalog

_COLUMNS = (
    "id, title, version, description, metadata_json, commit_id, job, author, created_at, created_ns, "
    "digest, file_count, total_size"
)


class ReleaseRecord(NamedTuple):
    """One row of ``releases``."""

    id: int
    title: str
    version: str
    description: str
    metadata_json: str
    commit_id: str | None
    job: str | None
    author: str
    created_at: str
    created_ns: int
    digest: str
    file_count: int
    total_size: int


class ReleaseFileRecord(NamedTuple):
    """One row of ``release_files`` (without the release id)."""

    path: str
    file_id: str
    size: int
    mode: int


def insert_release(cat: Catalog, rec: dict, files: list[ReleaseFileRecord]) -> int:
    """Record a release and its files in one transaction; returns the new row id.

    ``rec`` holds the ``releases`` columns except ``id``. The caller checks for
    an existing title@version inside the same ``cat.write()`` when it matters.
    """
    with cat.write() as conn:
        cur = conn.execute(
            "INSERT INTO releases(title, version, description, metadata_json, commit_id, job, author, "
            "created_at, created_ns, digest, file_count, total_size) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec["title"], rec["version"], rec["description"], rec["metadata_json"], rec["commit_id"],
             rec["job"], rec["author"], rec["created_at"], rec["created_ns"], rec["digest"],
             rec["file_count"], rec["total_size"]),
        )
        rid = cur.lastrowid
        conn.executemany(
            "INSERT INTO release_files(release_id, path, file_id, size, mode) VALUES (?,?,?,?,?)",
            [(rid, f.path, f.file_id, f.size, f.mode) for f in files],
        )
    return rid


def get_release(cat: Catalog, title: str, version: str) -> ReleaseRecord | None:
    """The release title@version, or None."""
    row = cat.query_one(f"SELECT {_COLUMNS} FROM releases WHERE title=? AND version=?", (title, version))
    return ReleaseRecord(*row) if row else None


def list_releases(cat: Catalog, title: str | None = None) -> list[ReleaseRecord]:
    """Every release (or those of one title), in creation order."""
    if title is None:
        rows = cat.query(f"SELECT {_COLUMNS} FROM releases ORDER BY title, created_ns, id")
    else:
        rows = cat.query(f"SELECT {_COLUMNS} FROM releases WHERE title=? ORDER BY created_ns, id", (title,))
    return [ReleaseRecord(*r) for r in rows]


def versions_of(cat: Catalog, title: str) -> list[str]:
    """Every recorded version of one title (unordered)."""
    return [r[0] for r in cat.query("SELECT version FROM releases WHERE title=?", (title,))]


def release_files(cat: Catalog, release_id: int) -> list[ReleaseFileRecord]:
    """The files of one release, by path."""
    rows = cat.query(
        "SELECT path, file_id, size, mode FROM release_files WHERE release_id=? ORDER BY path", (release_id,)
    )
    return [ReleaseFileRecord(*r) for r in rows]


def live_file_ids(cat: Catalog) -> set[str]:
    """Content ids that some release holds (gc must keep them)."""
    return {r[0] for r in cat.query("SELECT DISTINCT file_id FROM release_files")}
