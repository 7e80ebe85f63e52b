"""Opening the catalog: one SQLite file in WAL mode, safe for many processes.

Write transactions start with ``BEGIN IMMEDIATE`` so that two writers queue on
SQLite's lock instead of failing with "database is locked" when one of them
tries to upgrade a read lock. The busy timeout decides how long a writer waits.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator

from catalog.errors import CatalogBusy, CatalogCorrupt, CatalogError, CatalogReadOnly, CatalogTooNew
from catalog.versions import SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT = 30.0


class Catalog:
    """A connection to one workspace catalog (``.ws/catalog.db``)."""

    def __init__(self, path: str | os.PathLike, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._in_write = False

    # -- connection -----------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection (sqlite3 connections are per thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
        except sqlite3.DatabaseError as exc:
            raise CatalogCorrupt(f"cannot open catalog {self.path}: {exc}") from exc
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- schema -----------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create or migrate the schema when ``user_version`` is behind the code."""
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise CatalogCorrupt(f"catalog {self.path} is not a database: {exc}") from exc
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise CatalogTooNew(
                f"catalog schema {version} is newer than this ws understands ({SCHEMA_VERSION}); upgrade ws"
            )
        from catalog.migrate import migrate  # imports SQLModel: only when needed

        migrate(self)

    # -- transactions -----------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.path) from exc
        try:
            yield conn
        except sqlite3.DatabaseError as exc:  # a statement in the block: read-only, damaged, full disk
            if conn.in_transaction:  # SQLite may have rolled back already
                conn.execute("ROLLBACK")
            raise _translate(exc, self.path) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise _translate(exc, self.path) from exc

    def query(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        """Run a read query and return all rows."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.path) from exc

    def query_one(self, sql: str, params: tuple | dict = ()) -> tuple | None:
        """Run a read query and return the first row or None."""
        try:
            return self.conn.execute(sql, params).fetchone()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.path) from exc


def _translate(exc: sqlite3.DatabaseError, path: str) -> CatalogError:
    """The narrow CatalogError for what SQLite reported, so callers can tell what they may skip.

    SQLite's primary result code decides (the message is the fallback for
    errors raised without one); the text is kept in the message.
    """
    msg = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in msg or "busy" in msg:
        return CatalogBusy(f"catalog {path} is busy (another ws process holds it): {msg}")
    if primary == sqlite3.SQLITE_READONLY or "readonly database" in msg:
        return CatalogReadOnly(f"catalog {path} is read-only ({msg}); check the permissions of the file "
                               "and its folder, and whether the disk is mounted read-only")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in msg:
        return CatalogCorrupt(f"catalog {path} is damaged: {msg}")
    return CatalogError(f"catalog {path}: {msg}")
