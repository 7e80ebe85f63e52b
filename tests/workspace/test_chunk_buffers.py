"""Read buffers of the chunker: reused by explicit hand-back, never while a piece still needs its bytes.

Reuse used to be decided by ``sys.getrefcount``: anything else holding a
reference (a debugger keeping frame locals, another interpreter's counting)
changed the answer. Now the code done with a view hands the buffer back.
"""

from __future__ import annotations

import hashlib
import random
import sys

from workspace.objects.chunking import BLOCK, Chunker


def _big_file(tmp_path, windows: int, seed: int):
    """A file of ``windows`` read blocks of random bytes, written block by block; returns (path, sha256)."""
    path = tmp_path / "big.bin"
    rnd = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(windows):
            block = rnd.randbytes(BLOCK)
            h.update(block)
            f.write(block)
    return path, h.hexdigest()


def _debugger_keeping_locals(snapshots: list):
    """A trace function that keeps every frame's locals in the chunker, as a debugger's variable view does."""

    def local_trace(frame, event, arg):
        snapshots.append(dict(frame.f_locals))
        return local_trace

    def global_trace(frame, event, arg):
        if frame.f_code.co_filename.endswith("chunking.py"):
            return local_trace
        return None

    return global_trace


def test_buffers_are_reused_while_a_debugger_holds_frames(tmp_path):
    path, sha = _big_file(tmp_path, windows=16, seed=5)
    snapshots: list = []
    digest = hashlib.sha256()

    def sink(piece):  # writes at once (like the pack writer), then hands the buffer back
        digest.update(piece.payload)
        piece.done()

    with Chunker() as ch:
        sys.settrace(_debugger_keeping_locals(snapshots))
        try:
            d = ch.digest_file(path, sink)
        finally:
            sys.settrace(None)
        allocated = ch.buffers_allocated
    assert d.id == sha == digest.hexdigest()
    assert snapshots  # the "debugger" saw the chunker's frames
    assert allocated <= 4, f"{allocated} read buffers for 16 windows: they were not reused"


def test_a_buffer_is_not_reused_while_a_piece_holds_it(tmp_path):
    """A sink that keeps payloads without calling done() must still see the right bytes at the end."""
    path, sha = _big_file(tmp_path, windows=6, seed=6)
    kept = []
    with Chunker() as ch:
        d = ch.digest_file(path, kept.append)
    data = path.read_bytes()
    assert d.id == sha
    offset = 0
    for piece, cid in zip(kept, d.chunk_ids):
        assert hashlib.sha256(piece.payload).hexdigest() == cid
        assert bytes(piece.payload) == data[offset : offset + piece.raw_length]
        offset += piece.raw_length
    assert offset == len(data)


def test_buffers_come_back_through_the_store_writer(ws, tmp_path):
    """The pack writer hands buffers back after writing (or skipping) each chunk."""
    path, sha = _big_file(tmp_path, windows=16, seed=7)
    with ws.store.writer() as writer:
        first = writer.add_file(str(path))
        second = writer.add_file(str(path))  # every chunk known: skipped, handed back at once
        writer.seal()
        allocated = writer._chunker.buffers_allocated
    assert first.id == second.id == sha
    assert allocated <= 10, f"{allocated} read buffers for 32 windows: they were not reused"
