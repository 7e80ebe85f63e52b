"""The Typer app of the ``ws`` command line (loaded lazily by :mod:`workspace.cli`).

Every command parses its arguments, makes one call into the library and
formats the result (text for people, ``--json`` for scripts). Errors from the
library are turned into one line on stderr and the exit code documented in
docs/errors.md.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from workspace.cli.errors import EXIT_INTERRUPTED, error_exit_code as _error_exit_code, error_line, redact_exception


class WsGroup(TyperGroup):
    """Maps library errors to one line on stderr and a documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            sys.stderr.write("ws: interrupted\n")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            code = _error_exit_code(exc)
            if code is None:
                redact_exception(exc)
                raise
            sys.stderr.write(error_line(exc))
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=WsGroup,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="ws: a local-first, git-like workspace for data, jobs and releases.\n\n"
    "Start with 'ws init', then 'ws status' and 'ws commit -m MSG'. "
    "Every command takes --help; most take --json for scripts.",
)


@app.callback()
def _root(
    directory: str = typer.Option(None, "-C", help="Run as if ws was started in this folder.", metavar="DIR"),
) -> None:
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise typer.BadParameter(f"cannot enter {directory}: {exc.strerror}", param_hint="-C")


# each module registers its commands; this order is the order of `ws --help`
from workspace.cli import files, releases, remotes, jobs, run, watch  # noqa: E402,F401,I001


def main() -> None:
    """Run the full Typer app (the console script goes through workspace.cli.entry first)."""
    try:
        app(prog_name="ws")
    except KeyboardInterrupt:
        sys.stderr.write("ws: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)

