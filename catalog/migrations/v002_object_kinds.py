"""Migration 2: chunk rows say what they hold, because history now lives in packs too.

A pack entry holds a data chunk (kind 0) or a history object: a file's chunk
list (1), a tree (2) or a commit (3). The catalog indexes them all in
``chunks``; existing rows are data chunks.
"""

from __future__ import annotations

import sqlite3


def apply(conn: sqlite3.Connection) -> None:
    """Add ``chunks.kind`` (0 for every existing row)."""
    conn.execute("ALTER TABLE chunks ADD COLUMN kind INTEGER NOT NULL DEFAULT 0")
