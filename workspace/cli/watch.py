"""``ws watch``: keep ``ws status`` cheap on big trees, or re-run a spec when its inputs change."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from workspace.cli import app
from workspace.cli.common import JSON, open_workspace as _ws
from workspace.cli.output import emit_json, emit_json_line, out


@app.command()
def watch(
    ctx: typer.Context,
    daemon: bool = typer.Option(False, "--daemon", "-d", help="Start the watcher in the background and return "
                                "once it watches every folder."),
    stop: bool = typer.Option(False, "--stop", help="Stop the running watcher and wait until it has exited."),
    status: bool = typer.Option(False, "--status", help="Show whether a watcher runs: pid, since when, folders "
                                "watched, events seen."),
    run: Optional[str] = typer.Option(None, "--run", metavar="SPEC", help="Run this job spec now and again "
                                      "whenever its inputs change; only sweep members whose inputs changed run."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", metavar="KEY=VALUE",
                                              help="With --run: set a parameter (repeatable)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="With --run: the backend to run on."),
    settle: float = typer.Option(0.3, "--settle", min=0.0, metavar="SECONDS",
                                 help="With --run: wait until the tree was quiet this long before a round."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="With --run: stop after N rounds."),
    ready_fd: Optional[int] = typer.Option(None, "--ready-fd", hidden=True),
    json_: bool = JSON,
) -> None:
    """Watch the working tree so that 'ws status' reads only the folders that changed.

    Without options the watcher runs in this terminal until Ctrl-C. One watcher
    per workspace; it needs one inotify watch per folder (Linux). Status
    asks it what changed and falls back to a full scan whenever it cannot vouch
    (not running, restarted, events lost), so the answer is the same either way.

    With --run, each round is 'ws run SPEC --wait' and prints one line (one JSON
    object per line with --json).

    Examples: ws watch --daemon     ws watch --status --json     ws watch --stop
              ws watch --run align   (re-runs the members of jobs/align.yaml whose inputs change)
    """
    if sum([daemon, stop, status, run is not None]) > 1:
        raise typer.BadParameter("use one of --daemon, --stop, --status, --run")
    if run is None:
        given = [f"--{name}" for name in ("param", "backend", "settle", "rounds") if _given(ctx, name)]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} {'goes' if len(given) == 1 else 'go'} with --run")
    ws = _ws()
    if run is not None:
        for r in ws.watch_run(run, param or [], backend=backend, settle=settle, rounds=rounds, cwd=os.getcwd()):
            if json_:
                emit_json_line(r)  # one line per round, as it ends
                continue
            ran = ", ".join(_member(j) for j in r["ran"]) or "nothing"
            tail = f"error: {r['error']}" if r.get("error") else f"ran {ran}; {r['skipped']} skipped; {r['state']}"
            out(f"round {r['round']} ({r['why']}): {tail}")
            sys.stdout.flush()
        return
    if stop:
        res = ws.watch_stop()
        if json_:
            emit_json(res)
        else:
            out(f"stopped the watcher (pid {res['stopped']})" if res["stopped"] else "no watcher was running")
        return
    if status or daemon:
        info = ws.watch_start() if daemon else ws.watch_info()
        if json_:
            emit_json(info)
        elif not info.get("running"):
            out("no watcher runs for this workspace ('ws status' scans the whole tree)")
        else:
            out(f"watching {info.get('root')} (pid {info.get('pid')})")
            for key in ("since", "folders_watched", "events", "overflows", "epoch", "log"):
                if key in info:
                    out(f"  {key.replace('_', ' ')}: {info[key]}")
            if info.get("unwatched"):
                out(f"  not watched (always re-read): {', '.join(info['unwatched'])}")
        return
    def ready(info: dict) -> None:
        out(f"watching {info['root']} ({info['folders_watched']} folders, pid {info['pid']}); Ctrl-C to stop")
        sys.stdout.flush()

    ws.watch(ready_fd, on_ready=None if ready_fd is not None else ready)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given (even with its default value), not left to its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _member(job: dict) -> str:
    params = job.get("params") or {}
    label = " ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else str(params)
    return f"{job.get('name')}[{label}] {job.get('state')}" if label else f"{job.get('name')} {job.get('state')}"
