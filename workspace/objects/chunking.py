"""Cut files into content-defined chunks and hash them, streaming.

A file's id is the SHA-256 of its whole content; a chunk's id is the SHA-256 of
its bytes. Computing both means hashing every byte twice, so large files are
hashed on two threads at once (hashlib releases the GIL): one thread feeds the
whole-file digest block by block while another hashes (and maybe compresses)
chunks. Memory stays bounded by a few read blocks whatever the file size.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from collections import deque
from typing import Callable, Iterable, Iterator

from pyfastcdc import FastCDC

from workspace.objects.hashing import hash_file, no_follow  # noqa: F401  (hash_file re-exported)

MIN_SIZE = 128 * 1024
AVG_SIZE = 512 * 1024
MAX_SIZE = 2 * 1024 * 1024
BLOCK = 8 * 1024 * 1024  # read size for large files
_SMALL_WORKERS = 3  # threads opening, reading, hashing and compressing small files
_SMALL_AHEAD = 64  # files read ahead of the one being delivered
_HASH_LAG = 2  # windows the whole-file hash may fall behind the reading (each keeps a buffer)

# pyfastcdc's real average is avg_size + min_size (cut-point skipping)
_CDC = FastCDC(avg_size=AVG_SIZE - MIN_SIZE, min_size=MIN_SIZE, max_size=MAX_SIZE)


@dataclass(frozen=True)
class Piece:
    """One chunk of a file: id, raw length, how it is stored (codec, payload).

    ``payload`` may be a view of one of the chunker's read buffers. Whoever
    receives the piece calls :meth:`done` once it no longer needs the payload
    (written, copied or skipped); only then may that buffer be read into again.
    """

    id: str
    raw_length: int
    codec: int
    payload: memoryview | bytes
    hold: "_Hold | None" = field(default=None, compare=False, repr=False)

    def done(self) -> None:
        """The payload is no longer needed: its read buffer may be reused. Safe to call twice."""
        if self.hold is not None:
            self.hold.release()


Encoder = Callable[[memoryview | bytes], tuple[int, memoryview | bytes]]


def _identity(data):
    return 0, data


@dataclass(frozen=True)
class Digest:
    """The result of cutting one file: its id, size and ordered chunk ids."""

    id: str
    size: int
    chunk_ids: list[str]


class _Buffer:
    """One pooled read buffer and the number of holds on it; free again at zero holds."""

    __slots__ = ("data", "holds")

    def __init__(self, size: int):
        self.data = bytearray(size)
        self.holds = 0


class _Hold:
    """One holder's claim on a buffer: released once, by the code that is done with its view."""

    __slots__ = ("_pool", "_buffer")

    def __init__(self, pool: "_BufferPool", buffer: _Buffer):
        self._pool, self._buffer = pool, buffer

    def release(self) -> None:
        """Give the claim back (a second call does nothing)."""
        self._pool._release(self)


class _BufferPool:
    """Reusable read buffers with explicit ownership.

    Reading into fresh 8 MiB objects costs more in page faults than the
    reading itself, so buffers are reused. :meth:`get` hands out a buffer with
    one hold (the reader's); every piece of work given a view of it (the
    whole-file hash, each chunk's hashing, the pack write of a raw chunk)
    takes its own hold and releases it when done with the view, from any
    thread. A buffer is free once every hold is released. A holder that never
    releases only costs a fresh buffer later; a buffer is never reused while
    a hold is out.
    """

    def __init__(self, size: int):
        self.size = size
        self._free: list[_Buffer] = []
        self._lock = threading.Lock()
        self.allocated = 0  # buffers ever made: a measure of reuse for tests and benchmarks

    def get(self) -> tuple[_Buffer, _Hold]:
        """A free buffer (or a new one) and the caller's hold on it."""
        with self._lock:
            buffer = self._free.pop() if self._free else None
            if buffer is None:
                self.allocated += 1
        if buffer is None:
            buffer = _Buffer(self.size)
        return buffer, self.hold(buffer)

    def hold(self, buffer: _Buffer) -> _Hold:
        """One more claim on a buffer the caller holds already."""
        with self._lock:
            buffer.holds += 1
        return _Hold(self, buffer)

    def _release(self, hold: _Hold) -> None:
        with self._lock:  # one lock for every count: holds are released from worker threads
            buffer, hold._buffer = hold._buffer, None
            if buffer is None:
                return
            buffer.holds -= 1
            if buffer.holds == 0:
                self._free.append(buffer)


def _read_into(f, view: memoryview) -> int:
    """Fill ``view`` from ``f`` unless the file ends first; returns the bytes read."""
    total = 0
    while total < len(view):
        n = f.readinto(view[total:])
        if not n:
            break
        total += n
    return total


def cut_bytes(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of an in-memory buffer."""
    if len(data) <= MIN_SIZE:
        return [(0, len(data))] if data else []
    return [(c.offset, c.length) for c in _CDC.cut_buf(data)]


class Chunker:
    """Streams files through chunking and hashing; ``sink`` receives each new piece.

    ``sink(piece)`` is called in file order on the caller's thread, so it may
    append to a pack file without locking. The sink calls ``piece.done()``
    when it no longer needs ``piece.payload`` (possibly later, on another
    thread); until then the read buffer behind the payload is not reused.
    """

    def __init__(self, encode: Encoder = _identity) -> None:
        self._encode = encode
        self._pool = _BufferPool(BLOCK + MAX_SIZE)
        self._small: ThreadPoolExecutor | None = None
        self._whole = ThreadPoolExecutor(1, thread_name_prefix="ws-filehash")
        self._parts = ThreadPoolExecutor(1, thread_name_prefix="ws-chunkhash")

    def close(self) -> None:
        """Stop the worker threads."""
        self._whole.shutdown()
        self._parts.shutdown()
        if self._small is not None:
            self._small.shutdown()

    def __enter__(self) -> "Chunker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def buffers_allocated(self) -> int:
        """How many large-file read buffers were made so far (few means they were reused)."""
        return self._pool.allocated

    def digest_many(self, paths: Iterable[str], sink: Callable[[Piece], None]
                    ) -> Iterator[tuple[str, int, Digest | None]]:
        """Chunk and hash many files; yields (path, time before reading, digest or None if gone).

        Files are opened and read on worker threads (opening and reading wait on
        the kernel; hashing and compressing release the GIL), a few dozen files
        ahead; a file too big for one chunk is handed back and cut here, in its
        turn, so pieces still reach ``sink`` in file order.
        """
        if self._small is None:
            self._small = ThreadPoolExecutor(_SMALL_WORKERS, thread_name_prefix="ws-smallfile")
        window: deque = deque()
        try:
            for path in paths:
                window.append((path, time.time_ns(), self._small.submit(self._read_small, path)))
                yield from self._drain_small(window, sink, _SMALL_AHEAD)
            yield from self._drain_small(window, sink, 0)
        finally:  # stopped early (an error, a closed generator): close the big files handed back
            for _path, _recorded, fut in window:
                if fut.cancel():
                    continue
                try:
                    got = fut.result()
                except BaseException:  # the first failure is the one raised
                    continue
                if isinstance(got, tuple):
                    got[0].close()

    def _read_small(self, path: str):
        """On a worker: a small file's piece, None when it is gone, or (open file, first bytes) when big."""
        try:
            # a file walked as a regular file and since replaced by a symlink is not followed
            f = open(path, "rb", buffering=0, opener=no_follow)
        except OSError as exc:  # gone, a folder now, or a link now (ELOOP): not what was walked
            if exc.errno not in (errno.ENOENT, errno.EISDIR, errno.ELOOP):
                raise
            return None
        try:
            first = f.read(MIN_SIZE + 1)
        except BaseException:
            f.close()
            raise
        if len(first) > MIN_SIZE:
            return f, first  # cut on the caller's thread, in file order
        f.close()
        return self._small_piece(first)

    def _drain_small(self, window: deque, sink, keep: int):
        while len(window) > keep:
            path, recorded, fut = window.popleft()
            got = fut.result()
            if got is None:
                yield path, recorded, None
            elif isinstance(got, tuple):
                f, first = got
                with f:
                    digest = self._digest_large(f, first, sink)
                yield path, recorded, digest
            else:
                if got.raw_length:
                    sink(got)
                yield path, recorded, Digest(got.id, got.raw_length, [got.id] if got.raw_length else [])

    def _small_piece(self, data: bytes) -> Piece:
        fid = hashlib.sha256(data).hexdigest()
        codec, payload = self._encode(data) if data else (0, data)
        return Piece(fid, len(data), codec, payload)

    def digest_file(self, path: str | os.PathLike, sink: Callable[[Piece], None]) -> Digest:
        """Chunk and hash one file, handing each chunk to ``sink``."""
        with open(path, "rb", buffering=0) as f:
            first = f.read(MIN_SIZE + 1)
            if len(first) <= MIN_SIZE:  # small file: one chunk, one hash
                fid = hashlib.sha256(first).hexdigest()
                if first:
                    codec, payload = self._encode(first)
                    sink(Piece(fid, len(first), codec, payload))
                return Digest(fid, len(first), [fid] if first else [])
            return self._digest_large(f, first, sink)

    def _digest_large(self, f, first: bytes, sink: Callable[[Piece], None]) -> Digest:
        whole = hashlib.sha256()
        hashing: deque[Future] = deque()
        chunk_ids: list[str] = []
        previous: list[Future] = []
        size = 0
        carry: memoryview | bytes = first  # bytes not cut yet; they open the next window
        unhashed = len(first)  # how many of the carry's bytes the whole-file hash has not seen
        mine: _Hold | None = None  # our hold on the buffer the carry is in
        try:
            while True:
                while len(hashing) > _HASH_LAG:  # bounds the buffers the whole-file hash still reads
                    hashing.popleft().result()
                buffer, hold = self._pool.get()  # a buffer no pending work holds
                view = memoryview(buffer.data)
                view[: len(carry)] = carry
                if mine is not None:
                    mine.release()  # the carry was our last use of the previous buffer
                mine = hold
                got = _read_into(f, view[len(carry) : len(carry) + BLOCK])
                filled = len(carry) + got
                start = len(carry) - unhashed
                if filled > start:
                    hashing.append(self._whole.submit(_update, whole, view[start:filled], self._pool.hold(buffer)))
                    size += filled - start
                eof = got < BLOCK
                cuts = [(c.offset, c.length) for c in _CDC.cut_buf(view[:filled])] if filled else []
                if not eof:
                    last_off, _ = cuts.pop()  # the last cut may be an artefact of the window end
                    carry, unhashed = view[last_off:filled], 0
                # hand over the previous window's chunks, hashed while we cut this one
                self._deliver(previous, chunk_ids, sink)
                previous = [self._parts.submit(self._piece, view[off : off + ln], self._pool.hold(buffer))
                            for off, ln in cuts]
                if eof:
                    break
            self._deliver(previous, chunk_ids, sink)
            for fut in hashing:
                fut.result()
        finally:
            if mine is not None:
                mine.release()
        return Digest(whole.hexdigest(), size, chunk_ids)

    @staticmethod
    def _deliver(futures: list[Future], chunk_ids: list[str], sink: Callable[[Piece], None]) -> None:
        for fut in futures:
            piece = fut.result()
            chunk_ids.append(piece.id)
            sink(piece)

    def _piece(self, part: memoryview, hold: _Hold) -> Piece:
        """Hash and encode one chunk; the hold goes with the piece while its payload is a view of ``part``."""
        try:
            codec, payload = self._encode(part)
            chunk_id = hashlib.sha256(part).hexdigest()
        except BaseException:
            hold.release()
            raise
        if isinstance(payload, memoryview):  # stored as read: a view of our buffer
            return Piece(chunk_id, len(part), codec, payload, hold)
        hold.release()  # compressed into new bytes: the buffer is not needed any more
        return Piece(chunk_id, len(part), codec, payload)


def _update(whole, view: memoryview, hold: _Hold) -> None:
    """Feed one window to the whole-file hash, then release the window's buffer (before the future completes)."""
    try:
        whole.update(view)
    finally:
        hold.release()


def iter_cuts(data: bytes) -> Iterator[memoryview]:
    """Chunks of an in-memory buffer as views."""
    view = memoryview(data)
    for off, ln in cut_bytes(data):
        yield view[off : off + ln]
