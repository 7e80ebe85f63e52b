"""The gRPC service of ws.proto: authenticate, authorize, call the root, log one line.

Every RPC starts the same way (:meth:`RemoteService._call`): the token from
the ``authorization`` metadata is looked up (UNAUTHENTICATED without a valid
one), the RPC's role is required of it (PERMISSION_DENIED, with "role reader
cannot push"-style text), release keys are checked against the token's title
patterns, and at the end one log line names the token's name (never the
token), the RPC, the key, the status, the bytes moved and the time taken.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Iterable, Iterator

import grpc

from catalog.errors import CatalogError
from sync.errors import SyncError
from sync.server import ws_pb2, ws_pb2_grpc
from sync.server.store import Key, ServerRefusal, ServerRoot, refuse
from sync.server.tokens import Principal, TokenStore

MAX_IDS = 100_000  # chunk ids per MissingChunks / LocateChunks call
MAX_INDEX = 64 << 20  # a 2 GiB pack of 40-byte chunks; a 32 MiB ws pack's index is at most ~30 MiB
MAX_RECORD = 256 << 20  # a release record as stored (zstd-compressed when large)
_VERBS = {"reader": "read", "writer": "push", "admin": "administer this server"}


class Call:
    """One request being served: who sent it, and what to log about it."""

    def __init__(self, rpc: str, key: str):
        self.rpc = rpc
        self.key = key
        self.principal: Principal | None = None
        self.nbytes = 0

    def require(self, role: str, what: str | None = None) -> None:
        """PERMISSION_DENIED unless the token's role includes ``role``."""
        p = self.principal
        if not p.at_least(role):
            raise refuse("PERMISSION_DENIED", f"role {p.role} cannot {what or _VERBS[role]}")

    def require_title(self, key: Key) -> None:
        """PERMISSION_DENIED when a release key's title is outside the token's patterns."""
        if key.kind == "release" and not self.principal.may_see_title(key.title):
            raise refuse("PERMISSION_DENIED", f"token {self.principal.name} is limited to releases "
                                              f"{', '.join(self.principal.titles)}; {key.title} is not one")


class RemoteService(ws_pb2_grpc.RemoteServicer):
    """The Remote service over one server root."""

    def __init__(self, root: ServerRoot, tokens: TokenStore, log: logging.Logger, transfers: int = 8):
        self.root = root
        self.tokens = tokens
        self.log = log
        # at most this many object bodies move at once; the others wait their turn (memory stays bounded
        # however many clients push or pull, while small requests keep being answered on other threads)
        self._transfers = threading.BoundedSemaphore(transfers)

    @contextmanager
    def _transfer(self) -> Iterator[None]:
        with self._transfers:
            yield

    @contextmanager
    def _call(self, context, rpc: str, key: str = "") -> Iterator[Call]:
        call = Call(rpc, key)
        start = time.perf_counter()
        status, error = "UNKNOWN", ""
        try:
            token = _bearer(context.invocation_metadata())
            call.principal = self.tokens.authenticate(token)
            if call.principal is None:
                why = "no token given" if not token else "unknown or revoked token"
                raise refuse("UNAUTHENTICATED", why)
            yield call
            status = "OK"
        except ServerRefusal as exc:
            status, error = exc.code, str(exc)
            context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
        except grpc.RpcError:  # the client went away mid-stream
            status = "CANCELLED"
            raise
        except GeneratorExit:  # a streamed reply the client stopped reading
            status = "CANCELLED"
            raise
        except (SyncError, CatalogError, OSError) as exc:
            status, error = "INTERNAL", f"{type(exc).__name__}: {exc}"
            context.abort(grpc.StatusCode.INTERNAL, f"server error: {exc}")
        finally:
            name = call.principal.name if call.principal else "-"
            role = call.principal.role if call.principal else "-"
            self.log.info("rpc=%s token=%s role=%s key=%s status=%s bytes=%d ms=%.1f peer=%s%s", rpc, name, role,
                          call.key or "-", status, call.nbytes, 1000 * (time.perf_counter() - start),
                          context.peer(), f' error="{error}"' if error else "")

    # -- the storage protocol ---------------------------------------------------
    def Stat(self, request, context):
        """Size of an object (reader)."""
        with self._call(context, "Stat", request.key) as call:
            call.require("reader")
            key = Key(request.key)
            call.require_title(key)
            size = self.root.stat(key)
            return ws_pb2.StatReply(exists=size is not None, size=size or 0)

    def Read(self, request, context):
        """A whole object or a byte range, streamed (reader)."""
        with self._call(context, "Read", request.key) as call:
            call.require("reader")
            key = Key(request.key)
            call.require_title(key)
            start = request.start if request.HasField("start") else None
            end = request.end if request.HasField("end") else None
            with self._transfer() if key.kind == "pack" else nullcontext():
                for piece in self.root.read(key, start, end):
                    call.nbytes += len(piece)
                    yield ws_pb2.Data(data=piece)

    def List(self, request, context):
        """Visible objects under a prefix, sorted, in batches (reader; other titles left out)."""
        with self._call(context, "List", request.prefix) as call:
            call.require("reader")
            batch = []
            for key, size in self.root.list(request.prefix):
                parts = key.split("/")
                if parts[0] == "releases" and len(parts) == 3 and not call.principal.may_see_title(parts[1]):
                    continue
                batch.append(ws_pb2.ObjectInfo(key=key, size=size))
                if len(batch) == 2000:
                    yield ws_pb2.ListReply(objects=batch)
                    batch = []
            yield ws_pb2.ListReply(objects=batch)

    def Delete(self, request, context):
        """Remove an object (admin)."""
        with self._call(context, "Delete", request.key) as call:
            call.require("admin", "delete")
            key = Key(request.key)
            call.require_title(key)
            self.root.delete(key)
            return ws_pb2.Empty()

    def PutObject(self, request_iterator, context):
        """ws-remote.json (writer, create-only) or a key outside the layout (admin)."""
        with self._call(context, "PutObject") as call:
            header = _header(request_iterator, call)
            key = Key(header.key)
            if key.kind == "marker":
                call.require("writer")
                if not header.exclusive and self.root.stat(key) is not None:
                    call.require("admin", "overwrite ws-remote.json")
            else:
                call.require("admin", "write keys outside the remote format")
            with self._transfer():
                self.root.put_object(key, _pieces(request_iterator, call), header.size, header.exclusive)
            return ws_pb2.Empty()

    # -- the remote format ------------------------------------------------------
    def UploadPack(self, request_iterator, context):
        """A pack, streamed and verified before it becomes visible (writer)."""
        with self._call(context, "UploadPack") as call:
            header = _header(request_iterator, call)
            call.require("writer")
            key = Key(header.key)
            with self._transfer():
                self.root.upload_pack(key, _pieces(request_iterator, call), header.size)
            return ws_pb2.Empty()

    def PutIndex(self, request_iterator, context):
        """A pack's index, checked against the pack (writer)."""
        with self._call(context, "PutIndex") as call:
            header = _header(request_iterator, call)
            call.require("writer")
            key = Key(header.key)
            with self._transfer():
                self.root.put_index(key, _small(request_iterator, call, header, MAX_INDEX), header.exclusive)
            return ws_pb2.Empty()

    def PutRelease(self, request_iterator, context):
        """A release record: create-only for writers, admin may overwrite (writer, title patterns)."""
        with self._call(context, "PutRelease") as call:
            header = _header(request_iterator, call)
            call.require("writer")
            key = Key(header.key)
            call.require_title(key)
            overwrite = not header.exclusive and call.principal.at_least("admin")
            try:
                with self._transfer():
                    self.root.put_release(key, _small(request_iterator, call, header, MAX_RECORD),
                                          exclusive=not overwrite)
            except ServerRefusal as exc:
                if exc.code == "ALREADY_EXISTS" and not header.exclusive:
                    call.require("admin", f"overwrite a published release ({key.title}@{key.version})")
                raise
            return ws_pb2.Empty()

    def MissingChunks(self, request, context):
        """Which of these chunk ids the server lacks (reader)."""
        with self._call(context, "MissingChunks", f"{len(request.ids)} ids") as call:
            call.require("reader")
            ids = _ids(request.ids)
            return ws_pb2.ChunkIds(ids=self.root.missing(ids))

    def LocateChunks(self, request, context):
        """Where these chunks are (reader)."""
        with self._call(context, "LocateChunks", f"{len(request.ids)} ids") as call:
            call.require("reader")
            found, packs = self.root.locate(_ids(request.ids))
            return ws_pb2.Locations(
                chunks=[ws_pb2.ChunkLocation(chunk_id=r.chunk_id, pack_id=r.pack_id, offset=r.offset, length=r.length,
                                             raw_length=r.raw_length, codec=r.codec) for r in found.values()],
                packs=[ws_pb2.PackInfo(pack_id=p.pack_id, size=p.size, chunk_count=p.chunk_count)
                       for p in packs.values()])

    def WhoAmI(self, request, context):
        """The token's name, role and title patterns (any valid token)."""
        with self._call(context, "WhoAmI") as call:
            call.require("reader")
            p = call.principal
            return ws_pb2.Identity(name=p.name, role=p.role, titles=list(p.titles))


def _bearer(metadata) -> str | None:
    for item in metadata or ():
        if item.key == "authorization":
            value = item.value if isinstance(item.value, str) else item.value.decode("utf-8", "replace")
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _header(request_iterator, call: Call):
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("part") != "header":
        raise refuse("INVALID_ARGUMENT", "a put stream starts with a header")
    call.key = first.header.key
    return first.header


def _pieces(request_iterator, call: Call) -> Iterable[bytes]:
    for msg in request_iterator:
        if msg.WhichOneof("part") != "data":
            raise refuse("INVALID_ARGUMENT", "only data may follow the header")
        call.nbytes += len(msg.data)
        yield msg.data


def _small(request_iterator, call: Call, header, limit: int) -> bytes:
    """The whole (bounded) body of a put stream, for objects checked in memory (indexes, records)."""
    if header.size > limit:
        raise refuse("INVALID_ARGUMENT", f"{header.key}: {header.size} bytes is more than this server takes ({limit})")
    data = bytearray()
    for piece in _pieces(request_iterator, call):
        data += piece
        if len(data) > header.size:
            raise refuse("INVALID_ARGUMENT", f"more bytes than the {header.size} announced")
    if len(data) != header.size:
        raise refuse("INVALID_ARGUMENT", f"upload cut off after {len(data)} of {header.size} bytes")
    return bytes(data)


def _ids(raw) -> list[bytes]:
    if len(raw) > MAX_IDS:
        raise refuse("INVALID_ARGUMENT", f"at most {MAX_IDS} chunk ids per call")
    if any(len(i) != 32 for i in raw):
        raise refuse("INVALID_ARGUMENT", "chunk ids are 32 bytes each")
    return list(raw)
