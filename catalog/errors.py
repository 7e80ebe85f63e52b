"""Errors raised by the catalog."""


class CatalogError(Exception):
    """Base class of every catalog error."""

    exit_code = 10


class CatalogBusy(CatalogError):
    """The database stayed locked by another process for longer than the timeout."""

    exit_code = 7


class CatalogCorrupt(CatalogError):
    """The catalog file is not a readable ws catalog."""

    exit_code = 6


class CatalogTooNew(CatalogError):
    """The catalog was written by a newer ws with a schema this one does not know."""

    exit_code = 9


class CatalogMissing(CatalogCorrupt):
    """``.ws/`` exists but ``.ws/catalog.db`` does not (deleted, or lost to a crash)."""

    exit_code = 6


class CatalogReadOnly(CatalogError):
    """SQLite cannot write the catalog file (read-only file, folder or mount).

    Commands that only read (status, diff, log) skip their cache writes and
    still answer; commands that must record something fail with exit 12.
    """

    exit_code = 12


class CatalogFull(CatalogError):
    """SQLite could not write the catalog because the disk (or quota) is full (SQLITE_FULL).

    The transaction was rolled back: nothing of it is in the catalog. The exit
    code is the workspace's no-space code (13), so every full disk reads the same.
    """

    exit_code = 13
