"""``ws commit``: store new content, then record the commit in one transaction.

Order of writes (DESIGN.md): chunks go into packs that are fsynced and renamed
into place first; then one SQLite transaction records packs, files, trees, the
commit, the branch move, the stat cache and HEAD's manifest. A crash before
that transaction leaves only unreferenced pack bytes, which ``ws gc`` reclaims.
"""

from __future__ import annotations

from itertools import chain

from catalog import statcache
from catalog import objects as q
from catalog.statcache import ManifestEntry, StatEntry
from workspace.errors import InvalidArgument, NothingToCommit, UnknownRef
from workspace.faults import checkpoint
from workspace.history import refs
from workspace.history.manifest import Manifest, head_manifest
from workspace.history.record import record_commit
from workspace.layout import safe_join
from workspace.objects.store import StoreWriter
from workspace.repo import Repo
from workspace.tree.ignore import IgnoreRules
from workspace.tree.scan import FileStat, add_tracked, classify, under_any, walk
from workspace.reports import CommitResult
from workspace.types import LINK_MODE, Progress


def commit(repo: Repo, message: str, paths: list[str] | None = None, *, progress: Progress | None = None,
           provenance: dict | None = None, cwd: str | None = None) -> CommitResult:
    """Commit the working tree, or only ``paths`` (files or folders), on the current branch."""
    if not message or not message.strip():
        raise InvalidArgument("a commit needs a message (-m)")
    prefixes = None
    if paths:
        prefixes = sorted({repo.rel(p, cwd) for p in paths})
        for pre in filter(None, prefixes):
            safe_join(repo.root, pre)  # beyond a symlinked folder nothing is ours: exit 5, as git refuses
    with repo.lock():
        branch, head = refs.read_head(repo.catalog)
        old = head_manifest(repo.catalog) if head else {}
        files = walk(repo.root, IgnoreRules(repo.root), prefixes or ())
        add_tracked(repo.root, files, [p for p in old if p not in files and (not prefixes or under_any(p, prefixes))])
        if prefixes:
            _check_pathspecs(prefixes, files, old)
        cache = statcache.load_stat_cache(repo.catalog)
        ids, todo = classify(files, cache)
        # cached ids whose content is not stored yet (status hashed them) must be read too
        stored = q.known_files(repo.catalog, ids.values())
        todo += [p for p, fid in ids.items() if fid not in stored]
        todo = sorted(set(todo))
        with repo.store.writer() as writer:
            new_files, cache_rows = _ingest(repo, writer, files, todo, ids, progress)
            new = _apply(old, files, ids, prefixes)
            if new == old:
                writer.seal()  # nothing new can have been written; drop the empty pack
                statcache.update_stat_cache(repo.catalog, cache_rows)
                raise NothingToCommit("nothing to commit, working tree clean" if not prefixes
                                      else "nothing to commit in the given paths")
            result = _record(repo, writer, branch, head, old, new, new_files, cache_rows,
                             message.strip(), provenance)
        checkpoint("commit:recorded")
        return result


def _check_pathspecs(prefixes: list[str], files: dict[str, FileStat], old: Manifest) -> None:
    for pre in prefixes:
        if not any(under_any(p, [pre]) for p in files) and not any(under_any(p, [pre]) for p in old):
            raise UnknownRef(f"path '{pre or '.'}' matches no file in the working tree or HEAD")


def _ingest(repo: Repo, writer: StoreWriter, files: dict[str, FileStat], todo: list[str], ids: dict[str, str],
            progress: Progress | None) -> tuple[list[q.FileInfo], dict[str, StatEntry]]:
    """Chunk and store every file in ``todo``; returns file records and stat cache rows."""
    total = sum(files[p].size for p in todo)
    done = 0
    new_files: list[q.FileInfo] = []
    cache_rows: dict[str, StatEntry] = {}
    root = str(repo.root) + "/"
    links = [root + p for p in todo if files[p].mode == LINK_MODE]  # their content is their target text
    regular = (root + p for p in todo if files[p].mode != LINK_MODE)
    for full, recorded, digest in chain(writer.add_files(regular), writer.add_links(links)):
        path = full[len(root):]
        st = files[path]
        if digest is None:  # deleted since the walk
            del files[path]
            ids.pop(path, None)
            continue
        ids[path] = digest.id
        new_files.append(q.FileInfo(digest.id, digest.size, digest.chunk_ids))
        if digest.size == st.size:
            cache_rows[path] = StatEntry(st.size, st.mtime_ns, st.ino, digest.id, recorded)
        else:  # it changed while we read it; record what we read
            files[path] = type(st)(digest.size, st.mtime_ns, st.ino, st.mode)
        done += st.size
        if progress:
            progress("storing", done, total)
        checkpoint("commit:ingest")
    return new_files, cache_rows


def _apply(old: Manifest, files: dict[str, FileStat], ids: dict[str, str], prefixes: list[str] | None) -> Manifest:
    """HEAD's manifest with the working tree's state applied (within ``prefixes``)."""
    new = dict(old)
    for path in list(new):
        if path not in files and (prefixes is None or under_any(path, prefixes)):
            del new[path]
    for path, st in files.items():
        new[path] = ManifestEntry(ids[path], st.size, st.mode)
    return new


def _record(repo: Repo, writer: StoreWriter, branch: str | None, head: str | None, old: Manifest, new: Manifest,
            new_files: list[q.FileInfo], cache_rows: dict[str, StatEntry], message: str,
            provenance: dict | None) -> CommitResult:
    c = record_commit(repo, writer, branch, head, old, new, new_files, message, provenance, cache_rows)
    added = sum(1 for p in new if p not in old)
    modified = sum(1 for p in new if p in old and old[p] != new[p])
    deleted = sum(1 for p in old if p not in new)
    return CommitResult(c, len(new_files), writer.bytes_in, writer.bytes_stored, added, modified, deleted)
