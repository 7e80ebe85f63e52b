"""Helpers for migrations that change a table in ways ``ALTER TABLE`` cannot.

SQLite can add, rename and drop columns, but not change a column's type,
constraints or primary key. :func:`rebuild_table` does it the way SQLite's
documentation prescribes ("Making Other Kinds Of Table Schema Changes"): make
the new table under a temporary name, copy the rows, drop the old table, rename
the new one, recreate its indexes, all inside the migration's transaction.
"""

from __future__ import annotations

import sqlite3


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The column names of ``table``, in order."""
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def rebuild_table(conn: sqlite3.Connection, table: str, create_sql: str, select_sql: str | None = None,
                  indexes: tuple[str, ...] = ()) -> None:
    """Replace ``table`` by the one ``create_sql`` defines, keeping its rows.

    ``create_sql`` is a ``CREATE TABLE <table> (...)`` statement for the new
    shape. ``select_sql`` selects the new table's columns, in order, from the
    old table (default: the columns both tables share). ``indexes`` are the
    ``CREATE INDEX`` statements of the new table (the old ones go with it).
    Must run inside a transaction, with foreign keys off (ws never turns them on).
    """
    if not conn.in_transaction:
        raise RuntimeError("rebuild_table must run inside the migration's transaction")
    temp = f"_ws_new_{table}"
    head, sep, rest = create_sql.partition("(")
    if not sep or table not in head:
        raise ValueError(f"expected 'CREATE TABLE {table} (...)', got {create_sql[:60]!r}")
    conn.execute(f'CREATE TABLE "{temp}" (' + rest)
    new_cols = columns(conn, temp)
    if select_sql is None:
        old = set(columns(conn, table))
        shared = [c for c in new_cols if c in old]
        select_sql = "SELECT " + ", ".join(f'"{c}"' for c in shared) + f' FROM "{table}"'
        new_cols = shared
    conn.execute(f'INSERT INTO "{temp}" (' + ", ".join(f'"{c}"' for c in new_cols) + ") " + select_sql)
    conn.execute(f'DROP TABLE "{table}"')
    conn.execute(f'ALTER TABLE "{temp}" RENAME TO "{table}"')
    for statement in indexes:
        conn.execute(statement)
