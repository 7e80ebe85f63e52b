"""Offline status of remotes for ``ws status``: which releases are not on each remote yet.

Answered from the catalog alone (what push wrote and what pulls and listings
saw), never from the network. ``Workspace.status`` calls :func:`remote_rows`
on every ``ws status``, so this module imports only the standard library,
:mod:`catalog` and :mod:`sync.urls` (no fsspec, boto3 or SQLModel, not even a
dataclass). A URL is shown without its userinfo.
"""

from __future__ import annotations

from catalog import remotes as rq
from catalog.db import Catalog
from sync.urls import redact

_SHOWN = 3  # releases named in the one-line summary


def remote_rows(config: dict, catalog: Catalog) -> list[dict]:
    """One row per configured remote: name, url, releases not pushed, and a one-line summary."""
    remotes = config.get("remote") if isinstance(config.get("remote"), dict) else {}
    rows = []
    for name in sorted(remotes):
        table = remotes[name]
        if not isinstance(table, dict):
            continue
        missing = [f"{t}@{v}" for t, v in rq.releases_not_on(catalog, name)]
        rows.append({"remote": name, "url": redact(table.get("url", "")), "releases_not_pushed": missing,
                     "summary": _summary(name, missing)})
    return rows


def _summary(name: str, missing: list[str]) -> str:
    if not missing:
        return f"Remote {name}: every release is there"
    shown = ", ".join(missing[:_SHOWN]) + (f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else "")
    plural = "s" if len(missing) != 1 else ""
    return f"Remote {name}: {len(missing)} release{plural} not pushed ({shown}); run 'ws push {name}'"
