"""The fast path for ``ws status``: the stat cache and HEAD's flattened manifest.

Both are plain tables read in one query each; nothing here imports SQLModel.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from catalog.db import Catalog


# The functional form: its field types are objects, not strings. The class form under
# `from __future__ import annotations` made typing compile each one (a ForwardRef), and
# the first compile() of a process costs ~10 M instructions (it sets up the ast module).
StatEntry = NamedTuple("StatEntry", [
    ("size", int),
    ("mtime_ns", int),
    ("ino", int),
    ("file_id", str),
    ("recorded_ns", int),
])
StatEntry.__doc__ = """A working file as it was when last hashed."""


ManifestEntry = NamedTuple("ManifestEntry", [
    ("file_id", str),
    ("size", int),
    ("mode", int),
])
ManifestEntry.__doc__ = """One path of HEAD's tree."""


_BUMP = ("INSERT INTO meta(key, value) VALUES ('statgen', '1') "
         "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")


def _bump(conn) -> None:
    """Invalidate the status snapshot: called in every transaction that changes the caches."""
    conn.execute(_BUMP)


def load_snapshot(cat: Catalog) -> tuple[str | None, int, bytes | None]:
    """(HEAD manifest's commit, cache generation, snapshot blob or None when it is stale)."""
    row = cat.query_one(
        "SELECT (SELECT value FROM meta WHERE key='manifest_commit'), "
        "(SELECT value FROM meta WHERE key='statgen'), "
        "(SELECT generation FROM status_snapshot WHERE id=1), "
        "(SELECT data FROM status_snapshot WHERE id=1)"
    )
    commit, gen, snap_gen, data = row
    gen = int(gen) if gen is not None else 0
    if data is None or gen != snap_gen:
        return commit, gen, None
    return commit, gen, data






def update_with_snapshot(cat: Catalog, seen_generation: int, upserts: dict[str, StatEntry],
                         deletes: list[str], snapshot: bytes) -> bool:
    """Apply cache updates and store a snapshot, in one transaction.

    The snapshot is stored only if nobody changed the caches since we read them
    at ``seen_generation``; otherwise it could describe a state that is gone.
    Returns whether the snapshot was stored.
    """
    with cat.write() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='statgen'").fetchone()
        unchanged = (int(row[0]) if row else 0) == seen_generation
        update_stat_cache(cat, upserts, deletes)
        if not unchanged:
            return False
        _bump(conn)
        gen = conn.execute("SELECT value FROM meta WHERE key='statgen'").fetchone()[0]
        conn.execute("INSERT OR REPLACE INTO status_snapshot(id, generation, data) VALUES (1, ?, ?)",
                     (int(gen), snapshot))
    return True


def _rows_for_paths(cat: Catalog, table: str, columns: str, paths: list[str]) -> list[tuple]:
    rows: list[tuple] = []
    for i in range(0, len(paths), 500):
        batch = paths[i : i + 500]
        marks = ",".join("?" * len(batch))
        rows += cat.query(f"SELECT path, {columns} FROM {table} WHERE path IN ({marks})", tuple(batch))
    return rows


def stat_entries(cat: Catalog, paths: list[str]) -> dict[str, StatEntry]:
    """Stat cache rows of some paths."""
    rows = _rows_for_paths(cat, "stat_cache", "size, mtime_ns, ino, file_id, recorded_ns", paths)
    return {r[0]: StatEntry(*r[1:]) for r in rows}




def manifest_in_dirs(cat: Catalog, dirs: Iterable[str]) -> dict[str, ManifestEntry]:
    """HEAD manifest rows of files directly inside the given folders ('' is the root)."""
    out: dict[str, ManifestEntry] = {}
    for d in set(dirs):
        if d == "":
            rows = cat.query("SELECT path, file_id, size, mode FROM head_manifest WHERE instr(path, '/') = 0")
        else:  # '0' sorts right after '/', so this range is everything below d/
            rows = cat.query("SELECT path, file_id, size, mode FROM head_manifest WHERE path > ? AND path < ?",
                             (d + "/", d + "0"))
        for r in rows:
            if r[0].rpartition("/")[0] == d:
                out[r[0]] = ManifestEntry(*r[1:])
    return out


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
        _bump(conn)


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
        _bump(conn)


def patch_head_manifest(cat: Catalog, commit_id: str, upserts: dict[str, ManifestEntry], deletes: Iterable[str]) -> None:
    """Apply a commit's changes to the manifest instead of rebuilding it."""
    with cat.write() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO head_manifest(path, file_id, size, mode) VALUES (?,?,?,?)",
            [(p, *e) for p, e in upserts.items()],
        )
        conn.executemany("DELETE FROM head_manifest WHERE path=?", [(p,) for p in deletes])
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('manifest_commit', ?)", (commit_id,))
        _bump(conn)
