"""Bring a catalog's schema up to date from the SQLModel tables.

New tables are created with ``SQLModel.metadata.create_all`` (which skips tables
that exist). Column changes to existing tables go in ``_STEPS`` keyed by the
version they lead to.
"""

from __future__ import annotations

from catalog.versions import SCHEMA_VERSION

# version reached -> list of SQL statements (for changes create_all cannot make)
_STEPS: dict[int, list[str]] = {}


def migrate(cat) -> None:
    """Create missing tables and apply pending steps inside one transaction."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    import importlib

    importlib.import_module("catalog.models")  # registers every table
    from sqlmodel import SQLModel

    conn = cat.conn
    with cat.write():
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step_version in sorted(_STEPS):
            if version < step_version <= SCHEMA_VERSION:
                for sql in _STEPS[step_version]:
                    conn.execute(sql)
        engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)
        # emit DDL through our own connection so it joins the open transaction
        for table in SQLModel.metadata.sorted_tables:
            for stmt in _ddl(table, engine):
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _ddl(table, engine) -> list[str]:
    from sqlalchemy.schema import CreateIndex, CreateTable

    create = str(CreateTable(table, if_not_exists=True).compile(engine)).strip()
    out = [create]
    for index in table.indexes:
        out.append(str(CreateIndex(index, if_not_exists=True).compile(engine)).strip())
    return out
