"""Extension points the upper layers fill in without the core importing them.

``remote_status`` reports, offline, what each remote lacks; ``extra_live_files``
names file ids that gc must keep although no commit holds them (releases).
Both are looked up lazily so that ``ws status`` imports nothing heavy.
"""

from __future__ import annotations

from typing import Callable

_remote_status: list[Callable] = []
_live_files: list[Callable] = []


def register_remote_status(fn: Callable) -> None:
    """Add a provider of per-remote status rows."""
    _remote_status.append(fn)


def register_live_files(fn: Callable) -> None:
    """Add a provider of file ids gc must keep."""
    _live_files.append(fn)


def _load_plugins() -> None:
    try:
        import workspace.plugins  # noqa: F401  (optional module that registers providers)
    except ImportError:
        pass


def remote_status(ws) -> list[dict]:
    """Rows from every provider (none when nothing is registered)."""
    _load_plugins()
    out: list[dict] = []
    for fn in _remote_status:
        out.extend(fn(ws))
    return out


def extra_live_files(ws) -> set[str]:
    """File ids that providers need kept."""
    _load_plugins()
    out: set[str] = set()
    for fn in _live_files:
        out |= set(fn(ws))
    return out
