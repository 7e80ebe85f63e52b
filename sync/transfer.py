"""Parallel transfers: a bounded thread pool and a thread-safe progress meter.

Storage calls block on the network (or disk) and release the GIL, so threads
give real parallelism. The pool keeps at most ``window`` tasks in flight so
that memory stays bounded however many objects there are.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, NamedTuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")

ProgressFn = Callable[[str, int, int], None]
DEFAULT_WORKERS = 4


class Meter:
    """Counts bytes done for one phase and reports ``progress(phase, done, total)``."""

    def __init__(self, progress: ProgressFn | None, phase: str, total: int):
        self.progress = progress
        self.phase = phase
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        if progress:
            progress(phase, 0, total)

    def add(self, n: int) -> None:
        """Count ``n`` more bytes."""
        with self._lock:
            self.done += n
            done = self.done
        if self.progress:
            self.progress(self.phase, min(done, self.total), self.total)


def bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int = DEFAULT_WORKERS,
                window: int | None = None) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, yielding results as they complete.

    At most ``window`` (default ``2 * workers``) tasks are pending at once. The
    first failure cancels what has not started and is raised to the caller.
    """
    window = window or 2 * workers
    pending: set[Future] = set()
    it = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ws-transfer") as pool:
        try:
            for item in it:
                pending.add(pool.submit(fn, item))
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()


class Span(NamedTuple):
    """One range GET: bytes ``[start, end)`` of a pack, covering ``chunks`` (sorted by offset)."""

    pack_id: str
    start: int
    end: int
    chunks: list


def coalesce(chunks: Iterable, max_gap: int = 1 << 20, max_span: int = 16 << 20) -> list[Span]:
    """Group chunk locations (``pack_id, offset, length``) into few range GETs.

    Neighbouring chunks of a pack are fetched together when the gap between them
    is at most ``max_gap`` (reading a little extra beats another request), and a
    span stops growing at ``max_span`` bytes so memory per request stays bounded.
    """
    by_pack: dict[str, list] = {}
    for c in chunks:
        by_pack.setdefault(c.pack_id, []).append(c)
    spans: list[Span] = []
    for pack_id in sorted(by_pack):
        group: deque = deque(sorted(by_pack[pack_id], key=lambda c: c.offset))
        cur: list = []
        start = end = 0
        while group:
            c = group.popleft()
            if cur and (c.offset - end > max_gap or c.offset + c.length - start > max_span):
                spans.append(Span(pack_id, start, end, cur))
                cur = []
            if not cur:
                start = c.offset
            cur.append(c)
            end = max(end, c.offset + c.length)
        if cur:
            spans.append(Span(pack_id, start, end, cur))
    return spans
