"""Commands for versioned files: init, status, commit, log, show, diff, branches, checkout, ls, cat, fsck, gc."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer
from typer.core import TyperCommand

from workspace.cli import app
from workspace.cli.common import JSON, QUIET, open_workspace as _ws
from workspace.cli.output import emit_json, err, human_size, out, progress


@app.command()
def init(directory: str = typer.Argument(".", help="Folder to turn into a workspace (created if missing).")) -> None:
    """Make a folder a ws workspace (creates .ws/ with the catalog, object store and config).

    Also makes an empty jobs/ folder, where job specs (jobs/NAME.yaml) go.

    Example: ws init my-project
    """
    from workspace.api import Workspace

    ws = Workspace.init(directory, spec_folder=True)
    out(f"Initialized empty ws workspace in {ws.layout.ws_dir}")


@app.command()
def status(
    paths: Optional[List[str]] = typer.Argument(None, help="Only files these pathspecs match: a file, a folder, "
                                                "or a glob ('data/*.csv'; '*' stops at '/', '**' does not)."),
    json_: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Show added, modified and deleted files against HEAD, and what is not yet on each remote.

    Only files whose size, mtime or inode changed are re-read.

    Examples: ws status      ws status data      ws status 'data/**/*.csv'
    """
    from workspace.cli.status_view import show_status

    show_status(_ws(), as_json=json_, quiet=quiet, paths=paths)


@app.command()
def commit(
    message: str = typer.Option(..., "-m", "--message", help="Commit message."),
    paths: Optional[List[str]] = typer.Argument(None, help="Only commit these files or folders."),
    json_: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Record the working tree (or only PATHs) as a new commit on the current branch.

    Files are cut into content-defined chunks; only chunks not stored yet are written.

    Examples: ws commit -m "raw data"      ws commit -m "fix labels" data/labels.csv
    """
    ws = _ws()
    with progress(quiet or json_) as cb:
        res = ws.commit(message, paths or None, progress=cb)
    if json_:
        emit_json(res.to_dict())
        return
    c = res.commit
    out(f"[{c.branch or 'detached'} {c.id[:12]}] {c.message}")
    out(f" {res.added} added, {res.modified} modified, {res.deleted} deleted; "
        f"read {human_size(res.bytes_read)}, stored {human_size(res.bytes_stored)} new")


@app.command()
def log(
    n: Optional[int] = typer.Option(None, "-n", help="Show at most N commits."),
    path: Optional[str] = typer.Argument(None, help="Only commits that changed this path."),
    ref: str = typer.Option("HEAD", "--ref", help="Start from this ref."),
    oneline: bool = typer.Option(False, "--oneline", help="One line per commit."),
    json_: bool = JSON,
) -> None:
    """Show commits, newest first."""
    commits = _ws().log(n=n, path=path, ref=ref, cwd=os.getcwd())
    if json_:
        emit_json([c.to_dict() for c in commits])
        return
    for c in commits:
        if oneline:
            out(f"{c.id[:12]} {c.message.splitlines()[0] if c.message else ''}")
            continue
        out(f"commit {c.id}" + (f" ({c.branch})" if c.branch else ""))
        out(f"Author: {c.author}")
        out(f"Date:   {c.time}")
        job = (c.provenance or {}).get("job")
        if isinstance(job, dict):
            out(f"Job:    {job.get('name', '')} {job.get('id', '')}".rstrip())
        out("")
        for line in c.message.splitlines():
            out(f"    {line}")
        out("")


@app.command()
def show(ref: str = typer.Argument("HEAD", help="Commit to show."), json_: bool = JSON) -> None:
    """Show one commit: its metadata, provenance and the files it changed."""
    shown = _ws().show(ref)
    c, d = shown.commit, shown.diff
    if json_:
        emit_json(shown.to_dict())
        return
    out(f"commit {c.id}")
    out(f"Parents: {' '.join(p[:12] for p in c.parents) or '(root)'}")
    out(f"Author:  {c.author}")
    out(f"Date:    {c.time}")
    if c.provenance:
        out("Provenance:")
        for k, v in c.provenance.items():
            out(f"  {k}: {v}")
    out("")
    for line in c.message.splitlines():
        out(f"    {line}")
    out("")
    for e in d.entries:
        out(f"  {e.change:<9}{e.path}  ({human_size(e.old_size)} -> {human_size(e.new_size)})")


@app.command()
def diff(
    a: Optional[str] = typer.Argument(None, help="From this ref (default HEAD)."),
    b: Optional[str] = typer.Argument(None, help="To this ref (default: the working tree)."),
    path: Optional[List[str]] = typer.Option(None, "--path", "-p", help="Limit to the files these pathspecs match (a file, a folder or a glob; repeatable)."),
    stat: bool = typer.Option(False, "--stat", help="Only the list of changed paths with sizes."),
    json_: bool = JSON,
) -> None:
    """Compare two commits, or a commit and the working tree; unified diff for text files."""
    ws = _ws()
    d = ws.diff(a, b, path or None)
    if json_:
        emit_json(d.to_dict())
        return
    if stat:
        for e in d.entries:
            out(f" {e.change:<9}{e.path}  {human_size(e.old_size)} -> {human_size(e.new_size)}")
        out(f" {len(d.entries)} path(s) changed")
        return
    for e in d.entries:
        if e.old_mode and e.new_mode and e.old_mode != e.new_mode:
            out(f"mode change {e.old_mode:o} -> {e.new_mode:o} {e.path}")
            if e.old_id == e.new_id:
                continue
        lines = ws.diff_lines(d, e)
        if lines is None:
            out(f"Binary or large file {e.path} {e.change} ({human_size(e.old_size)} -> {human_size(e.new_size)})")
        else:
            sys.stdout.writelines(line if line.endswith("\n") else line + "\n" for line in lines)


@app.command()
def branch(
    name: Optional[str] = typer.Argument(None, help="Create a branch with this name at HEAD."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete the branch NAME."),
    json_: bool = JSON,
) -> None:
    """List branches, or create (or with -d delete) one."""
    ws = _ws()
    if delete and not name:
        raise typer.BadParameter("-d needs the name of the branch to delete", param_hint="NAME")
    if name and delete:
        ws.delete_branch(name)
        out(f"Deleted branch {name}")
        return
    if name:
        cid = ws.create_branch(name)
        out(f"Created branch {name} at {cid[:12]}")
        return
    rows = ws.branches()
    if json_:
        emit_json([{"name": n, "commit": c, "current": cur} for n, c, cur in rows])
        return
    for n, c, cur in rows:
        out(f"{'*' if cur else ' '} {n:<20} {c[:12]}")


@app.command()
def switch(
    name: str = typer.Argument(..., help="Branch to switch to."),
    create: bool = typer.Option(False, "-c", "--create", help="Create the branch at HEAD first."),
    force: bool = typer.Option(False, "--force", "-f", help="Discard uncommitted changes that are in the way."),
) -> None:
    """Switch to a branch, updating the working tree."""
    ws = _ws()
    ws.switch(name, create=create, force=force)
    out(f"Switched to {'a new ' if create else ''}branch '{name}'")


@app.command()
def checkout(
    ref: str = typer.Argument(..., help="Branch, commit id (or prefix), HEAD~N."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite uncommitted changes."),
    quiet: bool = QUIET,
) -> None:
    """Make the working tree match REF. Refuses to overwrite uncommitted changes unless --force."""
    ws = _ws()
    with progress(quiet) as cb:
        c = ws.checkout(ref, force=force, progress=cb)
    branch, _ = ws.head()
    out(f"HEAD is now at {c.id[:12]} {c.message.splitlines()[0] if c.message else ''}"
        + (f" (branch {branch})" if branch else " (detached)"))


@app.command()
def restore(
    paths: List[str] = typer.Argument(..., help="Files, folders or globs to restore (pathspecs: '*' stops at '/', '**' does not)."),
    source: str = typer.Option("HEAD", "--source", "-s", help="Take the content from this ref."),
) -> None:
    """Overwrite working files with their committed version (from HEAD or --source).

    Examples: ws restore data/labels.csv      ws restore --source HEAD~2 'data/*.csv'
    """
    ws = _ws()
    written = ws.restore(paths, source)
    out(f"Restored {len(written)} file(s) from {source}")


@app.command("ls")
def ls_(
    ref: Optional[str] = typer.Argument(None, help="Commit to list (default HEAD)."),
    pattern: Optional[str] = typer.Argument(None, help="A file, folder or glob, from the workspace root ('data/*.txt' stops at '/', 'data/**/*.txt' does not, '*.txt' is any depth)."),
    long: bool = typer.Option(False, "-l", help="Show sizes and ids."),
    json_: bool = JSON,
) -> None:
    """List the files of a commit without touching the working tree.

    Examples: ws ls      ws ls HEAD~1 'data/*.csv'      ws ls data
    """
    entries = _ws().ls_ref_or_pattern(ref, pattern)
    if json_:
        emit_json([e.to_dict() for e in entries])
        return
    for e in entries:
        out(f"{e.id[:12]}  {e.size:>12}  {e.path}" if long else e.path)


@app.command()
def cat(spec: str = typer.Argument(..., help="REF:PATH, or PATH for HEAD.")) -> None:
    """Write a committed file's bytes to stdout, e.g. ws cat HEAD~2:data/labels.csv"""
    stream = sys.stdout.buffer
    for part in _ws().cat(spec):
        stream.write(part)
    stream.flush()


@app.command()
def fsck(
    json_: bool = JSON,
    quiet: bool = QUIET,
    remote: Optional[str] = typer.Option(None, "--remote", metavar="NAME",
                                         help="Check this remote instead of the local store."),
    read_data: bool = typer.Option(False, "--read-data", help="With --remote: download every pack and "
                                   "verify every chunk's SHA-256 (default: structure only)."),
    rebuild_catalog: bool = typer.Option(False, "--rebuild-catalog", help="Build a new .ws/catalog.db from the "
                                         "packs, ref files, release and job records under .ws/ (the old file is "
                                         "kept as catalog.db.broken-TIME), then check everything."),
) -> None:
    """Verify every pack, every chunk's SHA-256 and every catalog reference. Exits 6 on damage.

    Example: ws fsck --rebuild-catalog   (after 'the catalog ... is damaged' or '... is missing')
    """
    rebuilt = _rebuild(json_) if rebuild_catalog else None
    ws = _ws()
    if remote is not None:  # REMOTE-FSCK (sync work): packs, indexes and release records of a remote
        from workspace.cli.remotes import fsck_remote_command

        fsck_remote_command(ws, remote, read_data, json_, quiet)
        return
    with progress(quiet or json_) as cb:
        report = ws.fsck(progress=cb)
    if json_:
        emit_json(report.to_dict() if rebuilt is None else {**report.to_dict(), "rebuild": rebuilt.to_dict()})
    else:
        out(f"checked {report.packs} packs, {report.chunks} chunks, {report.files} files, {report.commits} commits")
        for p in report.problems:
            err(f"problem: {p}")
        for p in report.damaged_paths:
            err(f"damaged: {p}")
        for p in report.unknown_packs:  # not damage: 'ws gc' reclaims them when nothing needs them
            out(p)
        out("ok" if report.ok else f"{len(report.problems)} problem(s) found")
    if not report.ok:
        raise typer.Exit(6)


def _rebuild(json_: bool):
    from workspace.api import Workspace

    report = Workspace.rebuild_catalog()
    if json_:
        return report
    if report.kept_aside:
        out(f"the old catalog is kept as {report.kept_aside}")
    out(f"rebuilt the catalog: {report.packs} packs, {report.commits} commits, {report.trees} trees, "
        f"{report.files} files, {report.branches} branches, {report.releases} releases, {report.jobs} jobs")
    for p in report.problems:
        err(f"problem: {p}")
    return report


class _OptionalPruneAge(TyperCommand):
    """``--prune`` alone means ``--prune=2.weeks`` (git's default expiry); ``--prune=AGE`` sets the age.
    (click's optional values would take the next option, ``--prune --dry-run``, as the age.)"""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, ["--prune=2.weeks" if a == "--prune" else a for a in args])


@app.command(cls=_OptionalPruneAge)
def gc(
    prune: Optional[str] = typer.Option(
        None, "--prune", metavar="[=AGE]",
        help="Also drop commits no branch, HEAD, release or job record reaches and older than AGE "
        "(default 2.weeks; e.g. 3d, 12h, 6.months, now), with the chunks only they held."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only print what would be freed; change nothing."),
    json_: bool = JSON,
) -> None:
    """Reclaim pack space that no commit references (left by deleted history or interrupted commits).

    Examples: ws gc      ws branch -d old && ws gc --prune=now      ws gc --prune --dry-run
    """
    ws = _ws()
    report = ws.gc(prune=prune, dry_run=dry_run)
    if json_:
        emit_json(report.to_dict())
        return
    _print_gc(report)


def _print_gc(report) -> None:
    if report.dry_run:
        out(f"would drop {report.commits_dropped} commit(s), {report.files_dropped} file content(s), "
            f"{report.chunks_dropped} chunk(s) and {report.temp_files_deleted} temporary pack(s); "
            f"would free about {human_size(report.bytes_freed)} (dry run: nothing changed)")
        return
    dropped = f"dropped {report.commits_dropped} commit(s); " if report.commits_dropped else ""
    out(f"{dropped}deleted {report.packs_deleted} pack(s), rewrote {report.packs_rewritten}, "
        f"removed {report.temp_files_deleted} temporary file(s); freed {human_size(report.bytes_freed)}")
    for k in report.kept:
        err(f"kept: {k}")


@app.command()
def squash(
    branch: str = typer.Argument(..., help="The branch to rewrite."),
    keep: int = typer.Option(0, "--keep", "-k", metavar="N", min=0,
                             help="Keep the N newest commits as they are (new ids); squash the rest into one."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only print what would be squashed and freed."),
    json_: bool = JSON,
) -> None:
    """Rewrite a branch's old history into one commit, then drop what only the old commits held.

    The squashed commit holds the tree of the newest commit squashed. Old commits
    that another branch, HEAD, a release or a job record still reaches are kept.

    Examples: ws squash main      ws squash main --keep 5 --dry-run
    """
    report, info = _ws().squash(branch, keep, dry_run=dry_run)
    if json_:
        emit_json({**info, **report.to_dict()})
        return
    if not info["commits_squashed"]:
        out(f"nothing to squash: {branch} has at most one commit below the {keep} kept")
        return
    verb = "would squash" if dry_run else "squashed"
    out(f"{verb} {info['commits_squashed']} commit(s) of {branch} into one, kept {info['commits_kept']}; "
        f"{branch} {'would point' if dry_run else 'points'} at {info['new_tip'][:12]}")
    _print_gc(report)
