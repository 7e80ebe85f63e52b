"""What every Typer command module shares: the common options and opening the workspace."""

from __future__ import annotations

import typer

from workspace.api import Workspace

JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def open_workspace() -> Workspace:
    """The workspace at or above the current folder (``-C DIR`` has already changed into DIR)."""
    return Workspace.open()
