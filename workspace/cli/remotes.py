"""Commands for remotes: ``ws remote add|list|remove|releases``, ``ws push``, ``ws pull``, ``ws clone``."""

from __future__ import annotations

from typing import List, Optional

import typer

from workspace.api import Workspace, clone as clone_workspace
from workspace.cli import app
from workspace.cli.common import JSON, QUIET, key_values, open_workspace as _ws
from workspace.cli.output import emit_json, err, human_size, out, progress, table, warn

OPTION = typer.Option(None, "--option", "-o", metavar="KEY=VALUE",
                      help="A non-secret remote option, e.g. endpoint_url=http://... or region=eu-west-1 "
                      "(repeatable). Secrets go through 'ws login NAME'.")

remote_app = typer.Typer(
    no_args_is_help=True,
    help="Remotes: where releases are pushed to and pulled from.\n\n"
    "A remote is a plain path, file://, memory://, s3://bucket/prefix or any other fsspec URL.",
)
app.add_typer(remote_app, name="remote")


@remote_app.command("add")
def add(
    name: str = typer.Argument(..., help="Remote name, e.g. origin."),
    url: str = typer.Argument(..., help="Folder path, file://, memory://, s3://bucket/prefix, or an fsspec URL."),
    option: Optional[List[str]] = OPTION,
    default: bool = typer.Option(False, "--default", help="Make it the default remote (the first one is)."),
) -> None:
    """Configure a remote.

    Examples: ws remote add origin /mnt/shared/ds      ws remote add s3 s3://bucket/ds -o region=eu-west-1
    """
    info = _ws().add_remote(name, url, key_values(option), default=default)
    out(f"Added remote {info.name} -> {info.url}" + (" (default)" if info.default else ""))


@remote_app.command("list")
def list_(json_: bool = JSON) -> None:
    """List configured remotes (the default is marked with *)."""
    remotes = _ws().remotes()
    if json_:
        emit_json([r.to_dict() for r in remotes])
        return
    for r in remotes:
        opts = " ".join(f"{k}={v}" for k, v in sorted(r.options.items()))
        out(f"{'*' if r.default else ' '} {r.name:<16} {r.url}" + (f"  ({opts})" if opts else ""))


@remote_app.command("remove")
def remove(name: str = typer.Argument(..., help="Remote to forget.")) -> None:
    """Forget a remote (its data on the remote is not touched)."""
    _ws().remove_remote(name)
    out(f"Removed remote {name}")


@remote_app.command("releases")
def releases(
    remote: Optional[str] = typer.Argument(None, help="Remote to ask (default: the default remote)."),
    json_: bool = JSON,
) -> None:
    """List the releases a remote holds (asks the remote)."""
    rows = _ws().remote_releases(remote)
    for w in rows.warnings:
        warn(w)
    if json_:
        emit_json(rows)
        return
    if not rows:
        out("no releases on this remote")
        return
    table(["release", "files", "size", "created"],
          [[f"{r['title']}@{r['version']}", r["files"], human_size(r["size"]), r["created_at"]] for r in rows])


@app.command()
def push(
    remote: Optional[str] = typer.Argument(None, help="Remote (default: the default remote)."),
    spec: Optional[str] = typer.Argument(None, help="NAME (every version) or NAME@VERSION (default: every "
                                         "release not on the remote yet)."),
    workers: int = typer.Option(4, "--jobs", "-j", min=1, max=64, help="Parallel uploads."),
    json_: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Send releases to a remote, uploading only the chunks it lacks.

    The release record is written last and create-only: a release a remote lists is always complete.
    An interrupted push resumes where it stopped.

    Examples: ws push      ws push origin      ws push origin dataset@1.2.0
    """
    with progress(quiet or json_) as cb:
        res = _ws().push(remote, spec, progress=cb, workers=workers)
    if json_:
        emit_json(res.to_dict())
        return
    for key in res.pushed:
        out(f"Pushed {key} to {res.remote}")
    for key in res.already:
        out(f"{key} is already on {res.remote}")
    if not res.pushed and not res.already:
        out(f"Nothing to push to {res.remote}")
    out(f" {res.packs_uploaded} pack(s), {res.chunks_uploaded} chunk(s), {human_size(res.bytes_uploaded)} uploaded")


@app.command()
def pull(
    first: str = typer.Argument(..., metavar="[REMOTE] NAME[@EXPR]",
                                help="Release to fetch, optionally after the remote: "
                                "EXPR is a version, a range (>=1.0,<2.0), ^1.2, ~1.2 or latest (default)."),
    second: Optional[str] = typer.Argument(None, hidden=True),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite uncommitted local changes."),
    workers: int = typer.Option(4, "--jobs", "-j", min=1, max=64, help="Parallel downloads."),
    json_: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Fetch a release into the working tree and record it as a commit.

    Downloads only missing chunks, verifies every SHA-256, writes files under temporary names
    and renames them into place. Refuses to overwrite local changes unless --force.

    Examples: ws pull dataset      ws pull origin dataset@^1.2
    """
    remote, spec = (first, second) if second is not None else (None, first)
    with progress(quiet or json_) as cb:
        res = _ws().pull(remote, spec, force=force, progress=cb, workers=workers)
    for w in res.warnings:
        warn(w)
    if json_:
        emit_json(res.to_dict())
        return
    out(f"Pulled {res.release} from {res.remote}: {res.files_written} file(s) written, "
        f"{res.files_unchanged} unchanged; fetched {res.chunks_fetched} chunk(s), {human_size(res.bytes_fetched)}")


@app.command()
def clone(
    url: str = typer.Argument(..., help="The remote's URL."),
    spec: str = typer.Argument(..., help="NAME[@EXPR] of the release to fetch."),
    directory: str = typer.Argument(..., help="New folder for the workspace (must not exist or be empty)."),
    option: Optional[List[str]] = OPTION,
    json_: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Make a new workspace from a remote release; the remote becomes 'origin'.

    Example: ws clone s3://bucket/ds dataset@^1.0 ./dataset -o endpoint_url=http://127.0.0.1:9000
    """
    with progress(quiet or json_) as cb:
        ws, res = clone_workspace(url, spec, directory, options=key_values(option), progress=cb)
    ws.close()
    for w in res.warnings:
        warn(w)
    if json_:
        emit_json(res.to_dict())
        return
    out(f"Cloned {res.release} into {res.root}: {res.files_written} file(s), {human_size(res.bytes_fetched)} fetched")


def fsck_remote_command(ws: Workspace, remote: str, read_data: bool, json_: bool, quiet: bool) -> None:
    """``ws fsck --remote NAME [--read-data]``: print the report; exit 6 on damage."""
    with progress(quiet or json_) as cb:
        report = ws.fsck_remote(remote, read_data=read_data, progress=cb)
    if json_:
        emit_json(report.to_dict())
    else:
        out(f"remote {report.remote}: checked {report.packs} packs, {report.chunks} chunks, "
            f"{report.releases} releases" + (f", read {human_size(report.bytes_read)}" if read_data else ""))
        for p in report.orphan_packs:
            out(f"leftover: {p} has no index (an interrupted upload; 'ws push' re-sends its chunks)")
        for key in report.stray:
            warn(f"{key} is not a release record (releases/<title>/<version>.json); pull skips it")
        for p in report.problems:
            err(f"problem: {p}")
        out("ok" if report.ok else f"{len(report.problems)} problem(s) found")
    if not report.ok:
        raise typer.Exit(6)
