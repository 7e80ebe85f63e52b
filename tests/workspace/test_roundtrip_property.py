"""Property: commit then checkout round-trips arbitrary small trees byte for byte."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workspace.api import Workspace

names = st.text(alphabet="abcdefgh_-.0123456789", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..") and not s.startswith(".ws"))
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
# large contents come from a seeded generator: multi-chunk files without huge hypothesis inputs
big = st.tuples(st.integers(0, 10**6), st.integers(300_000, 1_500_000)).map(
    lambda t: random.Random(t[0]).randbytes(t[1]))
contents = st.one_of(st.binary(max_size=2000), big)
trees = st.dictionaries(paths, contents, min_size=1, max_size=8)


def _valid(tree: dict) -> bool:
    """No path may be both a file and a folder."""
    keys = set(tree)
    return not any(k.startswith(other + "/") for k in keys for other in keys)


def _read_tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".ws" not in p.relative_to(root).parts}


@pytest.mark.slow  # 2-6 s on 2 busy cores: 25 examples, each two commits and checkouts
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=trees, second=trees)
def test_commit_checkout_roundtrip(first, second):
    if not (_valid(first) and _valid(second)):
        return
    tmp = Path(tempfile.mkdtemp())
    try:
        ws = Workspace.init(tmp / "w")
        for rel, data in first.items():
            (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws.root / rel).write_bytes(data)
        c1 = ws.commit("first").commit
        for child in ws.root.iterdir():  # replace the whole tree by the second one
            if child.name != ".ws":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        for rel, data in second.items():
            (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws.root / rel).write_bytes(data)
        try:
            ws.commit("second")
        except Exception as exc:  # identical trees: nothing to commit
            assert "nothing to commit" in str(exc)
        ws.checkout(c1.id)
        assert _read_tree(ws.root) == first
        ws.checkout("main")
        assert _read_tree(ws.root) == second
        assert ws.status().clean
        ws.close()
    finally:
        shutil.rmtree(tmp)
