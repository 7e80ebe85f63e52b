"""Schema versions, one line per concern, kept apart from the SQLModel tables.

The fast path (status) checks the schema version without importing SQLModel.
The catalog's ``PRAGMA user_version`` is the sum; a concern that changes its
tables bumps its own line and adds a migration step in :mod:`catalog.migrate`.
"""

CORE = 2
RELEASES = 1
JOBS = 1
REMOTES = 1  # remote_releases, remote_packs, remote_chunks

SCHEMA_VERSION = CORE * 1 + RELEASES * 100 + JOBS * 10000 + REMOTES * 1000000
