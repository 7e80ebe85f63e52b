"""Tells gc which file contents releases hold, so ``ws gc`` never drops them.

Loaded lazily by :mod:`workspace.plugins` on the ``ws status`` path, so it
imports only :mod:`workspace.hooks` and the sqlite3-based release queries.
"""

from __future__ import annotations

from catalog import releases as release_queries
from workspace import hooks


def release_live_files(ws) -> set[str]:
    """Content ids of every file in every local release."""
    return release_queries.live_file_ids(ws.catalog)


hooks.register_live_files(release_live_files)
