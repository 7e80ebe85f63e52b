"""Trees: a commit's files as one small record per directory, like git.

Unchanged directories keep their ids from commit to commit, so a commit of one
changed file in 100,000 stores only the trees on that file's path.

A tree is JSON: a list of ``[name, kind, id, size, mode]`` sorted by name, where
kind is ``"f"`` (id: file id) or ``"d"`` (id: tree id). Its id is the SHA-256 of
those bytes.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from catalog import history
from catalog.db import Catalog
from catalog.statcache import ManifestEntry
from workspace.errors import InvalidArgument

EMPTY_TREE = b"[]"


# The functional form, for ws status's start-up: see catalog/statcache.py.
TreeEntry = NamedTuple("TreeEntry", [
    ("name", str),
    ("kind", str),
    ("id", str),
    ("size", int),
    ("mode", int),
])
TreeEntry.__doc__ = """One entry of a directory."""


def encode_tree(entries: Iterable[TreeEntry]) -> tuple[str, bytes]:
    """Serialize a directory; returns (tree id, bytes)."""
    import hashlib  # not at import: ws status reads trees, it does not encode them
    import json

    data = json.dumps([list(e) for e in sorted(entries)], separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest(), data


def decode_tree(data: bytes) -> list[TreeEntry]:
    """Parse a serialized directory."""
    import json  # not at import: a clean ws status decodes no tree

    return [TreeEntry(*e) for e in json.loads(data)]


def build(manifest: dict[str, ManifestEntry]) -> tuple[str, list[tuple[str, bytes]]]:
    """Trees for a flat manifest; returns (root id, [(tree id, bytes)])."""
    dirs: dict[str, list[TreeEntry]] = {"": []}
    for path, e in manifest.items():
        parent, _, name = path.rpartition("/")
        d = parent
        while d not in dirs:  # register every ancestor directory ("" is always there)
            dirs[d] = []
            d = d.rpartition("/")[0]
        dirs[parent].append(TreeEntry(name, "f", e.file_id, e.size, e.mode))
    both = sorted(manifest.keys() & dirs.keys())
    if both:  # one name, one kind: a tree with 'a' as file and folder could never be checked out
        raise InvalidArgument(f"'{both[0]}' cannot be both a file and a folder in one commit")
    out: list[tuple[str, bytes]] = []
    done: dict[str, tuple[str, int]] = {}
    for d in sorted(dirs, key=lambda p: p.count("/") + (1 if p else 0), reverse=True):
        entries = dirs[d]
        tid, data = encode_tree(entries)
        out.append((tid, data))
        done[d] = (tid, sum(e.size for e in entries))
        if d:  # hand this directory to its parent, which is processed later
            parent, _, name = d.rpartition("/")
            dirs[parent].append(TreeEntry(name, "d", tid, done[d][1], 0o40000))
    return done[""][0], out


def flatten(cat: Catalog, root_id: str, prefix: str = "") -> dict[str, ManifestEntry]:
    """The flat manifest (path -> entry) of a tree."""
    out: dict[str, ManifestEntry] = {}
    stack = [(prefix, root_id)]
    while stack:
        base, tid = stack.pop()
        data = history.get_tree(cat, tid)
        if data is None:
            raise KeyError(f"tree {tid} is missing from the catalog")
        for e in decode_tree(data):
            path = f"{base}/{e.name}" if base else e.name
            if e.kind == "d":
                stack.append((path, e.id))
            else:
                out[path] = ManifestEntry(e.id, e.size, e.mode)
    return out


def lookup(cat: Catalog, root_id: str, path: str) -> TreeEntry | None:
    """The entry at ``path`` (file or directory) in a tree, or None."""
    if path in ("", "."):
        return TreeEntry("", "d", root_id, 0, 0o40000)
    tid = root_id
    parts = path.strip("/").split("/")
    for i, part in enumerate(parts):
        data = history.get_tree(cat, tid)
        if data is None:
            return None
        match = next((e for e in decode_tree(data) if e.name == part), None)
        if match is None:
            return None
        if i == len(parts) - 1:
            return match
        if match.kind != "d":
            return None
        tid = match.id
    return None


def reachable_trees(cat: Catalog, root_id: str, seen: set[str]) -> None:
    """Add every tree id under ``root_id`` to ``seen`` (skipping known subtrees)."""
    stack = [root_id]
    while stack:
        tid = stack.pop()
        if tid in seen:
            continue
        seen.add(tid)
        data = history.get_tree(cat, tid)
        if data is None:
            continue
        stack.extend(e.id for e in decode_tree(data) if e.kind == "d")
