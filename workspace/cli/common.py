"""What every Typer command module shares: the common options and opening the workspace."""

from __future__ import annotations

import typer

from workspace.api import Workspace

JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def open_workspace() -> Workspace:
    """The workspace at or above the current folder (``-C DIR`` has already changed into DIR)."""
    return Workspace.open()


def key_values(pairs: list[str] | None, lists: bool = False) -> dict:
    """``--option KEY=VALUE`` pairs as a dict (a bad one is a usage error, exit 2).

    A key given several times keeps its last value, or with ``lists`` becomes a
    list of them (``ws backend add -o setup=a -o setup=b``).
    """
    result: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        if lists and key in result:
            prev = result[key]
            result[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            result[key] = value
    return result
