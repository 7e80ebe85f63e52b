"""A server root on disk: the remote format of docs/format.md, checked on every write.

The root is an ordinary folder remote (a client may also use it as one), plus
``.ws-server/`` for the server's own files (tokens, the chunk index, uploads in
progress), which is never served or listed. What a client sends is checked
against the layout before anyone can see it:

- ``packs/<aa>/<id>``: streamed into ``.ws-server/tmp/``, fsynced, verified
  whole by the one pack verifier (``packs.check_pack``: headers, every chunk's
  SHA-256, the footer index, the pack id), then renamed into place and its
  index written next to it. A cut-off or damaged upload leaves nothing visible.
- ``index/<id>``: must hash to ``id`` and be the footer index of the pack there.
- ``releases/<title>/<version>.json``: a record for that title and version whose
  every chunk is in an indexed pack of this root (the format's promise).
- ``ws-remote.json``: JSON whose ``format`` this ws reads.

Other keys (outside the layout) are stored as they come; the service lets
only admins write them. No method here knows about tokens or roles.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from typing import Iterable, Iterator

from catalog.server_chunks import ChunkRow, PackRow, ServerChunkIndex
from sync.errors import SyncError
from sync.remote import FORMAT, MARKER, decode_record, index_bytes, pack_size_from_index
from sync.server.tokens import STATE_DIR
from workspace.objects import packs
from workspace.objects.packs import fsync_dir

PIECE = 1 << 20  # bytes per streamed message
MAX_PACK = 2 << 30  # ws packs are ~32 MiB; refuse anything absurd before writing it
_RACY_NS = 1_000_000_000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TITLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


class ServerRefusal(SyncError):
    """The ws server refused a request; ``code`` names the gRPC status the client gets (server side only)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def refuse(code: str, message: str) -> ServerRefusal:
    """A refusal with gRPC status ``code`` (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT, ...)."""
    return ServerRefusal(code, message)


class Key:
    """A checked key and what it is: pack, index, release, marker or other."""

    def __init__(self, key: str):
        parts = key.split("/")
        # as sync.storage.base.check_key (not imported: the storage backends import this package's messages)
        if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
            raise refuse("INVALID_ARGUMENT", f"invalid key {key!r}")
        if any(p.startswith(".") for p in parts):
            raise refuse("INVALID_ARGUMENT", f"key {key!r} is not served (names starting with '.' are hidden)")
        self.key, self.parts = key, parts
        self.kind, self.id, self.title, self.version = "other", "", "", ""
        top = parts[0]
        if top == "packs":
            if len(parts) != 3 or not _HEX64.match(parts[2]) or parts[1] != parts[2][:2]:
                raise refuse("INVALID_ARGUMENT", f"{key!r} is not a pack key (packs/<aa>/<64 hex digits>)")
            self.kind, self.id = "pack", parts[2]
        elif top == "index":
            if len(parts) != 2 or not _HEX64.match(parts[1]):
                raise refuse("INVALID_ARGUMENT", f"{key!r} is not an index key (index/<64 hex digits>)")
            self.kind, self.id = "index", parts[1]
        elif top == "releases":
            if len(parts) != 3 or not parts[2].endswith(".json") or not _TITLE.match(parts[1]) \
                    or not _VERSION.match(parts[2][:-5]):
                raise refuse("INVALID_ARGUMENT", f"{key!r} is not a release key (releases/<title>/<version>.json)")
            self.kind, self.title, self.version = "release", parts[1], parts[2][:-5]
        elif key == MARKER:
            self.kind = "marker"


class ServerRoot:
    """The files of one server root; safe to use from many threads."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.abspath(os.fspath(root))
        self.state = os.path.join(self.root, STATE_DIR)
        self.tmp = os.path.join(self.state, "tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)  # uploads cut off before a restart: never visible
        os.makedirs(self.tmp, exist_ok=True)
        os.chmod(self.state, 0o700)
        self.chunks = ServerChunkIndex(os.path.join(self.state, "chunks.db"))
        self._refresh_lock = threading.Lock()
        self._index_stamp: int | None = None
        self.refresh()

    def close(self) -> None:
        """Close the chunk index."""
        self.chunks.close()

    def path(self, key: Key) -> str:
        """Where a key's object is on disk."""
        return os.path.join(self.root, *key.parts)

    # -- reading ---------------------------------------------------------------
    def stat(self, key: Key) -> int | None:
        """Size of an object, or None."""
        try:
            st = os.stat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if os.path.isfile(self.path(key)) else None

    def read(self, key: Key, start: int | None, end: int | None) -> Iterator[bytes]:
        """The object's bytes ``[start, end)`` in pieces; NOT_FOUND, or OUT_OF_RANGE past its end."""
        try:
            f = open(self.path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise refuse("NOT_FOUND", f"no object {key.key}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            lo = start or 0
            hi = size if end is None else end
            if lo < 0 or hi < lo or hi > size:
                raise refuse("OUT_OF_RANGE", f"range {lo}-{hi} is outside {key.key} ({size} bytes)")
            f.seek(lo)
            left = hi - lo
            while left > 0:
                piece = f.read(min(PIECE, left))
                if not piece:
                    raise refuse("INTERNAL", f"{key.key} ended early")
                left -= len(piece)
                yield piece

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every visible object under ``prefix``, sorted."""
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if base and any(p.startswith(".") or p in ("", "..") for p in base.split("/")):
            return []
        top = os.path.join(self.root, *base.split("/")) if base else self.root
        out = []
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = os.path.relpath(folder, self.root)
            for name in files:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    try:
                        out.append((key, os.path.getsize(os.path.join(folder, name))))
                    except FileNotFoundError:
                        continue
        return sorted(out)

    # -- chunks ----------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Bring the chunk index up to ``index/`` when the folder changed (new or removed indexes).

        A change is seen by the folder's mtime; like git's "racy" rule, a stamp
        younger than a second is not trusted (two changes within one clock
        tick leave the same mtime), so the next call lists the folder again.
        """
        folder = os.path.join(self.root, "index")
        try:
            stamp = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        with self._refresh_lock:
            if stamp == self._index_stamp and not force:
                return
            names = {n for n in (os.listdir(folder) if stamp else []) if _HEX64.match(n)}
            listed = {bytes.fromhex(n) for n in names}
            known = self.chunks.pack_ids()
            self.chunks.remove_packs(known - listed)
            for pack_id in sorted(listed - known):
                try:
                    with open(os.path.join(folder, pack_id.hex()), "rb") as f:
                        raw = f.read()
                except FileNotFoundError:
                    continue
                if hashlib.sha256(raw).digest() == pack_id and len(raw) % packs.INDEX.size == 0:
                    self._remember(pack_id, packs.parse_index(raw, len(raw) // packs.INDEX.size))
            self._index_stamp = stamp if time.time_ns() - stamp > _RACY_NS else None

    def _remember(self, pack_id: bytes, entries: list[packs.PackEntry]) -> None:
        rows = [ChunkRow(bytes.fromhex(e.id), pack_id, e.offset, e.length, e.raw_length, e.codec) for e in entries]
        self.chunks.add_pack(pack_id, pack_size_from_index(entries), rows)

    def _found(self, chunk_ids: list[bytes]) -> dict[bytes, ChunkRow]:
        self.refresh()  # one stat when index/ did not change
        found = self.chunks.locate(chunk_ids)
        if len(found) < len(set(chunk_ids)):
            self.refresh(force=True)  # an index may have come within the last clock tick
            found = self.chunks.locate(chunk_ids)
        return found

    def missing(self, chunk_ids: list[bytes]) -> list[bytes]:
        """The ids (in the order given) of chunks no indexed pack of this root holds."""
        found = self._found(chunk_ids)
        return [c for c in chunk_ids if c not in found]

    def locate(self, chunk_ids: list[bytes]) -> tuple[dict[bytes, ChunkRow], dict[bytes, PackRow]]:
        """Where the known chunks are, and the size and chunk count of their packs."""
        found = self._found(chunk_ids)
        return found, self.chunks.packs(r.pack_id for r in found.values())

    # -- writing ---------------------------------------------------------------
    def _receive(self, pieces: Iterable[bytes], size: int, limit: int, on_piece=None) -> str:
        """Stream pieces into a new fsynced temporary file of exactly ``size`` bytes; returns its path.

        ``on_piece(piece)`` sees each piece as it is written (a pack is verified on the way in)."""
        if size > limit:
            raise refuse("INVALID_ARGUMENT", f"{size} bytes is more than this server takes in one object ({limit})")
        tmp = os.path.join(self.tmp, uuid.uuid4().hex)
        got = 0
        try:
            with open(tmp, "wb") as f:
                for piece in pieces:
                    got += len(piece)
                    if got > size:
                        raise refuse("INVALID_ARGUMENT", f"more bytes than the {size} announced")
                    f.write(piece)
                    if on_piece is not None:
                        on_piece(piece)
                if got != size:  # a stream that ended early (the client went away)
                    raise refuse("INVALID_ARGUMENT", f"upload cut off after {got} of {size} bytes")
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _install(self, tmp: str, key: Key, exclusive: bool) -> None:
        """Make a finished temporary file the object ``key`` (create-only with ``exclusive``)."""
        final = self.path(key)
        folder = os.path.dirname(final)
        try:
            os.makedirs(folder, exist_ok=True)
            if exclusive:
                try:
                    os.link(tmp, final)  # fails when the key exists: create-only, atomically
                except FileExistsError:
                    raise refuse("ALREADY_EXISTS", f"{key.key} already exists") from None
            else:
                os.replace(tmp, final)
            fsync_dir(folder)
        finally:
            _unlink(tmp)

    def put_object(self, key: Key, pieces: Iterable[bytes], size: int, exclusive: bool) -> None:
        """ws-remote.json (checked) or a key outside the layout."""
        if key.kind not in ("marker", "other"):
            raise refuse("INVALID_ARGUMENT", f"{key.key} is part of the remote format: it has its own RPC")
        tmp = self._receive(pieces, size, MAX_PACK)
        if key.kind == "marker":
            try:
                with open(tmp, "rb") as f:
                    _check_marker(f.read(1 << 20))
            except BaseException:
                _unlink(tmp)
                raise
        self._install(tmp, key, exclusive)

    def upload_pack(self, key: Key, pieces: Iterable[bytes], size: int) -> int:
        """Receive, verify and publish a pack and its index; returns the number of chunks."""
        if key.kind != "pack":
            raise refuse("INVALID_ARGUMENT", f"{key.key} is not a pack key")
        stream = packs.PackStream(size, key.id)  # verified as it arrives: no second read, hashing overlaps the wait
        tmp = self._receive(pieces, size, MAX_PACK, stream.feed)
        try:
            if stream.finish():
                entries = stream.entries
            else:  # refused: check_pack, the one verifier that explains, says why
                with open(tmp, "rb") as f:
                    check = packs.check_pack(f, key.id)
                if not check.ok:
                    more = f" (and {len(check.problems) - 1} more)" if len(check.problems) > 1 else ""
                    raise refuse("INVALID_ARGUMENT", f"pack {key.id[:12]} fails verification: "
                                                     f"{check.problems[0]}{more}; nothing was stored")
                entries = check.entries  # (the two check the same things: the explaining verifier decides)
        except BaseException:
            _unlink(tmp)
            raise
        if os.path.isfile(self.path(key)):
            _unlink(tmp)  # the same id: the same index, so the same chunks at the same offsets
        else:
            self._install(tmp, key, exclusive=False)
        self._write_index(key.id, index_bytes(entries))
        self._remember(bytes.fromhex(key.id), entries)
        return len(entries)

    def put_index(self, key: Key, data: bytes, exclusive: bool) -> None:
        """A pack's index: must hash to its id and be the footer of the pack already uploaded."""
        if key.kind != "index":
            raise refuse("INVALID_ARGUMENT", f"{key.key} is not an index key")
        if hashlib.sha256(data).hexdigest() != key.id or len(data) % packs.INDEX.size:
            raise refuse("INVALID_ARGUMENT", f"{key.key}: the bytes do not hash to the pack id")
        pack = os.path.join(self.root, "packs", key.id[:2], key.id)
        try:
            footer = index_bytes(packs.read_index(pack))  # the pack's footer, as its records
        except FileNotFoundError:
            raise refuse("FAILED_PRECONDITION", f"{key.key}: upload pack {key.id[:12]} first") from None
        except packs.PackError as exc:
            raise refuse("FAILED_PRECONDITION", f"{key.key}: the pack on the server is damaged ({exc})") from None
        if footer != data:
            raise refuse("INVALID_ARGUMENT", f"{key.key} is not the index of pack {key.id[:12]}")
        if exclusive and os.path.exists(self.path(key)):
            raise refuse("ALREADY_EXISTS", f"{key.key} already exists")
        self._write_index(key.id, data)
        self._remember(bytes.fromhex(key.id), packs.parse_index(data, len(data) // packs.INDEX.size))

    def _write_index(self, pack_id: str, data: bytes) -> None:
        key = Key(f"index/{pack_id}")
        if os.path.isfile(self.path(key)):
            return  # an index verifies itself against its name: the one there is this one
        tmp = os.path.join(self.tmp, uuid.uuid4().hex)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            self._install(tmp, key, exclusive=True)
        except ServerRefusal:
            pass  # another upload of the same pack wrote it first

    def put_release(self, key: Key, data: bytes, exclusive: bool) -> None:
        """A release record for its key whose every chunk is on this root."""
        if key.kind != "release":
            raise refuse("INVALID_ARGUMENT", f"{key.key} is not a release key")
        chunk_ids = _record_chunks(key, data)
        lacking = self.missing(chunk_ids)
        if lacking:
            raise refuse("FAILED_PRECONDITION", f"release {key.title}@{key.version} names {len(lacking)} chunk(s) "
                                                f"this server does not hold (first {lacking[0].hex()[:12]}); "
                                                "upload their packs first")
        tmp = os.path.join(self.tmp, uuid.uuid4().hex)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._install(tmp, key, exclusive)

    def delete(self, key: Key) -> None:
        """Remove an object; a pack's index goes first, so no index ever names a missing pack."""
        if key.kind == "pack":
            self.delete(Key(f"index/{key.id}"))
        path = self.path(key)
        try:
            if os.path.isfile(path):
                os.unlink(path)
                fsync_dir(os.path.dirname(path))
        except FileNotFoundError:
            pass
        if key.kind == "index":
            self.chunks.remove_packs([bytes.fromhex(key.id)])


def _check_marker(raw: bytes) -> None:
    try:
        fmt = json.loads(raw)["format"]
    except (ValueError, KeyError, TypeError):
        raise refuse("INVALID_ARGUMENT", f"{MARKER} must be a JSON object with an integer 'format'") from None
    if not isinstance(fmt, int) or fmt < 1 or fmt > FORMAT:
        raise refuse("INVALID_ARGUMENT", f"{MARKER}: format {fmt!r} is not one this server stores (1..{FORMAT})")


def _record_chunks(key: Key, data: bytes) -> list[bytes]:
    """The distinct chunk ids a release record names, after checking it is the record for its key."""
    try:
        record = decode_record(data)
    except ValueError as exc:
        raise refuse("INVALID_ARGUMENT", f"{key.key} is not a release record: {exc}") from None
    if not isinstance(record, dict) or record.get("title") != key.title or record.get("version") != key.version:
        raise refuse("INVALID_ARGUMENT", f"{key.key} must hold the record of {key.title}@{key.version}")
    files = record.get("files")
    if not isinstance(files, list):
        raise refuse("INVALID_ARGUMENT", f"{key.key}: 'files' must be a list")
    order: dict[bytes, None] = {}
    for f in files:
        chunks = f.get("chunks") if isinstance(f, dict) else None
        if not isinstance(chunks, list) or not all(isinstance(c, str) and _HEX64.match(c) for c in chunks):
            raise refuse("INVALID_ARGUMENT", f"{key.key}: every file needs a list of chunk ids")
        for c in chunks:
            order.setdefault(bytes.fromhex(c), None)
    return list(order)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
