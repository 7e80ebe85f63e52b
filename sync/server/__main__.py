"""``python -m sync.server``: run a ws server, or manage its tokens, without the ws CLI.

    python -m sync.server --root DIR [--host 127.0.0.1] [--port 50051] [--tls-cert F --tls-key F]
                          [--workers N] [--transfers N]
    python -m sync.server token create --root DIR --role reader|writer|admin [--titles 'raw-*'] NAME
    python -m sync.server token list --root DIR [--json]
    python -m sync.server token revoke --root DIR NAME

The server prints ``listening on grpc://HOST:PORT`` on stdout once it takes
requests (so ``--port 0`` tells a script the port it got), logs one line per
request on stderr, and stops gracefully on SIGTERM or Ctrl-C. ``token create``
prints the new token on its last line. Errors are one line and ws's exit codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading


def _serve(argv: list[str]) -> int:
    from sync.server.app import DEFAULT_TRANSFERS, DEFAULT_WORKERS, serve

    ap = argparse.ArgumentParser(prog="python -m sync.server", description="Serve a ws remote over gRPC.")
    ap.add_argument("--root", required=True, help="folder holding the remote (created if missing)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=50051, help="port (0: any free port; default 50051)")
    ap.add_argument("--tls-cert", help="PEM certificate (chain): serve TLS, clients use grpcs://")
    ap.add_argument("--tls-key", help="PEM private key of the certificate")
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="request threads")
    ap.add_argument("--transfers", type=int, default=DEFAULT_TRANSFERS,
                    help="uploads and pack downloads moving bytes at once (the others wait)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    handle = serve(args.root, args.host, args.port, args.tls_cert, args.tls_key, workers=args.workers,
                   transfers=args.transfers)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening on {handle.url}", flush=True)
    stop.wait()
    handle.stop(grace=10)
    return 0


def _token(argv: list[str]) -> int:
    from sync.server.tokens import ROLES, create_token, list_tokens, revoke_token

    ap = argparse.ArgumentParser(prog="python -m sync.server token", description="Manage a ws server's tokens.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    create = sub.add_parser("create", help="create a token; prints it on the last line (shown only once)")
    create.add_argument("--root", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--titles", default="", help="comma-separated release title globs, e.g. 'raw-*'")
    create.add_argument("name")
    listing = sub.add_parser("list", help="list tokens (names, roles, title patterns; never the tokens)")
    listing.add_argument("--root", required=True)
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="revoke a token by name (a running server refuses it at once)")
    revoke.add_argument("--root", required=True)
    revoke.add_argument("name")
    args = ap.parse_args(argv)
    if args.cmd == "create":
        titles = [t.strip() for t in args.titles.split(",") if t.strip()]
        token = create_token(args.root, args.name, args.role, titles)
        print(f"created {args.role} token '{args.name}'" + (f" for releases {', '.join(titles)}" if titles else ""))
        print("store it now (it cannot be shown again); clients use it with 'ws login REMOTE' or WS_TOKEN:")
        print(token)
    elif args.cmd == "list":
        tokens = list_tokens(args.root)
        if args.json:
            print(json.dumps([t.to_dict() for t in tokens], indent=1))
        for t in tokens if not args.json else ():
            print(f"{t.name}\t{t.role}\t{','.join(t.titles) or '*'}\t{t.created_at}\t{t.hint}...")
    else:
        gone = revoke_token(args.root, args.name)
        print(f"revoked {gone.role} token '{gone.name}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the server (default) or the ``token`` commands; library errors become one line and an exit code."""
    from sync.errors import SyncError

    argv = sys.argv[1:] if argv is None else argv
    try:
        return _token(argv[1:]) if argv[:1] == ["token"] else _serve(argv)
    except SyncError as exc:
        sys.stderr.write(f"ws: error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
