"""``ws fsck``: re-read every pack and check every byte, every chunk hash and every catalog reference."""

from __future__ import annotations

import os
from typing import Callable

from catalog import history
from catalog import objects as q
from catalog.db import Catalog
from workspace.history import trees
from workspace.objects import packs
from workspace.repo import Repo
from workspace.reports import FsckReport
from workspace.types import Progress


def check_pack_file(path: str, pack_id: str, report: FsckReport, what: str = "pack",
                    on_chunk: Callable | None = None) -> packs.PackCheck | None:
    """Run the one pack verifier on a pack file; its problems go into ``report.problems``."""
    try:
        with open(path, "rb") as f:
            check = packs.check_pack(f, pack_id, on_chunk)
    except OSError as exc:
        report.problems.append(f"cannot read {what} {path}: {exc}")
        return None
    report.problems.extend(f"damaged {what} {path}: {p}" for p in check.structure)
    report.problems.extend(f"damaged chunk {e.id[:12]} at offset {e.offset} of {path}" for e in check.damaged)
    return check


def fsck(repo: Repo, progress: Progress | None = None) -> FsckReport:
    """Re-read every pack and check every byte, every chunk hash and every catalog reference.

    Pack files the catalog does not know are listed in ``unknown_packs`` (a
    leftover of an interrupted commit is normal: ``ws gc`` reclaims it); they
    are problems only when they are damaged, because then gc keeps them.
    """
    report = FsckReport()
    cat = repo.catalog
    damaged_chunks: set[str] = set()
    recorded = q.all_packs(cat)
    for i, (pack_id, _size, _count) in enumerate(recorded):
        path = repo.store.pack_path(pack_id)
        rows = q.chunks_in_pack(cat, pack_id)
        if not os.path.exists(path):
            report.problems.append(f"pack {pack_id[:12]} is missing ({path})")
            damaged_chunks.update(r.id for r in rows)
            continue
        check = check_pack_file(path, pack_id, report)
        good = {e.id: e.offset for e in check.entries} if check else {}
        bad = {e.id for e in check.damaged} if check else set()
        report.packs += 1
        for r in rows:
            report.chunks += 1
            if good.get(r.id) != r.offset:
                damaged_chunks.add(r.id)
                if r.id not in bad:  # not reached (a damaged entry header) or not where recorded
                    report.problems.append(f"chunk {r.id[:12]} is not intact at offset {r.offset} of {path}")
        if progress:
            progress("checking packs", i + 1, len(recorded))
    _check_unknown_packs(repo, {pid for pid, _, _ in recorded}, report)
    damaged_files: set[str] = set()
    files = q.all_files(cat)
    chunk_rows = q.all_chunk_ids(cat)
    for f in files:
        report.files += 1
        missing = [c for c in f.chunk_ids if c not in chunk_rows]
        if missing:
            report.problems.append(f"file {f.id[:12]} refers to unknown chunk {missing[0][:12]}")
        if missing or damaged_chunks.intersection(f.chunk_ids):
            damaged_files.add(f.id)
    known = {f.id for f in files}
    _check_history(repo.catalog, report, known, damaged_files)
    _check_history_objects(repo, files, report)
    return report


def _check_history_objects(repo: Repo, files: list[q.FileInfo], report: FsckReport) -> None:
    """Every commit, tree and multi-chunk file the catalog indexes must also be an object in a pack,
    and every ref file must say what the catalog says: otherwise a lost catalog would lose history."""
    from workspace.history import reffiles
    from workspace.objects import history as objects

    cat = repo.catalog
    stored = q.history_object_ids(cat)
    commits = history.all_commits(cat)
    reachable: set[str] = set()
    for rec in commits:
        trees.reachable_trees(cat, rec.tree_id, reachable)
    lacking = [f"commit {rec.id[:12]}" for rec in commits if rec.id not in stored]
    lacking += [f"tree {tid[:12]}" for tid in sorted(reachable) if tid not in stored]
    lacking += [f"the chunk list of file {f.id[:12]}" for f in files if objects.needs_file_object(f.id, f.chunk_ids)
                and objects.object_id(objects.encode_file(objects.FileObject(f.id, f.size, f.chunk_ids)))
                not in stored]
    for what in lacking[:20]:
        report.problems.append(f"{what} is only in the catalog, not in any pack (a rebuilt catalog would lose it)")
    if len(lacking) > 20:
        report.problems.append(f"... and {len(lacking) - 20} more history objects only in the catalog")
    if not reffiles.in_sync(repo):
        report.problems.append("the ref files under .ws/ (HEAD, refs/heads/) and the catalog disagree")


def _check_unknown_packs(repo: Repo, recorded: set[str], report: FsckReport) -> None:
    """List pack files the catalog does not record; those the verifier rejects are problems too."""
    for path in repo.store.list_pack_files():
        if pack_id_of(path) in recorded:
            continue
        before = len(report.problems)
        check_pack_file(path, pack_id_of(path), report, what="unknown pack")
        if len(report.problems) == before:
            report.unknown_packs.append(f"unknown pack {path} (not in the catalog)")
        else:  # gc keeps it: say so where the problem is named
            report.problems[before:] = [p.replace(path, f"{path} (not in the catalog)", 1)
                                        for p in report.problems[before:]]


def pack_id_of(path: str) -> str:
    """The pack id a pack file's name claims (``<aa>/<id>.pack``)."""
    return os.path.basename(path)[: -len(".pack")]


def _check_history(cat: Catalog, report: FsckReport, known_files: set[str], damaged_files: set[str]) -> None:
    """Every commit's tree and files, every parent and every branch head must exist."""
    damaged_paths: dict[str, list[str]] = {}
    for rec in history.all_commits(cat):
        report.commits += 1
        try:
            manifest = trees.flatten(cat, rec.tree_id)
        except (KeyError, ValueError) as exc:
            report.problems.append(f"commit {rec.id[:12]}: tree is missing or unreadable: {exc}")
            continue
        for path, e in manifest.items():
            if e.file_id not in known_files:
                report.problems.append(f"commit {rec.id[:12]}: '{path}' refers to unknown content {e.file_id[:12]}")
                damaged_paths.setdefault(path, []).append(rec.id[:12])
            elif e.file_id in damaged_files:
                damaged_paths.setdefault(path, []).append(rec.id[:12])
        for parent in rec.parents:
            if history.get_commit(cat, parent) is None:
                report.problems.append(f"commit {rec.id[:12]}: parent {parent[:12]} is missing")
    for name, cid in history.list_refs(cat):
        if history.get_commit(cat, cid) is None:
            report.problems.append(f"branch '{name}' points at missing commit {cid[:12]}")
    report.damaged_paths = [f"{p} (in commit {', '.join(sorted(set(c)))})" for p, c in sorted(damaged_paths.items())]
