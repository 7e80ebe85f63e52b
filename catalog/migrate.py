"""Bringing a catalog's schema up to date: the ordered migrations of :mod:`catalog.migrations`.

Runs only when ``PRAGMA user_version`` differs from
:data:`catalog.versions.SCHEMA_VERSION`, so ``ws status`` never pays for it.
All pending migrations, the new ``user_version`` and the ``application_id``
are written in one transaction: a crash or an error leaves the catalog as it
was. Two processes opening an old catalog at once queue on SQLite's write
lock; the second finds the work done.
"""

from __future__ import annotations

from catalog.errors import CatalogCorrupt, CatalogTooNew
from catalog.migrations import MIGRATIONS, Migration, pending
from catalog.versions import APPLICATION_ID, LEGACY_VERSIONS


def current_version(conn) -> tuple[int, int]:
    """(schema version, application id) as stored, legacy numbers mapped to migrations."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    return LEGACY_VERSIONS.get(version, version), app


def migrate(cat, *, create: bool = False, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations to ``cat``; returns the versions applied.

    ``create`` allows an empty database (a new workspace). Without it, an empty
    file or a database that is not a ws catalog is refused with
    :class:`CatalogCorrupt`: a damaged catalog is never re-initialised in place.
    """
    steps = MIGRATIONS if migrations is None else migrations
    latest = steps[-1].version
    with cat.write() as conn:
        version, app = current_version(conn)
        if app not in (0, APPLICATION_ID) or (app == 0 and version not in (0, *LEGACY_VERSIONS.values())):
            raise CatalogCorrupt(cat.damaged_message("is not a ws catalog"))
        if version == 0 and not create:
            has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            raise CatalogCorrupt(cat.damaged_message("is not a ws catalog" if has_tables else "is empty"))
        if version > latest:
            raise CatalogTooNew(f"catalog schema {version} is newer than this ws understands ({latest}); "
                                "upgrade ws")
        todo = pending(version, steps)
        for step in todo:
            step.apply(conn)
        conn.execute(f"PRAGMA user_version={latest}")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    return [m.version for m in todo]
