"""``ws serve``: run a team server (a remote over gRPC), and ``ws serve token create|list|revoke``."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import List, Optional

import typer

from workspace import api
from workspace.cli import app
from workspace.cli.common import JSON
from workspace.cli.output import emit_json, err, out, table

ROOT = typer.Option(..., "--root", metavar="DIR", envvar="WS_SERVE_ROOT",
                    help="The server's root folder: a remote in the folder format (created if missing). "
                    "Also read from WS_SERVE_ROOT.")

serve_app = typer.Typer(
    invoke_without_command=True,
    help="Serve a remote to a team over gRPC, with tokens and roles (docs/server.md).\n\n"
    "Clients use grpc://HOST:PORT (grpcs:// with --tls-cert/--tls-key) like any remote URL, with a token from "
    "'ws serve token create' given through WS_TOKEN or 'ws login REMOTE'.\n\n"
    "Example: ws serve token create --root /srv/ws/team --role writer ann     "
    "ws serve --root /srv/ws/team --host 0.0.0.0 --port 50051",
)
app.add_typer(serve_app, name="serve")

token_app = typer.Typer(
    no_args_is_help=True,
    help="Tokens of a server root: who may read (reader), push (writer) or also delete and overwrite (admin).\n\n"
    "Tokens are stored hashed in DIR/.ws-server/tokens.json; a running server sees changes at its next request.",
)
serve_app.add_typer(token_app, name="token")


@serve_app.callback()
def serve(
    ctx: typer.Context,
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", envvar="WS_SERVE_ROOT",
                                       help="Folder to serve: a remote in the folder format, created if missing "
                                       "(also read from WS_SERVE_ROOT). Stop the server and it is still a "
                                       "folder remote."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every interface."),
    port: int = typer.Option(50051, "--port", min=0, max=65535,
                             help="Port to listen on; 0 takes a free one (the 'listening on' line says which)."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", metavar="FILE",
                                           help="PEM certificate (chain): serve TLS; clients then use grpcs://."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", metavar="FILE",
                                          help="PEM private key of --tls-cert."),
    workers: int = typer.Option(32, "--workers", min=2, help="Request threads."),
    transfers: int = typer.Option(8, "--transfers", min=1,
                                  help="Uploads and pack downloads moving bytes at once (more wait their turn); "
                                  "the server's memory grows with this, not with the clients."),
) -> None:
    """Run the server until SIGINT (Ctrl-C) or SIGTERM.

    Prints 'listening on grpc://HOST:PORT' on stdout once it takes requests, then one log line per
    request on stderr naming the token (never showing it). On a signal it stops taking requests and
    gives running transfers 10 seconds to finish.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not root:
        raise typer.BadParameter("the folder to serve is required", param_hint="--root")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's own log lines would repeat our one error line
    handle = api.serve(root, host, port, tls_cert=tls_cert, tls_key=tls_key, workers=workers, transfers=transfers)
    log = logging.getLogger("ws.server")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    stop = threading.Event()
    got: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda num, _frame: (got.append(num), stop.set()))
    out(f"listening on {handle.url}")
    sys.stdout.flush()
    stop.wait()
    err(f"ws serve: {signal.Signals(got[0]).name if got else 'stop'}: stopping (running requests get 10 s)")
    handle.stop(grace=10)
    err("ws serve: stopped")


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="Who the token is for (letters, digits, '.', '_', '@', '-'); "
                               "it names the token in the server's log and in 'token list'."),
    root: str = ROOT,
    role: str = typer.Option(..., "--role", metavar="reader|writer|admin",
                             help="reader: list and pull; writer: also push new releases; "
                             "admin: also delete and overwrite."),
    titles: Optional[List[str]] = typer.Option(None, "--titles", metavar="PATTERN",
                                               help="Limit the token to release titles matching these globs "
                                               "('raw-*'; comma-separated or repeated). Default: every title."),
) -> None:
    """Create a token and print it on the last line (only once: only its hash is stored).

    Example: ws serve token create --root /srv/ws/team --role reader --titles 'raw-*' ci | tail -1 > ci.token
    """
    patterns = [p.strip() for value in titles or [] for p in value.split(",") if p.strip()]
    token = api.create_server_token(root, name, role, patterns)
    out(f"created {role} token '{name}'" + (f" for releases {', '.join(patterns)}" if patterns else ""))
    out("store it now (it cannot be shown again); clients use it with 'ws login REMOTE' or WS_TOKEN:")
    out(token)


@token_app.command("list")
def token_list(root: str = ROOT, json_: bool = JSON) -> None:
    """List the tokens of a server root: names, roles, title patterns, creation times, first characters.

    Never the tokens themselves (they are not stored).
    """
    tokens = api.server_tokens(root)
    if json_:
        emit_json([t.to_dict() for t in tokens])
        return
    if not tokens:
        out(f"no tokens for {root}; create one with 'ws serve token create --root {root} --role ROLE NAME'")
        return
    table(["name", "role", "titles", "created", "starts with"],
          [[t.name, t.role, ", ".join(t.titles) or "*", t.created_at, f"{t.hint}..."] for t in tokens])


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="The token's name (see 'ws serve token list')."),
                 root: str = ROOT) -> None:
    """Revoke a token: a running server refuses it from its next request on, without a restart."""
    gone = api.revoke_server_token(root, name)
    out(f"revoked {gone.role} token '{gone.name}'")
