"""How ``ws status`` looks; shared by the Typer command and the fast entry path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workspace.cli.output import emit_json, out, progress

if TYPE_CHECKING:
    from workspace.api import Workspace


def show_status(ws: Workspace, as_json: bool = False, quiet: bool = False, paths: list[str] | None = None) -> None:
    """Compute and print the status of ``ws`` (only the files ``paths``, pathspecs, match)."""
    import os

    with progress(quiet or as_json) as cb:
        st = ws.status(progress=cb, paths=paths or None, cwd=os.getcwd() if paths else None)
    if as_json:
        emit_json(st.to_dict())
        return
    where = f"On branch {st.branch}" if st.branch else "HEAD detached"
    out(where + (f" at {st.head[:12]}" if st.head else " (no commits yet)"))
    if st.clean:
        out("nothing to commit, working tree clean")
    else:
        out("Changes not committed:")
        for label, paths in (("added", st.added), ("modified", st.modified), ("deleted", st.deleted)):
            for p in paths:
                out(f"  {label + ':':<10}{p}")
    for r in st.remotes:
        if r.get("summary"):
            out(r["summary"])
