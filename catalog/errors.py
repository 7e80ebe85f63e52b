"""Errors raised by the catalog."""


class CatalogError(Exception):
    """Base class of every catalog error."""


class CatalogBusy(CatalogError):
    """The database stayed locked by another process for longer than the timeout."""


class CatalogCorrupt(CatalogError):
    """The catalog file is not a readable ws catalog."""


class CatalogTooNew(CatalogError):
    """The catalog was written by a newer ws with a schema this one does not know."""
