"""The ``ws`` command line: a thin Typer layer over the :mod:`workspace` API.

The Typer app lives in :mod:`workspace.cli.typer_app` and is loaded on first
use of ``workspace.cli.app`` / ``workspace.cli.main``, so that the fast paths
in :mod:`workspace.cli.entry` (``ws status``) import no Typer at all.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("app", "main", "WsGroup"):
        from workspace.cli import typer_app

        return getattr(typer_app, name)
    raise AttributeError(f"module 'workspace.cli' has no attribute {name!r}")
