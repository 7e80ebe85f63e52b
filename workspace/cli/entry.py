"""The ``ws`` console script.

``ws status`` is the command people run most, and on a small tree Typer's
start-up (it imports pydantic, ~70 ms here) would cost more than the status
itself. So plain ``ws status [--json] [-q]`` runs here without building the
Typer app; everything else goes to :mod:`workspace.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if argv and argv[0] == "status" and all(a in ("--json", "-q", "--quiet") for a in argv[1:]):
        sys.exit(_status(as_json="--json" in argv))
    if argv and argv[0] == "jobs":  # JOBS-FAST-PATH: `ws jobs --json` skips Typer (workspace.cli.jobs_fast)
        from workspace.cli.jobs_fast import run as jobs_fast

        code = jobs_fast(argv[1:])
        if code is not None:
            sys.exit(code)
    from workspace.cli import main as full_main

    full_main()


def _status(as_json: bool) -> int:
    from workspace.cli.errors import run_guarded

    def show() -> int:
        from workspace.api import Workspace
        from workspace.cli.status_view import show_status

        show_status(Workspace.open(), as_json=as_json, quiet=True)
        return 0

    return run_guarded(show)
