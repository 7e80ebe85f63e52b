"""Storage on a ws server: ``grpc://HOST:PORT`` (and ``grpcs://HOST:PORT`` over TLS).

The storage protocol maps onto the server's RPCs (sync/server/ws.proto): a put
of ``packs/...`` is an UploadPack (the server verifies the whole pack before
anyone sees it), ``index/...`` a PutIndex, ``releases/...`` a PutRelease,
anything else a PutObject, each a stream of 1 MiB pieces after a header; gets
are streamed Reads of a whole object or a byte range. On top of the protocol it offers the optional
capabilities of :mod:`sync.storage.base` (``missing_chunks``,
``locate_chunks``), so push and pull ask the server about chunks instead of
reading every index of the remote.

Options: ``token`` (from ``ws login`` or ``WS_TOKEN``; sent as
``authorization: Bearer ...``), for ``grpcs://`` ``ca_cert`` (a PEM file to
trust instead of the system's roots, e.g. a self-signed server certificate)
and ``server_name`` (the name the certificate must carry, when it is not
HOST). gRPC status codes become our errors: NOT_FOUND -> ObjectNotFound,
ALREADY_EXISTS -> ObjectExists, UNAVAILABLE (and other passing troubles) ->
TransientError (retried by the registry's RetryBackend), UNAUTHENTICATED and
PERMISSION_DENIED -> RejectedCredentials (exit 11), anything else SyncError.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator

# gRPC's C core logs a failed TLS handshake (an untrusted certificate) on stderr at INFO level, which
# would repeat the one error line ws prints; a GRPC_VERBOSITY the user set still wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
import grpc  # noqa: E402

from sync.errors import ObjectExists, ObjectNotFound, RejectedCredentials, SyncError, TransientError
from sync.storage.base import LocalFile, ObjectInfo, Payload, check_key

PIECE = 1 << 20  # bytes per streamed message
MAX_MESSAGE = 64 << 20  # replies: a LocateChunks answer for 20,000 ids is ~2.5 MB; requests stay under 4 MiB
UNARY_TIMEOUT = 120.0  # seconds; streams have none (a 32 MiB pack on a slow link takes what it takes)
ID_BATCH = 20_000  # chunk ids per MissingChunks / LocateChunks call (the server takes up to 100,000)
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.ABORTED}


def parse_url(url: str) -> tuple[str, str]:
    """(scheme, host:port) of a ``grpc://`` or ``grpcs://`` URL; SyncError for anything else."""
    scheme, sep, rest = url.partition("://")
    target = rest.rstrip("/")
    host, _, port = target.rpartition(":")
    if not sep or scheme.lower() not in ("grpc", "grpcs") or "/" in target or not host or not port.isdigit():
        raise SyncError(f"invalid ws server URL {url!r}: expected grpc://HOST:PORT or grpcs://HOST:PORT")
    return scheme.lower(), target


class GrpcBackend:
    """A remote served by ``ws serve``."""

    verifies_packs = True  # the server checks every uploaded pack before it becomes visible

    def __init__(self, url: str, options: dict | None = None, label: str | None = None):
        from sync.server import ws_pb2, ws_pb2_grpc

        self.url = url
        self.label = label or url
        options = dict(options or {})
        scheme, target = parse_url(url)
        token = options.get("token") or os.environ.get("WS_TOKEN") or ""
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        channel_options = [("grpc.max_receive_message_length", MAX_MESSAGE),
                           ("grpc.max_send_message_length", MAX_MESSAGE),
                           ("grpc.enable_retries", 0)]  # RetryBackend retries, once, in one place
        if scheme == "grpcs":
            roots = None
            if options.get("ca_cert"):
                try:
                    with open(os.path.expanduser(str(options["ca_cert"])), "rb") as f:
                        roots = f.read()
                except OSError as exc:
                    raise SyncError(f"remote {self.label}: cannot read ca_cert {options['ca_cert']}: {exc}") from exc
            if options.get("server_name"):
                channel_options.append(("grpc.ssl_target_name_override", str(options["server_name"])))
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), channel_options)
        else:
            self._channel = grpc.insecure_channel(target, channel_options)
        self._pb = ws_pb2
        self._stub = ws_pb2_grpc.RemoteStub(self._channel)

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    # -- the protocol ---------------------------------------------------------
    def stat(self, key: str) -> ObjectInfo | None:
        """Size of an object or None."""
        reply = self._unary(self._stub.Stat, self._pb.KeyRequest(key=check_key(key)), key)
        return ObjectInfo(key, reply.size) if reply.exists else None

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes of an object, optionally ``[start, end)``, streamed in 1 MiB pieces."""
        data = b"".join(self._read(key, start, end))
        if end is not None and len(data) != end - (start or 0):
            raise SyncError(f"remote {self.label}: short read of {key} ({len(data)} of {end - (start or 0)} bytes)")
        return data

    def get_file(self, key: str, local_path: str) -> int:
        """Stream a whole object into a new local file; returns its size."""
        n = 0
        with open(local_path, "wb") as f:
            for piece in self._read(key, None, None):
                f.write(piece)
                n += len(piece)
        return n

    def put(self, key: str, data: Payload, exclusive: bool = False) -> None:
        """Store an object through the RPC its key calls for (packs streamed and verified by the server)."""
        check_key(key)
        rpc = {"packs": self._stub.UploadPack, "index": self._stub.PutIndex,
               "releases": self._stub.PutRelease}.get(key.split("/", 1)[0], self._stub.PutObject)
        try:
            rpc(self._put_stream(key, data, exclusive), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc, key) from None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted (the server leaves out what the token may not see)."""
        out: list[ObjectInfo] = []
        try:
            for reply in self._stub.List(self._pb.ListRequest(prefix=prefix), metadata=self._metadata):
                out.extend(ObjectInfo(o.key, o.size) for o in reply.objects)
        except grpc.RpcError as exc:
            raise self._error(exc, prefix) from None
        return out

    def delete(self, key: str) -> None:
        """Remove an object (the server lets only admins)."""
        self._unary(self._stub.Delete, self._pb.KeyRequest(key=check_key(key)), key)

    # -- optional capabilities (sync.storage.base.ChunkQueries) -------------------
    def missing_chunks(self, chunk_ids: list[str]) -> list[str]:
        """The chunk ids (in the order given) that no indexed pack of the server holds."""
        missing: list[str] = []
        for i in range(0, len(chunk_ids), ID_BATCH):
            batch = [bytes.fromhex(c) for c in chunk_ids[i:i + ID_BATCH]]
            reply = self._unary(self._stub.MissingChunks, self._pb.ChunkIds(ids=batch), "MissingChunks")
            missing.extend(c.hex() for c in reply.ids)
        return missing

    def locate_chunks(self, chunk_ids: list[str]) -> tuple[dict, dict]:
        """({chunk id: RemoteChunk}, {pack id: RemotePack}) for the chunks the server holds."""
        from catalog.remotes import RemoteChunk, RemotePack

        chunks: dict[str, RemoteChunk] = {}
        packs: dict[str, RemotePack] = {}
        for i in range(0, len(chunk_ids), ID_BATCH):
            batch = [bytes.fromhex(c) for c in chunk_ids[i:i + ID_BATCH]]
            reply = self._unary(self._stub.LocateChunks, self._pb.ChunkIds(ids=batch), "LocateChunks")
            for c in reply.chunks:
                chunks[c.chunk_id.hex()] = RemoteChunk(c.chunk_id.hex(), c.pack_id.hex(), c.offset, c.length,
                                                       c.raw_length, c.codec)
            for p in reply.packs:
                packs[p.pack_id.hex()] = RemotePack(p.pack_id.hex(), p.size, p.chunk_count)
        return chunks, packs

    def whoami(self) -> dict:
        """The token's name, role and title patterns, as the server sees them."""
        reply = self._unary(self._stub.WhoAmI, self._pb.Empty(), "WhoAmI")
        return {"name": reply.name, "role": reply.role, "titles": list(reply.titles)}

    # -- helpers ------------------------------------------------------------------
    def _unary(self, rpc, request, key: str):
        try:
            return rpc(request, metadata=self._metadata, timeout=UNARY_TIMEOUT)
        except grpc.RpcError as exc:
            raise self._error(exc, key) from None

    def _read(self, key: str, start: int | None, end: int | None) -> Iterator[bytes]:
        request = self._pb.ReadRequest(key=check_key(key))
        if start is not None:
            request.start = start
        if end is not None:
            request.end = end
        try:
            for reply in self._stub.Read(request, metadata=self._metadata):
                yield reply.data
        except grpc.RpcError as exc:
            raise self._error(exc, key) from None

    def _put_stream(self, key: str, data: Payload, exclusive: bool) -> Iterator:
        size = data.size() if isinstance(data, LocalFile) else len(data)
        yield self._pb.PutRequest(header=self._pb.PutHeader(key=key, exclusive=exclusive, size=size))
        for piece in _pieces(data):
            yield self._pb.PutRequest(data=piece)

    def _error(self, exc: grpc.RpcError, key: str) -> SyncError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.NOT_FOUND:
            return ObjectNotFound(f"remote {self.label}: not found: {key}")
        if code == grpc.StatusCode.ALREADY_EXISTS:
            return ObjectExists(f"remote {self.label}: {key} already exists")
        if code in _TRANSIENT:
            return TransientError(f"remote {self.label} ({self.url}): {details or code.name.lower()}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return RejectedCredentials(f"remote {self.label}: {details}; run 'ws login {self.label}' or set WS_TOKEN")
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return RejectedCredentials(f"remote {self.label}: permission denied ({details})")
        return SyncError(f"remote {self.label}: {details or code.name.lower()}")


def _pieces(data: Payload) -> Iterable[bytes]:
    if isinstance(data, LocalFile):
        with data.open() as f:
            while True:
                piece = f.read(PIECE)
                if not piece:
                    return
                yield piece
    else:
        view = memoryview(data)
        for i in range(0, len(view), PIECE):
            yield bytes(view[i:i + PIECE])
