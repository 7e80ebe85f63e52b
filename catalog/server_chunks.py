"""The ws server's chunk index: which chunks a server root holds, and where (plain sqlite3).

A cache of the root's ``index/`` folder and nothing more: the server rebuilds
it from ``index/`` when the file is missing or damaged, and catches up when
``index/`` changed behind its back (someone pushed to the root as a folder
remote). It lets the server answer "which of these chunks do you lack" and
"where are these chunks" without any client reading every index.

Ids are stored as 32 raw bytes. One connection, shared by the server's
threads under a lock: every statement is short.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Iterable, NamedTuple

from catalog.errors import CatalogError

SCHEMA = 1
_BATCH = 500


class ChunkRow(NamedTuple):
    """One chunk in a pack of the server root."""

    chunk_id: bytes
    pack_id: bytes
    offset: int
    length: int
    raw_length: int
    codec: int


class PackRow(NamedTuple):
    """A pack of the server root whose index is there."""

    pack_id: bytes
    size: int
    chunk_count: int


class ServerChunkIndex:
    """The chunk index of one server root, in ``path`` (created when missing, rebuilt when damaged)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError:  # a cache: start it again rather than refuse to serve
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.path + suffix)
                except FileNotFoundError:
                    pass
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a lost tail is rebuilt from index/
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA:
                conn.executescript(
                    "DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS packs;"
                    "CREATE TABLE packs(pack_id BLOB PRIMARY KEY, size INTEGER NOT NULL,"
                    " chunk_count INTEGER NOT NULL) WITHOUT ROWID;"
                    "CREATE TABLE chunks(chunk_id BLOB NOT NULL, pack_id BLOB NOT NULL, offset INTEGER NOT NULL,"
                    " length INTEGER NOT NULL, raw_length INTEGER NOT NULL, codec INTEGER NOT NULL,"
                    " PRIMARY KEY(chunk_id, pack_id)) WITHOUT ROWID;"
                    "CREATE INDEX chunks_by_pack ON chunks(pack_id);"
                    f"PRAGMA user_version={SCHEMA};")
            conn.execute("SELECT count(*) FROM packs").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _run(self, fn):
        with self._lock:
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise CatalogError(f"the server's chunk index {self.path} failed: {exc}") from exc

    def pack_ids(self) -> set[bytes]:
        """Every pack the index knows."""
        return self._run(lambda c: {r[0] for r in c.execute("SELECT pack_id FROM packs")})

    def add_pack(self, pack_id: bytes, size: int, chunks: list[ChunkRow]) -> None:
        """Record a pack whose index is now on the root (a chunk may be in several packs: each is kept)."""
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR REPLACE INTO packs VALUES (?,?,?)", (pack_id, size, len(chunks)))
                conn.executemany("INSERT OR IGNORE INTO chunks VALUES (?,?,?,?,?,?)", chunks)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run(write)

    def remove_packs(self, pack_ids: Iterable[bytes]) -> None:
        """Forget packs whose index is gone; their chunks are looked for in the other packs again."""
        ids = [(p,) for p in pack_ids]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM chunks WHERE pack_id=?", ids)
                conn.executemany("DELETE FROM packs WHERE pack_id=?", ids)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        if ids:
            self._run(write)

    def locate(self, chunk_ids: list[bytes]) -> dict[bytes, ChunkRow]:
        """Where the given chunks are (unknown ones are absent)."""
        out: dict[bytes, ChunkRow] = {}

        def read(conn: sqlite3.Connection) -> None:
            for i in range(0, len(chunk_ids), _BATCH):
                batch = chunk_ids[i:i + _BATCH]
                marks = ",".join("?" * len(batch))
                for row in conn.execute(f"SELECT * FROM chunks WHERE chunk_id IN ({marks})", batch):
                    out.setdefault(row[0], ChunkRow(*row))

        self._run(read)
        return out

    def packs(self, pack_ids: Iterable[bytes]) -> dict[bytes, PackRow]:
        """Size and chunk count of the given packs."""
        ids = list(set(pack_ids))
        out: dict[bytes, PackRow] = {}

        def read(conn: sqlite3.Connection) -> None:
            for i in range(0, len(ids), _BATCH):
                batch = ids[i:i + _BATCH]
                marks = ",".join("?" * len(batch))
                for row in conn.execute(f"SELECT * FROM packs WHERE pack_id IN ({marks})", batch):
                    out[row[0]] = PackRow(*row)

        self._run(read)
        return out
