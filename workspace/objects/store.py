"""The local chunk store: pack files under ``.ws/objects/packs/<aa>/<id>.pack``.

Writing goes through :class:`StoreWriter`, which rolls packs at about 32 MiB and
returns the catalog rows to record *after* the packs are durable. Reading
verifies every chunk's SHA-256 before the bytes go anywhere.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Iterator

from catalog import objects as q
from catalog.db import Catalog
from workspace.objects import packs
from workspace.errors import DamagedObjectError, reporting_no_space, no_space_cause
from workspace.layout import tree_temp_name
from workspace.objects.chunking import Chunker, Digest, Piece
from workspace.objects.names import MAX_LINK_TARGET, require_symlinks
from workspace.types import LINK_MODE

_COPY_RANGE = hasattr(os, "copy_file_range")  # Linux; off for good after the first refusal
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}


def _create_exclusive(path: str, folder: str) -> int:
    """A new file at ``path`` (never through a link standing there), its folder made when missing.

    A leftover under the same name (a killed writer with our pid and thread id) is replaced.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        os.unlink(path)
    return os.open(path, flags, 0o666)


_WRITE_BACK_FROM = 1 << 20  # files this big start their write-back as soon as they are staged


def _start_write_back(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages now, without waiting for them.

    ``POSIX_FADV_DONTNEED`` starts write-back of dirty pages on Linux (and drops
    only pages already clean); elsewhere, or where refused, nothing happens.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        try:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _pwrite_all(fd: int, data, pos: int) -> None:
    """Write all of ``data`` at ``pos`` (a write may be short)."""
    view = memoryview(data)
    while len(view):
        n = os.pwrite(fd, view, pos)
        view = view[n:]
        pos += n


class DamagedObject(DamagedObjectError):
    """A chunk or pack failed verification (exit 6); ``path`` names what was damaged."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class _PackFd:
    """A cached pack descriptor and how many reads are using it right now."""

    __slots__ = ("fd", "users", "evicted")

    def __init__(self, fd: int):
        self.fd, self.users, self.evicted = fd, 0, False


def _open_pack_budget() -> int:
    """How many pack descriptors to keep open: a quarter of the soft RLIMIT_NOFILE, 8 to 256.

    The rest stays free for the files being written, SQLite, sockets, and
    the descriptors in use by readers on other threads (at most one each).
    """
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(8, min(256, soft // 4))


class ObjectStore:
    """Packs on disk plus their locations in the catalog."""

    def __init__(self, root: str | os.PathLike, catalog: Catalog):
        self.root = os.fspath(root)
        self.catalog = catalog
        self.packs_dir = os.path.join(self.root, "packs")
        # an LRU of open pack descriptors, bounded: a restore may touch thousands of packs
        self._fds: OrderedDict[str, _PackFd] = OrderedDict()
        self._lock = threading.Lock()
        self.max_open_packs = _open_pack_budget()

    def pack_path(self, pack_id: str) -> str:
        """Final location of a pack."""
        return os.path.join(self.packs_dir, pack_id[:2], pack_id + ".pack")

    def list_pack_files(self) -> list[str]:
        """Paths of every sealed pack on disk."""
        return sorted(glob.glob(os.path.join(self.packs_dir, "??", "*.pack")))

    def list_temp_files(self) -> list[str]:
        """Unfinished packs left by an interrupted writer."""
        return sorted(glob.glob(os.path.join(self.packs_dir, "tmp-*.pack")))

    def writer(self) -> "StoreWriter":
        """A writer for new chunks (use as a context manager)."""
        return StoreWriter(self)

    # -- reading ----------------------------------------------------------
    def _acquire(self, pack_id: str) -> "_PackFd":
        """An open descriptor of a pack, held until :meth:`_release` (so no one closes it meanwhile)."""
        with self._lock:
            h = self._fds.get(pack_id)
            if h is not None:
                self._fds.move_to_end(pack_id)
            else:
                while len(self._fds) >= self.max_open_packs:
                    self._evict(self._fds.popitem(last=False)[1])
                try:
                    fd = os.open(self.pack_path(pack_id), os.O_RDONLY)
                except FileNotFoundError as exc:
                    raise DamagedObject(f"pack {pack_id} is missing", self.pack_path(pack_id)) from exc
                h = self._fds[pack_id] = _PackFd(fd)
            h.users += 1
            return h

    def _release(self, h: "_PackFd") -> None:
        with self._lock:
            h.users -= 1
            if h.evicted and not h.users:
                os.close(h.fd)

    @staticmethod
    def _evict(h: "_PackFd") -> None:
        """Close a descriptor that left the cache now, or when its last reader is done (lock held)."""
        h.evicted = True
        if not h.users:
            os.close(h.fd)

    def close(self) -> None:
        """Close cached pack descriptors (those being read are closed when their reads finish)."""
        with self._lock:
            for h in self._fds.values():
                self._evict(h)
            self._fds.clear()

    def read_stored(self, loc: q.ChunkLocation) -> bytes:
        """A chunk's stored (maybe compressed) bytes, unverified."""
        h = self._acquire(loc.pack_id)
        try:
            data = os.pread(h.fd, loc.length, loc.offset)
        finally:
            self._release(h)
        if len(data) != loc.length:
            raise DamagedObject(f"pack {loc.pack_id} is truncated", self.pack_path(loc.pack_id))
        return data

    def read_chunk(self, loc: q.ChunkLocation) -> bytes:
        """A chunk's raw bytes, verified against its id."""
        try:
            return bytes(packs.verified_chunk(loc.id, loc.codec, self.read_stored(loc), loc.raw_length))
        except packs.PackError as exc:
            raise DamagedObject(f"chunk {loc.id[:12]} in pack {loc.pack_id[:12]} is damaged",
                                self.pack_path(loc.pack_id)) from exc

    def iter_file(self, info: q.FileInfo) -> Iterator[bytes]:
        """A file's content chunk by chunk, each verified."""
        locs = q.chunk_locations(self.catalog, info.chunk_ids)
        for cid in info.chunk_ids:
            loc = locs.get(cid)
            if loc is None:
                raise DamagedObject(f"chunk {cid[:12]} of file {info.id[:12]} is missing from the store")
            yield self.read_chunk(loc)

    def write_file_to(self, info: q.FileInfo, dest: str, mode: int | None = None) -> None:
        """Materialize a file at ``dest``: staged under a temporary name, verified, then renamed."""
        tmp = self.stage_file(info, dest, mode)
        try:
            if os.path.isdir(dest) and not os.path.islink(dest):
                raise IsADirectoryError(dest)
            with reporting_no_space(os.path.dirname(dest) or "."):
                os.replace(tmp, dest)  # a folder that must grow can need a block even for a rename
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- helpers for pull/clone (sync) ------------------------------------------
    def stage_file(self, info: q.FileInfo, dest: str, mode: int | None = None, locs: dict | None = None,
                   chunks_verified: bool = False, write_back: bool = False) -> str:
        """Write a file's content next to ``dest`` under a temporary name, checked; returns that name.

        A caller that renames every staged file only after all succeeded never
        puts a damaged byte under a real name. What is checked (see
        docs/local-format.md, "What is verified when"): the whole file's SHA-256
        against its id, which covers every byte of every chunk and the pairing
        of the file id with its chunk list. With ``chunks_verified`` (pull: each
        chunk was verified as it entered the store) a file whose one chunk *is*
        the file (chunk id == file id) is not hashed a second time; any other
        file still is, since a remote record could pair a file id with sound
        but wrong chunks. ``locs`` may give chunk locations to save queries.
        ``write_back`` (a caller that syncs the file system at the end: pull,
        clone) starts writing a big file to the disk as soon as it is staged,
        so the final sync has less left to wait for.

        With ``mode`` LINK_MODE the content is a symbolic link's target text and
        the temporary name becomes that link (``os.symlink``): what it points to
        is never read or written. The temporary name is created exclusively, so
        nothing is ever written through a link that happens to stand there.
        """
        folder = os.path.dirname(dest) or "."
        tmp = os.path.join(folder, tree_temp_name(os.path.basename(dest), str(threading.get_ident())))
        locs = locs if locs is not None else q.chunk_locations(self.catalog, info.chunk_ids)
        if mode == LINK_MODE:
            with reporting_no_space(folder):
                os.makedirs(folder, exist_ok=True)
                return self._stage_link(info, dest, tmp, locs)
        whole = None if chunks_verified and info.chunk_ids == [info.id] else hashlib.sha256()
        with reporting_no_space(folder):  # a full disk: the partial file is removed, NoSpace names the folder
            fd = _create_exclusive(tmp, folder)
            try:
                try:
                    self._write_chunks(info, fd, locs, whole)
                    if whole is not None and whole.hexdigest() != info.id:
                        raise DamagedObject(f"file {info.id[:12]} does not match its SHA-256")
                    if mode is not None:
                        os.fchmod(fd, mode)
                    if write_back and info.size >= _WRITE_BACK_FROM:
                        _start_write_back(fd)
                finally:
                    os.close(fd)
                return tmp
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def _write_chunks(self, info: q.FileInfo, fd: int, locs: dict, whole) -> None:
        """Write a file's chunks at their offsets in ``fd``; ``whole`` (a hash, or None) sees every byte.

        A chunk stored raw that need not be hashed again (``whole`` is None: a
        file whose one chunk is the file, verified as it entered the store) is
        copied from the pack by the kernel (``os.copy_file_range``), never
        passing through Python; any other chunk is read, decoded, hashed and
        written with ``os.pwrite``.
        """
        pos = 0
        for cid in info.chunk_ids:
            loc = locs.get(cid)
            if loc is None:
                raise DamagedObject(f"chunk {cid[:12]} of file {info.id[:12]} is missing from the store")
            if (whole is None and loc.codec == packs.CODEC_RAW and loc.length == loc.raw_length and _COPY_RANGE
                    and self._copy_stored(loc, fd, pos)):
                pos += loc.raw_length
                continue
            raw = self._decoded(info, cid, loc)
            if whole is not None:
                whole.update(raw)
            _pwrite_all(fd, raw, pos)
            pos += len(raw)

    def _copy_stored(self, loc: q.ChunkLocation, fd: int, pos: int) -> bool:
        """Copy a raw chunk's bytes from its pack to ``fd`` at ``pos`` in the kernel; False when it cannot."""
        global _COPY_RANGE
        h = self._acquire(loc.pack_id)
        try:
            done = 0
            while done < loc.length:
                try:
                    n = os.copy_file_range(h.fd, fd, loc.length - done, loc.offset + done, pos + done)
                except OSError as exc:
                    if exc.errno in _NO_COPY_RANGE and not done:
                        _COPY_RANGE = False  # not between these file systems (or kernels): read and write instead
                        return False
                    raise
                if n == 0:
                    raise DamagedObject(f"pack {loc.pack_id} is truncated", self.pack_path(loc.pack_id))
                done += n
        finally:
            self._release(h)
        return True

    def _stage_link(self, info: q.FileInfo, dest: str, tmp: str, locs: dict) -> str:
        """A symbolic link under the temporary name ``tmp`` whose target is the file's content (checked)."""
        target = b"".join(self._decoded(info, cid, locs.get(cid)) for cid in info.chunk_ids)
        if hashlib.sha256(target).hexdigest() != info.id:
            raise DamagedObject(f"file {info.id[:12]} does not match its SHA-256")
        if not 0 < len(target) <= MAX_LINK_TARGET or b"\x00" in target:
            raise DamagedObject(f"its content ({len(target)} bytes) cannot be the target of a symbolic link "
                                f"(1 to {MAX_LINK_TARGET} bytes, no NUL)")
        require_symlinks("this change", [dest])
        Path(tmp).unlink(missing_ok=True)
        try:
            os.symlink(target, tmp)
        except OSError as exc:
            if no_space_cause(exc) is not None:
                raise  # a full disk: the caller's reporting_no_space names it
            raise DamagedObject(f"cannot create a symbolic link: {exc.strerror or exc}") from exc
        return tmp

    def _decoded(self, info: q.FileInfo, cid: str, loc: q.ChunkLocation | None) -> bytes:
        """A chunk of ``info`` decoded but not hashed (stage_file's whole-file check, or the pull, covers it)."""
        if loc is None:
            raise DamagedObject(f"chunk {cid[:12]} of file {info.id[:12]} is missing from the store")
        try:
            return packs.decode(loc.codec, self.read_stored(loc), loc.raw_length)
        except packs.PackError as exc:
            raise DamagedObject(f"chunk {cid[:12]}: {exc}", self.pack_path(loc.pack_id)) from exc


class StoreWriter:
    """Writes new chunks into packs; ``seal()`` makes them durable and returns catalog rows.

    Chunks already in the catalog, or already written by this writer, are
    skipped, so identical content is stored once.
    """

    MAX_QUEUED = 8  # write batches in flight
    BATCH_BYTES = 4 * 1024 * 1024  # small chunks are handed to the I/O thread in batches

    def __init__(self, store: ObjectStore):
        self.store = store
        self._pack: packs.PackWriter | None = None
        self._seen: set[str] = set()
        self._stored: set[str] | None = None  # every chunk id in the catalog, once loaded (see _known)
        self._lookups = 0
        self.sealed: list[tuple[str, int, list[q.ChunkLocation]]] = []
        self._taken = 0  # how many of ``sealed`` take_sealed() has handed out
        self._sealed_lock = threading.Lock()  # the I/O thread appends while callers take
        self.bytes_in = 0
        self.bytes_stored = 0
        self._chunker: Chunker | None = None
        self._unsealed: list[packs.PackWriter] = []  # rolled packs whose footer is not written yet
        # pack file writes and fsyncs run on their own thread, overlapping hashing
        self._io = None
        self._queued: deque = deque()
        self._batch: list[tuple] = []
        self._batch_bytes = 0

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._chunker is not None:
            self._chunker.close()
        failed = exc_type is not None
        try:
            self._drain(raise_first=not failed)
        except BaseException:
            failed = True
            raise
        finally:
            if self._io is not None:
                self._io.shutdown()  # the I/O thread is idle from here on
                self._io = None
            if failed:
                self._discard_unsealed()

    def _discard_unsealed(self) -> None:
        """After a failure: delete every pack this writer started and did not seal (their temporary files).

        Sealed packs stay: they are whole, and unreferenced until recorded,
        which ``ws gc`` reclaims (another process may hold the same pack).
        """
        pending = ([self._pack] if self._pack is not None else []) + self._unsealed
        self._pack, self._batch, self._unsealed = None, [], []
        for pack in pending:
            pack.abort()

    def _submit(self, fn, *args) -> None:
        if self._io is None:
            from concurrent.futures import ThreadPoolExecutor

            self._io = ThreadPoolExecutor(1, thread_name_prefix="ws-packio")
        self._queued.append(self._io.submit(fn, *args))
        while len(self._queued) > self.MAX_QUEUED:
            self._queued.popleft().result()

    def _drain(self, raise_first: bool = True) -> None:
        """Wait for every queued write; the first failure is raised (after all finished) if ``raise_first``."""
        first: BaseException | None = None
        while self._queued:
            try:
                self._queued.popleft().result()
            except BaseException as exc:  # keep waiting: nothing may still be writing when we return
                first = first or exc
        if first is not None and raise_first:
            raise first

    LOOKUPS_BEFORE_LOADING = 256  # one query per chunk for a small write...
    LOAD_AT_MOST = 200_000  # ...then every stored id at once, when the catalog holds at most this many

    def _known(self, chunk_id: str) -> bool:
        if chunk_id in self._seen:
            return True
        self._seen.add(chunk_id)
        if self._stored is None:
            self._lookups += 1
            if self._lookups == self.LOOKUPS_BEFORE_LOADING:  # a big write: one query instead of thousands
                self._stored = q.chunk_ids_if_few(self.store.catalog, self.LOAD_AT_MOST)
            if self._stored is None:  # a small write so far, or too many ids to hold (asked once)
                return q.has_chunk(self.store.catalog, chunk_id)
        # a chunk another process stores meanwhile may be written twice: the catalog keeps its first
        # location and gc reclaims the other copy (the same race a per-chunk query has)
        return chunk_id in self._stored

    def add_piece(self, piece: Piece) -> None:
        """Store one chunk unless it is already stored."""
        self.bytes_in += piece.raw_length
        if self._known(piece.id):
            piece.done()  # not written: the chunker may reuse its buffer
            return
        self._append(piece.id, piece.raw_length, piece.codec, piece.payload, piece.done)

    def _append(self, chunk_id: str, raw_length: int, codec: int, payload, done=None,
                kind: int = packs.KIND_CHUNK) -> None:
        if self._pack is None:
            self._pack = packs.PackWriter(self.store.packs_dir)
        self._pack.reserve(chunk_id, raw_length, codec, len(payload), kind)
        self._batch.append((chunk_id, raw_length, codec, payload, done, kind))
        self._batch_bytes += len(payload)
        self.bytes_stored += len(payload)
        if self._batch_bytes >= self.BATCH_BYTES:
            self._flush_batch()
        if self._pack.size >= packs.TARGET_PACK_SIZE:
            self._roll()

    def _flush_batch(self) -> None:
        if self._batch:
            self._submit(_write_batch, self._pack, self._batch)
            self._batch = []
            self._batch_bytes = 0

    def force_add(self, chunk_id: str, raw_length: int, codec: int, payload, kind: int = packs.KIND_CHUNK) -> None:
        """Store already-encoded bytes even if the object is known (repacking)."""
        self._seen.add(chunk_id)
        self._append(chunk_id, raw_length, codec, payload, kind=kind)

    def add_object(self, kind: int, raw: bytes) -> str:
        """Store one history object (a file's chunk list, a tree, a commit) unless stored; returns its id.

        Its id is the SHA-256 of ``raw``, like a chunk's, so the one verifier
        covers it; identical objects (an unchanged tree) are stored once.
        """
        object_id = hashlib.sha256(raw).hexdigest()
        if not self._known(object_id):
            codec, payload = packs.encode(raw)
            self._append(object_id, len(raw), codec, bytes(payload), kind=kind)
        return object_id

    def add_files(self, paths):
        """Chunk, hash and store many files; yields (path, time before reading, digest or None if gone)."""
        if self._chunker is None:
            self._chunker = Chunker(packs.encode)
        return self._chunker.digest_many(paths, self.add_piece)

    def add_links(self, paths):
        """Store the target text of many symbolic links as their content (never following them).

        Yields (path, time before reading, digest or None if no longer a link), like :meth:`add_files`.
        """
        for path in paths:
            recorded = time.time_ns()
            try:
                target = os.readlink(os.fsencode(path))
            except OSError as exc:  # gone, or no longer a link (EINVAL): not what was walked
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EINVAL):
                    raise
                yield path, recorded, None
                continue
            yield path, recorded, self.add_bytes(target)

    def add_file(self, path: str) -> Digest:
        """Chunk, hash and store one file from disk."""
        if self._chunker is None:
            self._chunker = Chunker(packs.encode)
        return self._chunker.digest_file(path, self.add_piece)

    def add_bytes(self, data: bytes) -> Digest:
        """Chunk, hash and store an in-memory buffer."""
        from workspace.objects.chunking import iter_cuts

        ids = []
        for part in iter_cuts(data):
            cid = hashlib.sha256(part).hexdigest()
            codec, payload = packs.encode(part)
            self.add_piece(Piece(cid, len(part), codec, payload))
            ids.append(cid)
        return Digest(hashlib.sha256(data).hexdigest(), len(data), ids)

    def _roll(self) -> None:
        self._flush_batch()
        pack = self._pack
        self._pack = None
        with self._sealed_lock:
            self._unsealed.append(pack)
        self._submit(self._finish, pack)

    def _finish(self, pack: packs.PackWriter) -> None:
        """On the I/O thread: footer, fsync, rename; then the pack's rows are ready."""
        pack_id, final, entries = pack.finish(self.store.pack_path)
        rows = [q.ChunkLocation(e.id, pack_id, e.offset, e.length, e.raw_length, e.codec, e.kind) for e in entries]
        with self._sealed_lock:
            self._unsealed.remove(pack)
            self.sealed.append((pack_id, os.path.getsize(final), rows))

    def take_sealed(self) -> list[tuple[str, int, list[q.ChunkLocation]]]:
        """Packs sealed since the last call (each handed out exactly once), durable on disk.

        The I/O thread may seal a pack at any moment; taking the new ones and
        moving the mark past them is one step under a lock, so a caller that
        records what it takes (pull, as it goes) never skips a pack.
        """
        with self._sealed_lock:
            new = self.sealed[self._taken:]
            self._taken = len(self.sealed)
        return new

    def seal(self) -> list[tuple[str, int, list[q.ChunkLocation]]]:
        """Finish the open pack and wait for every write; each returned pack is durable on disk."""
        if self._pack is not None and self._pack.entries:
            self._roll()
        elif self._pack is not None:
            pack, self._pack = self._pack, None
            self._submit(pack.abort)
        self._drain()
        return self.sealed

    def record(self, now_ns: int) -> None:
        """Record sealed packs in the catalog (call inside the caller's transaction)."""
        for pack_id, size, rows in self.sealed:
            q.add_pack(self.store.catalog, pack_id, size, rows, now_ns)


def _write_batch(pack: packs.PackWriter, batch: list[tuple]) -> None:
    """On the I/O thread: write reserved entries in order, then let go of each payload."""
    for chunk_id, raw_length, codec, payload, done, kind in batch:
        pack.write_entry(chunk_id, raw_length, codec, payload, kind)
        if done is not None:
            done()  # written: the chunker may reuse the buffer behind the payload
