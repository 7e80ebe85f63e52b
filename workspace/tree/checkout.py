"""Moving the working tree: checkout, switch and restore.

Files are written by :mod:`workspace.tree.write`: each to a temporary name in
its folder, verified, renamed into place; all needed content is checked to be
present before the first file is touched.
"""

from __future__ import annotations

from catalog import history, statcache
from catalog.statcache import ManifestEntry
from workspace import pathspecs
from workspace.errors import UnknownRef
from workspace.history import refs
from workspace.history.manifest import get_commit, manifest
from workspace.repo import Repo
from workspace.tree.leftovers import remove_dead_temp_files
from workspace.tree.scan import working_ids
from workspace.tree.write import check_destinations, dirty_error, ensure_available, remove_file, write_files
from workspace.types import Commit, Progress


def checkout(repo: Repo, ref: str, *, force: bool = False, progress: Progress | None = None) -> Commit:
    """Make the working tree match ``ref``. A branch name attaches HEAD; anything else detaches it."""
    cat = repo.catalog
    is_branch = history.get_ref(cat, ref) is not None
    target_id = refs.resolve(cat, ref)
    with repo.lock():
        target = get_commit(cat, target_id)
        cat.check_writable()  # HEAD must move after the tree: a read-only catalog refuses before any file
        remove_dead_temp_files(repo)  # what a killed writer left, before the tree is compared
        _move_tree(repo, target_id, force, progress, what=f"checkout of {ref}")
        if is_branch:
            refs.set_head_branch(repo, ref)
        else:
            refs.set_head_detached(repo, target_id)
    return target


def switch(repo: Repo, branch: str, *, create: bool = False, force: bool = False) -> Commit | None:
    """Switch to ``branch``; with ``create`` make it at HEAD first (no files change then)."""
    cat = repo.catalog
    if create:
        with repo.lock():
            refs.check_new_branch(repo, branch)
            _, head = refs.read_head(cat)
            if head is not None:
                refs.set_branch(repo, branch, head)
            refs.set_head_branch(repo, branch)
        return get_commit(cat, head) if head else None
    if history.get_ref(cat, branch) is None:
        raise UnknownRef(f"unknown branch '{branch}' (use 'ws switch -c {branch}' to create it)")
    return checkout(repo, branch, force=force)


def _move_tree(repo: Repo, target_id: str, force: bool, progress: Progress | None, what: str) -> None:
    old = manifest(repo.catalog, "HEAD")
    new = manifest(repo.catalog, target_id)
    ids, files = working_ids(repo, head=old)
    dirty = {p for p in old if ids.get(p) != old[p].file_id or (p in files and files[p].mode != old[p].mode)}

    def at_target(p: str) -> bool:  # already as the target has it: moving it loses nothing
        if p not in new:
            return p not in ids
        return ids.get(p) == new[p].file_id and files[p].mode == new[p].mode

    # a change that is the target's own (a checkout interrupted by a full disk, say) is no conflict
    conflicts = [p for p in dirty if new.get(p) != old[p] and not at_target(p)]
    conflicts += [p for p in ids if p not in old and p in new and ids[p] != new[p].file_id]
    if conflicts and not force:
        raise dirty_error(sorted(conflicts), what)

    def needs_write(p: str, e: ManifestEntry) -> bool:
        if p in ids and ids[p] == e.file_id and files[p].mode == e.mode:
            return False
        # a local change to a file the target does not change is carried over, as git does
        return force or p not in dirty or new.get(p) != old.get(p)

    to_write = {p: e for p, e in new.items() if needs_write(p, e)}
    to_delete = [p for p in old if p not in new and p in ids]
    check_destinations(repo, to_write, set(to_delete))
    ensure_available(repo, to_write)
    for path in to_delete:
        remove_file(repo, path)
    written = write_files(repo, to_write, progress)
    statcache.update_stat_cache(repo.catalog, written, to_delete)
    statcache.replace_head_manifest(repo.catalog, target_id, new)


def restore(repo: Repo, paths: list[str], source: str = "HEAD", *, cwd: str | None = None) -> list[str]:
    """Write ``source``'s version of the given files or folders (pathspecs: :mod:`workspace.pathspecs`)
    over the working tree; a pathspec that matches no file of ``source`` is UnknownRef (exit 4)."""
    files = manifest(repo.catalog, source)
    chosen: dict[str, ManifestEntry] = {}
    for arg in paths:
        pattern = pathspecs.resolve(arg, lambda p: repo.rel(p, cwd))
        spec = pathspecs.compile([pattern])
        hits = {p: e for p, e in files.items() if spec.matches(p)}
        if not hits:
            if pathspecs.is_literal(arg):
                raise UnknownRef(f"path '{pattern or '.'}' does not exist in {source}")
            raise UnknownRef(f"pattern '{arg}' matches no file in {source}")
        chosen.update(hits)
    with repo.lock():
        ensure_available(repo, chosen)
        repo.catalog.check_writable()  # refuse before any file is written, not after
        remove_dead_temp_files(repo)
        rows = write_files(repo, chosen, None)
        statcache.update_stat_cache(repo.catalog, rows)
    return sorted(chosen)
