"""Migration 3: jobs beyond one machine.

Jobs record the spec fields remote backends need (``labels``, ``container``,
``artifacts``) and the files their inputs matched (``input_files``: path ->
SHA-256, what a backend without the workspace's file system stages); the
stored ``ws jobs --json`` entry gains ``labels``. ``backend_polls`` remembers,
per configured backend, the last status request that answered and the last
error, so that ``ws jobs`` can mark an unreachable backend's jobs stale and
``ws jobs refresh`` can rate-limit its requests across processes.
"""

from __future__ import annotations

import sqlite3


def apply(conn: sqlite3.Connection) -> None:
    """Add the job columns and ``backend_polls``; existing listing entries get ``labels: {}``."""
    conn.execute("ALTER TABLE jobs ADD COLUMN labels VARCHAR NOT NULL DEFAULT '{}'")
    conn.execute("ALTER TABLE jobs ADD COLUMN container VARCHAR")
    conn.execute("ALTER TABLE jobs ADD COLUMN artifacts VARCHAR NOT NULL DEFAULT '[]'")
    conn.execute("ALTER TABLE jobs ADD COLUMN input_files VARCHAR NOT NULL DEFAULT '{}'")
    conn.execute("UPDATE jobs SET listing = json_insert(listing, '$.labels', json('{}')) WHERE listing IS NOT NULL")
    conn.execute("CREATE TABLE IF NOT EXISTS backend_polls (\n"
                 "\tname VARCHAR NOT NULL,\n"
                 "\tlast_ok_ns INTEGER,\n"
                 "\tlast_try_ns INTEGER,\n"
                 "\terror VARCHAR,\n"
                 "\terror_ns INTEGER,\n"
                 "\tPRIMARY KEY (name)\n)")
