"""Dedup against the catalog when a write is big: every stored chunk id read in one query.

A commit asks the catalog about each chunk for its first few hundred
chunks; after that it reads every stored id at once (when there are not too
many) and answers from memory. Either way a chunk already stored is never
stored again.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import write
from workspace.objects.store import StoreWriter


@pytest.mark.parametrize("load_at_most", [1000, 3], ids=["ids-loaded", "too-many-to-load"])
def test_a_big_commit_stores_no_chunk_twice(ws, monkeypatch, load_at_most):
    monkeypatch.setattr(StoreWriter, "LOOKUPS_BEFORE_LOADING", 4)
    monkeypatch.setattr(StoreWriter, "LOAD_AT_MOST", load_at_most)
    old = {f"old/f{i}.bin": os.urandom(5_000 + i) for i in range(10)}
    for path, data in old.items():
        write(ws.root, path, data)
    first = ws.commit("old files")
    assert first.bytes_stored >= sum(len(d) for d in old.values())

    new = {f"new/g{i}.bin": os.urandom(6_000 + i) for i in range(10)}
    for path, data in new.items():
        write(ws.root, path, data)
    for i, data in enumerate(old.values()):  # the same contents under new names, past the first lookups
        write(ws.root, f"z-copies/c{i}.bin", data)
    second = ws.commit("new files and copies")
    stored_new = sum(len(d) for d in new.values())
    assert stored_new <= second.bytes_stored < stored_new + 10_000  # the copies cost nothing but history objects
    for i, data in enumerate(old.values()):
        assert (ws.root / f"z-copies/c{i}.bin").read_bytes() == data
    assert ws.fsck().ok
