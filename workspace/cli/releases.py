"""Commands for releases (``ws release create|list|show``) and credentials (``ws login``)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from workspace.cli import app
from workspace.cli.common import JSON, open_workspace as _ws
from workspace.cli.output import emit_json, human_size, out, table

release_app = typer.Typer(
    no_args_is_help=True,
    help="Immutable, semver-versioned releases of the files of a commit.\n\n"
    "Which files go in is set by releases/NAME.toml or [release.NAME] in ws.toml "
    "(include/exclude globs, description, [metadata]); without one, every tracked file.",
)
app.add_typer(release_app, name="release")


@release_app.command("create")
def create(
    name: str = typer.Argument(..., help="Release title, e.g. 'dataset'."),
    version: Optional[str] = typer.Option(None, "--version", help="Exact semver version, e.g. 1.2.0 or 2.0.0-rc.1."),
    bump: Optional[str] = typer.Option(None, "--bump", help="major, minor or patch of the highest version "
                                       "(the first release counts from 0.0.0: --bump minor gives 0.1.0)."),
    from_ref: str = typer.Option("HEAD", "--from", help="Commit (ref) to release."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Description (default: the mapping's)."),
    json_: bool = JSON,
) -> None:
    """Record a new release NAME at a version greater than every existing one.

    The release holds committed files only: uncommitted changes are not in it.

    Examples: ws release create dataset --version 1.0.0     ws release create dataset --bump minor -m "more rows"
    """
    rel = _ws().releases.create(name, version=version, bump=bump, from_ref=from_ref, message=message)
    if json_:
        emit_json(rel.to_dict())
        return
    out(f"Released {rel.title}@{rel.version} from commit {(rel.commit or '')[:12]}: "
        f"{len(rel.files)} files, {human_size(rel.size)}")


@release_app.command("list")
def list_(
    name: Optional[str] = typer.Argument(None, help="Only releases with this title."),
    json_: bool = JSON,
) -> None:
    """List releases: title, version, files, size, commit and time."""
    rels = _ws().releases.list(name)
    if json_:
        emit_json([r.summary_dict() for r in rels])
        return
    if not rels:
        out("no releases" + (f" named '{name}'" if name else "") + "; create one with 'ws release create'")
        return
    table(["title", "version", "files", "size", "commit", "created"],
          [[r.title, r.version, len(r.files), human_size(r.size), (r.commit or "-")[:12], r.created_at]
           for r in rels])


@release_app.command("show")
def show(
    spec: str = typer.Argument(..., metavar="NAME[@VERSION]",
                               help="A release; VERSION may be an expression: latest (default), ^1.2, '>=1.0,<2.0'."),
    json_: bool = JSON,
) -> None:
    """Show one release: its metadata and every file with size and SHA-256."""
    rel = _ws().releases.resolve_spec(spec)
    if json_:
        emit_json(rel.to_dict())
        return
    out(f"release {rel.title}@{rel.version}")
    out(f"Commit:  {rel.commit or '-'}")
    out(f"Author:  {rel.author}")
    out(f"Date:    {rel.created_at}")
    if rel.job:
        out(f"Job:     {rel.job.get('name', '?') if isinstance(rel.job, dict) else rel.job}")
    out(f"Files:   {len(rel.files)} ({human_size(rel.size)})")
    if rel.description:
        out("")
        for line in rel.description.splitlines():
            out(f"    {line}")
    for key, value in rel.metadata.items():
        out(f"  {key}: {value}")
    out("")
    for f in rel.files:
        out(f"{f.sha256}  {f.size:>12}  {f.path}")


@app.command()
def login(
    remote: str = typer.Argument(..., help="A remote ('ws remote add') or a compute backend ('ws backend add')."),
    key: Optional[List[str]] = typer.Option(None, "--key", help="A secret as KEY=VALUE (repeatable).",
                                            metavar="KEY=VALUE"),
    stdin: bool = typer.Option(False, "--stdin", help="Read secrets from stdin: a JSON object or KEY=VALUE lines."),
    forget: bool = typer.Option(False, "--forget", help="Delete the secrets from the keyring instead."),
    backend: bool = typer.Option(False, "--backend", help="NAME is a compute backend even if a remote has that "
                                 "name too (a backend whose name no remote has is found without it)."),
    json_: bool = JSON,
) -> None:
    """Store a remote's or a compute backend's secrets in the system keyring (never in .ws/).

    Without --key or --stdin, asks for each secret the remote's kind needs
    (S3: access key id, secret access key, optional session token; a
    PROMINENCE backend: its token; an AWS Batch backend: AWS keys) with hidden
    input. Environment variables (AWS_*, WS_REMOTE_<NAME>_<KEY>,
    WS_BACKEND_<NAME>_<KEY>) override the keyring.
    A folder remote needs no secret: ws login says so and exits 0. On a machine
    without a keyring backend it fails (exit 11) before asking, naming the
    environment variables to set instead.

    Example: ws login s3data        echo '{"key": "AKIA...", "secret": "..."}' | ws login s3data --stdin
             ws login cloud --key token=eyJ...     (a backend added with 'ws backend add cloud prominence')
    """
    ws = _ws()
    if forget:
        result = ws.logout(remote, backend=backend)
        kind = "backend" if "backend" in result else "remote"
        if json_:
            emit_json(result)
            return
        out(f"Removed the secrets of {kind} '{remote}' from the keyring" if result["removed"]
            else f"The keyring held no secrets for {kind} '{remote}'")
        return
    if stdin:
        result = ws.login(remote, text=sys.stdin.read(), backend=backend)
    elif key:
        result = ws.login(remote, pairs=key, backend=backend)
    else:  # interactive: ask for what the remote's kind needs, with hidden input
        secrets = {name: typer.prompt(f"{remote} {label}", hide_input=True, default="" if not needed else None,
                                      show_default=False)
                   for name, label, needed in ws.login_prompts(remote, backend=backend)}
        result = ws.login(remote, secrets, backend=backend)
    kind = "backend" if "backend" in result else "remote"
    if json_:
        emit_json(result)
        return
    if not result.get("needs_secrets", True):
        out(f"Remote '{remote}' ({result['url']}) needs no secret: nothing to store")
        return
    out(f"Stored {', '.join(result['stored'])} for {kind} '{remote}' in the system keyring")
