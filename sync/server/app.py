"""Starting and stopping a ws server: :func:`serve` returns a handle with the bound port."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from catalog.errors import CatalogError
from sync.errors import SyncError
from sync.server import ws_pb2_grpc
from sync.server.service import RemoteService
from sync.server.store import PIECE, ServerRoot
from sync.server.tokens import TokenStore, state_dir

SERVICE_NAME = "ws.remote.v1.Remote"
MAX_RECEIVE = 4 << 20  # object bytes come in streams of 1 MiB pieces: no request message is larger
MAX_SEND = 64 << 20  # a LocateChunks reply for 100,000 ids is ~12 MB
DEFAULT_WORKERS = 32  # request threads: transfers waiting their turn hold one each, small requests need the rest
DEFAULT_TRANSFERS = 8  # object bodies moving at once
# gRPC's flow-control window per stream. Its default, BDP probing, lets each upload stream buffer
# ~15 MiB on a fast link (32 parallel uploads: 500 MB); a fixed 1 MiB read-ahead keeps the server's
# memory bounded and still moves 1 MiB per round trip per stream (4 streams per client, 10 ms: 400 MB/s).
STREAM_WINDOW = 1 << 20


class ServerStartError(SyncError):
    """The server could not start: the port is taken, the TLS files cannot be read, the root is not usable."""


@dataclass
class ServerHandle:
    """A running server: where it listens, and how to stop it."""

    server: grpc.Server
    root: ServerRoot
    health: health.HealthServicer
    host: str
    port: int
    tls: bool
    lock: int = -1  # the descriptor holding .ws-server/server.lock

    @property
    def url(self) -> str:
        """The remote URL clients use: ``grpc://HOST:PORT`` (``grpcs://`` with TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'grpcs' if self.tls else 'grpc'}://{host}:{self.port}"

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop taking requests, let running ones finish for up to ``grace`` seconds, then close."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.root.close()
        if self.lock >= 0:
            os.close(self.lock)  # the next server may take the root
            self.lock = -1

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` passes); True when it stopped."""
        return self.server.wait_for_termination(timeout)

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, tls_cert: str | None = None,
          tls_key: str | None = None, workers: int = DEFAULT_WORKERS, transfers: int = DEFAULT_TRANSFERS,
          log: logging.Logger | None = None) -> ServerHandle:
    """Serve the remote in ``root`` (created if missing) over gRPC; returns once it listens.

    ``port`` 0 picks a free port (``handle.port``). With ``tls_cert`` and
    ``tls_key`` (PEM files) it serves TLS: clients use ``grpcs://``. Requests
    run on ``workers`` threads; at most ``transfers`` uploads and pack
    downloads move bytes at once (the others wait for a turn), each holding a
    few MiB, so memory is bounded however many clients come.
    """
    if bool(tls_cert) != bool(tls_key):
        raise ServerStartError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
    pair = _read_tls_pair(tls_cert, tls_key) if tls_cert else None
    if os.path.lexists(root) and not os.path.isdir(root):
        raise ServerStartError(f"cannot serve {root}: not a folder")
    _check_port(host, port)
    _fewer_malloc_arenas()
    lock = _lock_root(root)
    try:
        store = ServerRoot(root)
    except (OSError, CatalogError) as exc:
        os.close(lock)
        raise ServerStartError(f"cannot serve {root}: {exc}") from exc
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ws-serve"),
                         options=[("grpc.max_receive_message_length", MAX_RECEIVE),
                                  ("grpc.max_send_message_length", MAX_SEND),
                                  ("grpc.http2.bdp_probe", 0),
                                  ("grpc.http2.lookahead_bytes", STREAM_WINDOW),
                                  ("grpc.so_reuseport", 0)])
    ws_pb2_grpc.add_RemoteServicer_to_server(
        RemoteService(store, TokenStore(root), log or logging.getLogger("ws.server"), transfers), server)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cause = None
    try:
        if pair:
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
        else:
            bound = server.add_insecure_port(address)
    except (OSError, RuntimeError) as exc:  # grpc raises "Failed to bind to address ..."; others return 0
        bound, cause = 0, exc
    if not bound:
        store.close()
        os.close(lock)
        why = ("the certificate and key do not go together, or the port is in use" if pair
               else "the port is in use, or the address is not one of this machine's")
        raise ServerStartError(f"cannot listen on {address}: {why}") from cause
    server.start()
    for name in ("", SERVICE_NAME):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    return ServerHandle(server, store, checker, host, bound, bool(tls_cert), lock)


def _check_port(host: str, port: int) -> None:
    """Refuse a port that is taken before gRPC tries it (gRPC's own failure is a log line on stderr
    and a vague message). gRPC binds with SO_REUSEADDR, so the probe does too; gRPC's bind stays the
    real test (another process may take the port in between)."""
    import socket

    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                why = ("the port is in use" if exc.errno == errno.EADDRINUSE
                       else "the address is not one of this machine's" if exc.errno == errno.EADDRNOTAVAIL
                       else exc.strerror)
                raise ServerStartError(f"cannot listen on {host}:{port}: {why}") from None


def _read_tls_pair(cert: str, key: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate chain PEM) as gRPC wants them; a missing, unreadable or non-PEM file is named."""
    found = []
    for path, flag, marker in ((cert, "--tls-cert", b"CERTIFICATE-----"), (key, "--tls-key", b"PRIVATE KEY-----")):
        try:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
        except OSError as exc:
            raise ServerStartError(f"cannot read the TLS file {path} ({flag}): {exc.strerror}") from None
        if b"-----BEGIN " not in data or marker not in data:
            what = "private key" if flag == "--tls-key" else "certificate"
            raise ServerStartError(f"the TLS file {path} ({flag}) is not a PEM {what}")
        found.append(data)
    return found[1], found[0]


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (default: 8 per core): with dozens of threads passing MiB-sized
    buffers, each arena keeps its own freed memory, and 32 parallel uploads grew the server to
    ~230 MB instead of ~150 MB. A no-op where libc is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _lock_root(root: str | os.PathLike) -> int:
    """Hold ``.ws-server/server.lock`` for the server's life: one server per root (a second one would
    empty the first one's uploads in progress); returns the descriptor holding the lock."""
    folder = state_dir(root)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(folder / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ServerStartError(f"cannot serve {root}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ServerStartError(f"another ws server is serving {root}") from None
    return fd


__all__ = ["PIECE", "ServerHandle", "ServerStartError", "serve"]
