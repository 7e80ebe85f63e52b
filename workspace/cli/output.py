"""Formatting helpers shared by the CLI commands: JSON, tables, progress, sizes.

rich is imported only when something is actually drawn, to keep start-up lean.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout."""
    import json  # not at import: plain ws status prints no JSON

    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def emit_json_line(obj: Any) -> None:
    """Print ``obj`` as one line of JSON and flush (JSON Lines, for commands that report as they go)."""
    import json

    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def emit_json_stream(head: dict, key: str, items: Iterable[Any]) -> None:
    """Print ``{**head, key: [items...]}`` as JSON on stdout, one item per line as each comes (flat memory)."""
    import json

    inner = json.dumps(head, indent=2, default=str)[1:-1].rstrip()  # the head's members, indented
    sys.stdout.write("{" + inner + ("," if head else "") + f"\n  {json.dumps(key)}: [")
    first = True
    for item in items:
        sys.stdout.write(("\n    " if first else ",\n    ") + json.dumps(item, default=str))
        first = False
    sys.stdout.write(("\n  " if not first else "") + "]\n}\n")


def out(line: str = "") -> None:
    """Print one plain line on stdout."""
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    """Print one line on stderr."""
    sys.stderr.write(line + "\n")


def warn(line: str) -> None:
    """Print one warning on stderr (the library returns warnings; only the CLI prints them)."""
    sys.stderr.write(f"ws: warning: {line}\n")


def human_size(n: int | None) -> str:
    """Bytes as a short human string (1000-based, like du -h --si)."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """A rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    t = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        t.add_row(*[str(c) if c is not None else "-" for c in row])
    Console().print(t)


@contextmanager
def progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress callback drawing a rich bar on stderr, or None when quiet or not a TTY."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    bars: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), transient=True, console=_stderr_console()) as prog:

        def update(phase: str, done: int, total: int) -> None:
            task = bars.get(phase)
            if task is None:
                task = bars[phase] = prog.add_task(phase, total=total)
            prog.update(task, completed=done, total=total)

        yield update


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
