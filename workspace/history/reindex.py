"""Indexing packs into the catalog: what catches the catalog up after a crash, and rebuilds it.

Packs are self-describing (docs/local-format.md): their footer index lists
every entry's id, place, codec and kind; history objects (file chunk lists,
trees, commits) are read and verified here and become catalog rows. Files of
one chunk (chunk id = file id) and empty files have no object of their own:
their rows are derived from the trees that name them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from catalog import history
from catalog import objects as q
from catalog.history import CommitRecord
from workspace.history import trees
from workspace.objects import history as objects
from workspace.objects import packs
from workspace.repo import Repo

EMPTY_FILE = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of no bytes


@dataclass
class IndexReport:
    """What indexing found."""

    packs: int = 0
    chunks: int = 0
    files: int = 0
    trees: int = 0
    commits: int = 0
    problems: list[str] = field(default_factory=list)


def index_packs(repo: Repo, paths: list[str], report: IndexReport | None = None) -> IndexReport:
    """Record ``paths`` (sealed pack files) and the history objects in them; one transaction per pack."""
    report = report or IndexReport()
    for path in paths:
        try:
            _index_one(repo, path, report)
        except (packs.PackError, OSError, ValueError) as exc:
            report.problems.append(f"pack {path} could not be indexed: {exc}")
    return report


def _index_one(repo: Repo, path: str, report: IndexReport) -> None:
    pack_id = Path(path).name[:-len(".pack")]
    try:  # the footer lists every entry (data chunks are verified by 'ws fsck', not here)
        entries = packs.read_index(path)
    except packs.PackError as exc:  # a damaged footer: walk the entries, keeping those that verify
        with open(path, "rb") as f:
            check = packs.check_pack(f)
        entries = check.entries
        report.problems.append(f"pack {path}: {exc}; indexed {len(entries)} verified entries from its headers")
    rows = [q.ChunkLocation(e.id, pack_id, e.offset, e.length, e.raw_length, e.codec, e.kind) for e in entries]
    files, tree_rows, commits = [], [], []
    with open(path, "rb") as f:
        for e in entries:
            if e.kind == packs.KIND_CHUNK:
                continue
            f.seek(e.offset)
            raw = bytes(packs.verified_chunk(e.id, e.codec, f.read(e.length), e.raw_length))
            if e.kind == packs.KIND_FILE:
                fo = objects.decode_file(raw)
                files.append(q.FileInfo(fo.id, fo.size, fo.chunk_ids))
            elif e.kind == packs.KIND_TREE:
                tree_rows.append((e.id, raw))
            elif e.kind == packs.KIND_COMMIT:
                c = objects.decode_commit(raw)
                commits.append(CommitRecord(e.id, c.tree, c.parents, c.branch, c.message, c.author, c.time_ns,
                                            c.provenance))
    cat = repo.catalog
    with cat.write():
        q.add_pack(cat, pack_id, os.path.getsize(path), rows, time.time_ns())
        q.add_files(cat, files)
        history.add_trees(cat, tree_rows)
        for c in commits:
            history.add_commit(cat, c)
    report.packs += 1
    report.chunks += len(rows)
    report.files += len(files)
    report.trees += len(tree_rows)
    report.commits += len(commits)


def unknown_pack_files(repo: Repo) -> list[str]:
    """Sealed pack files the catalog does not record."""
    known = q.recorded_pack_ids(repo.catalog)
    return [p for p in repo.store.list_pack_files() if Path(p).name[:-len(".pack")] not in known]


def complete_files(repo: Repo, report: IndexReport) -> None:
    """Rows for files the trees name that have no chunk-list object: one chunk (id = file id) or empty."""
    cat = repo.catalog
    named: dict[str, int] = {}
    for _tid, data in history.iter_trees(cat):
        for e in trees.decode_tree(data):
            if e.kind == "f":
                named[e.id] = e.size
    missing = set(named) - q.known_files(cat, named)
    locs = q.chunk_locations(cat, missing)
    rows = []
    for fid in missing:
        if fid == EMPTY_FILE and named[fid] == 0:
            rows.append(q.FileInfo(fid, 0, []))
        elif fid in locs and locs[fid].raw_length == named[fid]:
            rows.append(q.FileInfo(fid, named[fid], [fid]))
        else:
            report.problems.append(f"file {fid[:12]} ({named[fid]} bytes) is named by a tree but its content "
                                   "is in no pack")
    q.add_files(cat, rows)
    report.files += len(rows)
