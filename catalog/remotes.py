"""Queries about what each remote holds (tables in :mod:`catalog.models.remotes`).

Plain ``sqlite3`` only: :func:`releases_not_on` runs on the ``ws status`` path.
"""

from __future__ import annotations

import time
from typing import Iterable, NamedTuple

from catalog.db import Catalog

_BATCH = 500


# The functional form, for ws status's start-up: see catalog/statcache.py.
RemoteChunk = NamedTuple("RemoteChunk", [
    ("chunk_id", str),
    ("pack_id", str),
    ("offset", int),
    ("length", int),
    ("raw_length", int),
    ("codec", int),
])
RemoteChunk.__doc__ = """Where one chunk is on a remote."""


RemotePack = NamedTuple("RemotePack", [
    ("pack_id", str),
    ("size", int),
    ("chunk_count", int),
])
RemotePack.__doc__ = """A pack known to be complete (pack and index uploaded) on a remote."""


def known_packs(cat: Catalog, remote: str) -> dict[str, RemotePack]:
    """Packs whose index this catalog has already read or written, keyed by pack id."""
    rows = cat.query("SELECT pack_id, size, chunk_count FROM remote_packs WHERE remote=?", (remote,))
    return {r[0]: RemotePack(*r) for r in rows}


def add_pack(cat: Catalog, remote: str, pack_id: str, size: int, chunks: list[RemoteChunk]) -> None:
    """Remember that a remote holds a pack and its chunks (idempotent)."""
    now = time.time_ns()
    with cat.write() as conn:
        conn.execute("INSERT OR REPLACE INTO remote_packs(remote, pack_id, size, chunk_count, learned_ns) "
                     "VALUES (?,?,?,?,?)", (remote, pack_id, size, len(chunks), now))
        conn.executemany(
            "INSERT OR IGNORE INTO remote_chunks(remote, chunk_id, pack_id, offset, length, raw_length, codec) "
            "VALUES (?,?,?,?,?,?,?)", [(remote, *c) for c in chunks])


def forget_packs(cat: Catalog, remote: str, pack_ids: Iterable[str]) -> None:
    """Drop packs (and their chunks) that the remote no longer lists."""
    ids = [(remote, p) for p in pack_ids]
    with cat.write() as conn:
        conn.executemany("DELETE FROM remote_chunks WHERE remote=? AND pack_id=?", ids)
        conn.executemany("DELETE FROM remote_packs WHERE remote=? AND pack_id=?", ids)


def chunk_locations(cat: Catalog, remote: str, ids: Iterable[str]) -> dict[str, RemoteChunk]:
    """Where the given chunks are on a remote (unknown ones are absent)."""
    ids = list(set(ids))
    out: dict[str, RemoteChunk] = {}
    for i in range(0, len(ids), _BATCH):
        batch = ids[i:i + _BATCH]
        marks = ",".join("?" * len(batch))
        for row in cat.query(
                f"SELECT chunk_id, pack_id, offset, length, raw_length, codec FROM remote_chunks "
                f"WHERE remote=? AND chunk_id IN ({marks})", (remote, *batch)):
            out[row[0]] = RemoteChunk(*row)
    return out


def mark_release(cat: Catalog, remote: str, title: str, version: str, digest: str, state: str) -> None:
    """Remember that a remote holds title@version (``state``: pushed or seen)."""
    with cat.write() as conn:
        conn.execute("INSERT OR REPLACE INTO remote_releases(remote, title, version, digest, state, recorded_ns) "
                     "VALUES (?,?,?,?,?,?)", (remote, title, version, digest, state, time.time_ns()))


def releases_on(cat: Catalog, remote: str) -> list[tuple[str, str, str, str]]:
    """(title, version, digest, state) of every release the remote is known to hold."""
    return cat.query("SELECT title, version, digest, state FROM remote_releases WHERE remote=? "
                     "ORDER BY title, version", (remote,))


def releases_not_on(cat: Catalog, remote: str) -> list[tuple[str, str]]:
    """Local releases (title, version) that the remote is not known to hold."""
    return cat.query(
        "SELECT r.title, r.version FROM releases r LEFT JOIN remote_releases x "
        "ON x.remote=? AND x.title=r.title AND x.version=r.version "
        "WHERE x.title IS NULL ORDER BY r.title, r.created_ns", (remote,))


def forget_remote(cat: Catalog, remote: str) -> None:
    """Drop everything remembered about a remote (removed, or re-added with another URL)."""
    with cat.write() as conn:
        for table in ("remote_releases", "remote_packs", "remote_chunks"):
            conn.execute(f"DELETE FROM {table} WHERE remote=?", (remote,))
