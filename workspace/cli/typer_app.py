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


def _print_version(value: bool) -> None:
    if value:
        from workspace.api import versions

        sys.stdout.write(f"ws {versions()['version']}\n")
        raise typer.Exit()


@app.callback()
def _root(
    directory: str = typer.Option(None, "-C", help="Run as if ws was started in this folder.", metavar="DIR"),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print ws's version and exit ('ws version --json' for the format versions)."),
) -> None:
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise typer.BadParameter(f"cannot enter {directory}: {exc.strerror}", param_hint="-C")


# each module registers its commands; this order is the order of `ws --help`
from workspace.cli import files, releases, remotes, backends, jobs, run, serve, watch  # noqa: E402,F401,I001


@app.command()
def version(json_: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """Print ws's version, the catalog schema and the local and remote format versions it reads and writes.

    A catalog, workspace or remote newer than these is refused with 'upgrade ws'.

    Example: ws version --json
    """
    from workspace.api import versions
    from workspace.cli.output import emit_json, out

    info = versions()
    if json_:
        emit_json(info)
        return
    out(f"ws {info['version']}")
    out(f"catalog schema:        {info['catalog_schema']}")
    out(f"local format:          {info['local_format']} (.ws/config.toml [core] format)")
    out(f"remote format:         {info['remote_format']} (ws-remote.json)")
    out(f"release record format: {info['release_record_format']}")
    out(f"python:                {info['python']}")


def main() -> None:
    """Run the full Typer app (the console script goes through workspace.cli.entry first)."""
    try:
        app(prog_name="ws")
    except KeyboardInterrupt:
        sys.stderr.write("ws: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)

