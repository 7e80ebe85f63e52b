"""Cut files into content-defined chunks and hash them, streaming.

A file's id is the SHA-256 of its whole content; a chunk's id is the SHA-256 of
its bytes. Computing both means hashing every byte twice, so large files are
hashed on two threads at once (hashlib releases the GIL): one thread feeds the
whole-file digest block by block while another hashes (and maybe compresses)
chunks. Memory stays bounded by a few read blocks whatever the file size.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from pyfastcdc import FastCDC

from workspace.objects.hashing import hash_file  # noqa: F401  (re-exported)

MIN_SIZE = 256 * 1024
AVG_SIZE = 1024 * 1024
MAX_SIZE = 4 * 1024 * 1024
BLOCK = 16 * 1024 * 1024  # read size for large files

# pyfastcdc's real average is avg_size + min_size (cut-point skipping)
_CDC = FastCDC(avg_size=AVG_SIZE - MIN_SIZE, min_size=MIN_SIZE, max_size=MAX_SIZE)


@dataclass(frozen=True)
class Piece:
    """One chunk of a file: id, raw length, how it is stored (codec, payload)."""

    id: str
    raw_length: int
    codec: int
    payload: memoryview | bytes


Encoder = Callable[[memoryview | bytes], tuple[int, memoryview | bytes]]


def _identity(data):
    return 0, data


@dataclass(frozen=True)
class Digest:
    """The result of cutting one file: its id, size and ordered chunk ids."""

    id: str
    size: int
    chunk_ids: list[str]


def cut_bytes(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of an in-memory buffer."""
    if len(data) <= MIN_SIZE:
        return [(0, len(data))] if data else []
    return [(c.offset, c.length) for c in _CDC.cut_buf(data)]


class Chunker:
    """Streams files through chunking and hashing; ``sink`` receives each new piece.

    ``sink(piece)`` is called in file order on the caller's thread, so it may
    append to a pack file without locking.
    """

    def __init__(self, encode: Encoder = _identity) -> None:
        self._encode = encode
        self._whole = ThreadPoolExecutor(1, thread_name_prefix="ws-filehash")
        self._parts = ThreadPoolExecutor(1, thread_name_prefix="ws-chunkhash")

    def close(self) -> None:
        """Stop the worker threads."""
        self._whole.shutdown()
        self._parts.shutdown()

    def __enter__(self) -> "Chunker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
        pending: Future | None = None
        chunk_ids: list[str] = []
        size = 0
        carry = b""
        previous: list[Future] = []
        block = first + f.read(BLOCK - len(first))
        while True:
            eof = len(block) < BLOCK
            pending = self._whole.submit(whole.update, block)
            size += len(block)
            window = carry + block if carry else block
            view = memoryview(window)
            cuts = [(c.offset, c.length) for c in _CDC.cut_buf(view)] if window else []
            if not eof and cuts:
                last_off, _ = cuts.pop()  # the last cut may be an artefact of the window end
                carry = window[last_off:]
            else:
                carry = b""
            # hand over the previous window's chunks, hashed while we cut this one
            self._deliver(previous, chunk_ids, sink)
            previous = [self._parts.submit(self._piece, view[off : off + ln]) for off, ln in cuts]
            if eof:
                break
            block = f.read(BLOCK)
            if not block:
                # the file ended exactly at a block boundary: the carry is the last chunk
                if carry:
                    previous.append(self._parts.submit(self._piece, memoryview(carry)))
                break
        self._deliver(previous, chunk_ids, sink)
        pending.result()
        return Digest(whole.hexdigest(), size, chunk_ids)


    @staticmethod
    def _deliver(futures: list[Future], chunk_ids: list[str], sink: Callable[[Piece], None]) -> None:
        for fut in futures:
            piece = fut.result()
            chunk_ids.append(piece.id)
            sink(piece)

    def _piece(self, part: memoryview) -> Piece:
        codec, payload = self._encode(part)
        return Piece(hashlib.sha256(part).hexdigest(), len(part), codec, payload)


def iter_cuts(data: bytes) -> Iterator[memoryview]:
    """Chunks of an in-memory buffer as views."""
    view = memoryview(data)
    for off, ln in cut_bytes(data):
        yield view[off : off + ln]
