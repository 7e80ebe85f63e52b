"""The catalog's schema version, kept apart from the migrations so the fast path stays small.

``PRAGMA user_version`` holds the number of the last migration applied
(:mod:`catalog.migrations`); ``PRAGMA application_id`` marks the file as a ws
catalog. ``ws status`` compares both with these constants and imports nothing
else when they match.
"""

SCHEMA_VERSION = 3  # == catalog.migrations.MIGRATIONS[-1].version (a test checks)

# "wsct": lets ws tell its own catalog from any other SQLite file without reading a table
APPLICATION_ID = 0x77736374

# user_version values written by earlier ws releases, and the migration they equal.
# 1010102 was the weighted sum of per-concern versions (core 2, releases 1, jobs 1, remotes 1)
# used before the ordered migrations existed; its schema is migration 1, the baseline.
LEGACY_VERSIONS = {1010102: 1}
