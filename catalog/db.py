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
from pathlib import Path
from typing import Iterator

from catalog.errors import (CatalogBusy, CatalogCorrupt, CatalogError, CatalogFull, CatalogMissing,
                            CatalogReadOnly)
from catalog.versions import APPLICATION_ID, LEGACY_VERSIONS, SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT = 30.0
REBUILD_HINT = "run 'ws fsck --rebuild-catalog' to rebuild it from .ws/"


class Catalog:
    """A connection to one workspace catalog (``.ws/catalog.db``)."""

    def __init__(self, path: str | os.PathLike, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        self.path = os.path.abspath(os.fspath(path))
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._create = False  # only ensure_schema(create=True) may make a new file
        self._checked = False  # the file was seen to be a ws catalog (once per Catalog)

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
        # mode=rw never creates the file: a deleted catalog must not come back empty
        mode = "rwc" if self._create else "rw"
        if not self._create and not os.path.exists(self.path):
            raise CatalogMissing(self.damaged_message("is missing"))
        try:
            return self._open(f"mode={mode}")
        except sqlite3.DatabaseError as exc:
            if self._create or _is_damage(exc) or not read_only_mount(self.path):
                raise self._open_error(exc) from exc
            return self._open_on_read_only_mount()

    def _open(self, options: str) -> sqlite3.Connection:
        """A connection with ``options`` (URI query), the file checked once, WAL mode on; sqlite3 errors pass."""
        conn = sqlite3.connect(f"{Path(self.path).as_uri()}?{options}", uri=True,
                               timeout=self.busy_timeout, isolation_level=None)
        try:
            if not self._create and not self._checked:
                self._check_identity(conn)  # before WAL mode is set: that would change a foreign file
                self._checked = True
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_on_read_only_mount(self) -> sqlite3.Connection:
        """Open the catalog of a read-only file system for reading (SQLite's WAL rules decide how).

        SQLite reads a WAL database read-only only through its ``-shm`` file.
        With one left beside the catalog (a ws process was killed, or the
        mount became read-only while one ran), ``mode=ro`` reads the
        write-ahead log through it. Without one, the write-ahead log must be
        empty, and then ``immutable=1`` opens the file without any: nothing
        can change it through a read-only mount. A non-empty log without its
        ``-shm`` cannot be read at all, so that is refused (exit 12) rather
        than ignored, which would hide the latest commits.
        """
        try:
            return self._open("mode=ro")
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise self._open_error(exc) from exc
        wal = self.path + "-wal"
        if _file_size(wal):
            raise CatalogReadOnly(f"catalog {self.path} is on a read-only mount and its write-ahead log {wal} "
                                  f"holds changes that SQLite can read only with {self.path}-shm, which is "
                                  "missing; mount it read-write once and run any ws command (e.g. 'ws status')")
        try:
            return self._open("mode=ro&immutable=1")
        except sqlite3.DatabaseError as exc:
            raise self._open_error(exc) from exc

    def _open_error(self, exc: sqlite3.DatabaseError) -> CatalogError:
        """The error for a catalog that could not be opened: damage, or what SQLite reported."""
        if _is_damage(exc):
            return CatalogCorrupt(self.damaged_message(f"cannot be read ({exc})"))
        return _translate(exc, self.path)

    def _check_identity(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that is empty, truncated or not a ws catalog, reading only.

        Everything goes through SQLite: opening and closing the file with another
        descriptor would drop the POSIX locks this process's connections hold.
        """
        if os.stat(self.path).st_size == 0:
            raise CatalogCorrupt(self.damaged_message("is empty (0 bytes)"))
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise CatalogCorrupt(self.damaged_message("is not an SQLite database")) from None
            raise  # a full disk, a read-only mount...: not damage (the caller translates it)
        if app != APPLICATION_ID and not (app == 0 and version in LEGACY_VERSIONS):
            raise CatalogCorrupt(self.damaged_message("is not a ws catalog" if tables else "is empty"))
        wal = _file_size(self.path + "-wal")
        size = os.stat(self.path).st_size
        if not wal and size < pages * page_size:  # with a WAL, pages may live there, not in the file
            raise CatalogCorrupt(self.damaged_message(
                f"is truncated ({size} bytes, its header says {pages * page_size})"))

    def damaged_message(self, what: str) -> str:
        """The one line for a catalog that cannot be used: what is wrong and how to recover."""
        return f"the catalog {self.path} {what}; {REBUILD_HINT}"

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- schema -----------------------------------------------------------
    def ensure_schema(self, create: bool = False) -> None:
        """Check the catalog is a sound ws catalog, migrating it when its schema is behind the code.

        ``create`` makes a new catalog (``ws init``). Otherwise a missing, empty,
        truncated or foreign file raises :class:`CatalogMissing` or
        :class:`CatalogCorrupt` naming ``ws fsck --rebuild-catalog``: it is never
        re-initialised in place, which would hide every commit it indexed.
        """
        self._create = create
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            app = self.conn.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise _translate(exc, self.path) from exc  # full, read-only, I/O: not damage
            raise CatalogCorrupt(self.damaged_message(f"is not a database ({exc})")) from exc
        finally:
            self._create = False
        if version == SCHEMA_VERSION and app == APPLICATION_ID:
            return
        from catalog.migrate import migrate  # only when the schema differs: never on the status path

        migrate(self, create=create)

    # -- transactions -----------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one.

        Whatever fails (a statement, or the COMMIT itself: a full disk often
        shows only then) is rolled back and reported as itself: SQLite may
        already have rolled back on its own, and a rollback that fails too
        is never what gets reported.
        """
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
            self._rollback(conn)
            raise _translate(exc, self.path) from exc
        except BaseException:
            self._rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback(conn)  # never let a failed rollback hide why the commit failed
            raise _translate(exc, self.path) from exc

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """Roll back if a transaction is still open (SQLite may already have rolled it back).

        If the rollback fails too, the connection is dropped: left in a
        transaction, the next ``write()`` would join it and never commit.
        """
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass  # the error that got us here is the one to report
        if conn.in_transaction:
            if getattr(self._local, "conn", None) is conn:
                self._local.conn = None
            conn.close()  # closing a connection rolls back whatever it still holds

    def check_writable(self) -> None:
        """Raise :class:`CatalogReadOnly` (or another CatalogError) now if the catalog cannot be written.

        For commands that must record what they do after touching the working
        tree (checkout, restore): they ask first, so a read-only catalog leaves
        the tree as it was. A write statement that changes nothing is enough:
        SQLite refuses it on a read-only file before looking at any row.
        """
        with self.write() as conn:
            conn.execute("DELETE FROM meta WHERE 0")

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


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file itself damaged or foreign (not: busy, full, read-only...)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    msg = str(exc)
    return "malformed" in msg or "not a database" in msg


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read_only_mount(path: str) -> bool:
    """Whether the file system holding ``path`` is mounted read-only."""
    try:
        return bool(os.statvfs(os.path.dirname(path) or ".").f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _disk_full(path: str) -> bool:
    """Whether the file system holding ``path`` has (about) no space left for an unprivileged write."""
    try:
        st = os.statvfs(os.path.dirname(path) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024 or bool(st.f_files and st.f_favail == 0)


def _translate(exc: sqlite3.DatabaseError, path: str) -> CatalogError:
    """The narrow CatalogError for what SQLite reported, so callers can tell what they may skip.

    SQLite's primary result code decides (the message is the fallback for
    errors raised without one); the text is kept in the message. A full disk
    shows as SQLITE_FULL when a write to the database or its log fails, but as
    an I/O error when SQLite cannot grow its shared-memory file: an I/O error
    on a file system with no space left is taken for what it is.
    """
    msg = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in msg or "busy" in msg:
        return CatalogBusy(f"catalog {path} is busy (another ws process holds it): {msg}")
    if primary == sqlite3.SQLITE_FULL or (primary == sqlite3.SQLITE_IOERR and _disk_full(path)):
        return CatalogFull(f"no space left on the device holding the catalog {path} ({msg}); "
                           "free some space and run the command again")
    if primary == sqlite3.SQLITE_READONLY or "readonly database" in msg or (
            primary == sqlite3.SQLITE_CANTOPEN and (read_only_mount(path) or not os.access(
                os.path.dirname(path), os.W_OK))):
        return CatalogReadOnly(f"catalog {path} is read-only ({msg}); check the permissions of the file "
                               "and its folder, and whether the disk is mounted read-only")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in msg or "not a database" in msg:
        return CatalogCorrupt(f"the catalog {path} is damaged ({msg}); {REBUILD_HINT}")
    return CatalogError(f"catalog {path}: {msg}")
