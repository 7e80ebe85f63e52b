"""The ordered list of catalog migrations: the only way the catalog's schema changes.

Each migration has a number (1, 2, 3, ...), one line saying what it changes,
and a function that applies it to an ``sqlite3`` connection inside the caller's
transaction. A new catalog runs them all; an older one runs those above its
``PRAGMA user_version``. A migration is never edited once released: a change
to the schema is a new migration appended here (see docs/local-format.md,
"Changing the schema", and :func:`catalog.migrations.tools.rebuild_table` for
changes ``ALTER TABLE`` cannot make).

The SQLModel classes of :mod:`catalog.models` describe the schema the last
migration produces; ``tests/catalog/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable

from catalog.migrations import v001_baseline, v002_object_kinds, v003_job_fields


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``apply(conn)`` runs inside an open transaction."""

    version: int
    summary: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "baseline: the schema of the first releases of ws", v001_baseline.apply),
    Migration(2, "chunks.kind: packs hold history objects (file chunk lists, trees, commits) too",
              v002_object_kinds.apply),
    Migration(3, "jobs.labels, container, artifacts, input_files; backend_polls (stale backends)",
              v003_job_fields.apply),
]


def pending(current: int, migrations: list[Migration] | None = None) -> list[Migration]:
    """The migrations a catalog at ``current`` still needs, in order."""
    return [m for m in (MIGRATIONS if migrations is None else migrations) if m.version > current]
