"""The fast path of ``ws jobs --json``: answered without building the Typer app.

Scripts poll ``ws jobs --json``, and with 100,000 recorded jobs it must answer
in under half a second; Typer's start-up alone costs about 0.1 s of that. Only
the plain listing with ``--json`` and the filter options is handled here;
anything else (help, tables, subcommands, odd spellings) returns None and goes
to the full CLI, which gives the same answer.
"""

from __future__ import annotations

import sys

_OPTIONS = {"--state": "state", "-s": "state", "--name": "name", "-n": "name", "--workflow": "workflow",
            "-w": "workflow", "--label": "labels", "-l": "labels"}


def parse(argv: list[str]) -> dict | None:
    """The filters of ``ws jobs [list] --json [--state S] [--name N] [--workflow W] [--label K=V]...``,
    or None if not that (``labels`` is a list: the option repeats)."""
    args = list(argv)
    if args and args[0] == "list":
        args.pop(0)
    if "--json" not in args:
        return None
    args.remove("--json")
    filters: dict = {}
    while args:
        opt = args.pop(0)
        if "=" in opt and opt.startswith("--"):
            opt, value = opt.split("=", 1)
        elif args and not args[0].startswith("-"):
            value = args.pop(0)
        else:
            return None
        key = _OPTIONS.get(opt)
        if key is None or not value:
            return None
        if key == "labels":
            filters.setdefault("labels", []).append(value)
            continue
        if key in filters:
            return None
        filters[key] = value
    return filters


def run(argv: list[str]) -> int | None:
    """Answer ``ws jobs ... --json``; returns the exit code, or None to let the full CLI handle argv."""
    filters = parse(argv)
    if filters is None:
        return None
    from workspace.cli.errors import run_guarded

    def answer() -> int:
        from workspace.api import Workspace

        text = Workspace.open().jobs.list_json(filters.get("state"), filters.get("name"), filters.get("workflow"),
                                               filters.get("labels"))
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return 0

    return run_guarded(answer)
