"""Queries about history: commits, trees, refs and the HEAD pointer."""

from __future__ import annotations

from typing import Iterable, NamedTuple

from catalog.db import Catalog


# The functional form, for ws status's start-up: see catalog/statcache.py.
CommitRecord = NamedTuple("CommitRecord", [
    ("id", str),
    ("tree_id", str),
    ("parents", list[str]),
    ("branch", str | None),
    ("message", str),
    ("author", str),
    ("time_ns", int),
    ("provenance", dict | None),
])
CommitRecord.__doc__ = """A commit as stored."""


def _commit(row) -> CommitRecord:
    loads = _loads or _load_json()
    return CommitRecord(row[0], row[1], loads(row[2]), row[3], row[4], row[5], row[6],
                        loads(row[7]) if row[7] else None)


_loads = None


def _load_json():
    """json.loads, imported on first use: a clean ``ws status`` reads no commit row (json is ~5 M instructions)."""
    global _loads
    from json import loads

    _loads = loads
    return loads


_COMMIT_COLS = "id, tree_id, parents, branch, message, author, time_ns, provenance"


def get_meta(cat: Catalog, key: str) -> str | None:
    """A value from the meta table."""
    row = cat.query_one("SELECT value FROM meta WHERE key=?", (key,))
    return row[0] if row else None


def set_meta(cat: Catalog, key: str, value: str) -> None:
    """Set a value in the meta table."""
    with cat.write() as conn:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)", (key, value))


def add_trees(cat: Catalog, trees: Iterable[tuple[str, bytes]]) -> None:
    """Record serialized trees (idempotent)."""
    with cat.write() as conn:
        conn.executemany("INSERT OR IGNORE INTO trees(id, data) VALUES (?,?)", list(trees))


def get_tree(cat: Catalog, tree_id: str) -> bytes | None:
    """A serialized tree, or None."""
    row = cat.query_one("SELECT data FROM trees WHERE id=?", (tree_id,))
    return row[0] if row else None




def add_commit(cat: Catalog, c: CommitRecord) -> None:
    """Record a commit (idempotent)."""
    import json

    with cat.write() as conn:
        conn.execute(
            f"INSERT OR IGNORE INTO commits({_COMMIT_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (c.id, c.tree_id, json.dumps(c.parents), c.branch, c.message, c.author, c.time_ns,
             json.dumps(c.provenance, sort_keys=True) if c.provenance else None),
        )


def get_commit(cat: Catalog, commit_id: str) -> CommitRecord | None:
    """One commit by full id."""
    row = cat.query_one(f"SELECT {_COMMIT_COLS} FROM commits WHERE id=?", (commit_id,))
    return _commit(row) if row else None


def commits_with_prefix(cat: Catalog, prefix: str, limit: int = 2) -> list[str]:
    """Commit ids starting with ``prefix`` (at most ``limit``)."""
    hi = prefix + "g"  # 'g' sorts after every hex digit
    return [r[0] for r in cat.query("SELECT id FROM commits WHERE id >= ? AND id < ? LIMIT ?", (prefix, hi, limit))]


def all_commits(cat: Catalog) -> list[CommitRecord]:
    """Every commit, newest first."""
    return [_commit(r) for r in cat.query(f"SELECT {_COMMIT_COLS} FROM commits ORDER BY time_ns DESC")]


def get_ref(cat: Catalog, name: str) -> str | None:
    """The commit a branch points at."""
    row = cat.query_one("SELECT commit_id FROM refs WHERE name=?", (name,))
    return row[0] if row else None


def set_ref(cat: Catalog, name: str, commit_id: str, now_ns: int, expect: str | None = "*") -> bool:
    """Point a branch at a commit; with ``expect`` other than "*", only if it still points there.

    Returns False when ``expect`` did not match (someone else moved the branch).
    """
    with cat.write() as conn:
        if expect != "*":
            cur = get_ref(cat, name)
            if cur != expect:
                return False
        conn.execute(
            "INSERT OR REPLACE INTO refs(name, commit_id, updated_ns) VALUES (?,?,?)", (name, commit_id, now_ns)
        )
    return True


def delete_ref(cat: Catalog, name: str) -> None:
    """Remove a branch."""
    with cat.write() as conn:
        conn.execute("DELETE FROM refs WHERE name=?", (name,))


def list_refs(cat: Catalog) -> list[tuple[str, str]]:
    """Every branch as (name, commit id)."""
    return cat.query("SELECT name, commit_id FROM refs ORDER BY name")


def has_commits(cat: Catalog) -> bool:
    """Whether the catalog records any commit."""
    return cat.query_one("SELECT 1 FROM commits LIMIT 1") is not None


def iter_trees(cat: Catalog) -> Iterable[tuple[str, bytes]]:
    """Every stored tree as (id, bytes), streamed."""
    yield from cat.conn.execute("SELECT id, data FROM trees")


def replace_refs(cat: Catalog, branches: dict[str, str], head: str, now_ns: int) -> None:
    """Make the catalog's branches and HEAD exactly these (after a crash, the ref files win)."""
    with cat.write() as conn:
        conn.execute("DELETE FROM refs")
        conn.executemany("INSERT INTO refs(name, commit_id, updated_ns) VALUES (?,?,?)",
                         [(n, c, now_ns) for n, c in branches.items()])
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('HEAD', ?)", (head,))


def delete_commits(cat: Catalog, ids: Iterable[str]) -> None:
    """Forget commits (``ws gc --prune``, ``ws squash``); the caller proved nothing kept needs them."""
    with cat.write() as conn:
        conn.executemany("DELETE FROM commits WHERE id=?", [(i,) for i in ids])


def delete_trees(cat: Catalog, ids: Iterable[str]) -> None:
    """Forget trees no kept commit uses."""
    with cat.write() as conn:
        conn.executemany("DELETE FROM trees WHERE id=?", [(i,) for i in ids])
