"""Temporary files that killed writers left in the working tree, and removing them.

Everything that writes the working tree (pull, checkout, restore, a
transaction) holds the workspace lock, writes each file under a temporary name
in its folder, ``.ws-tmp-<pid>@<host>-<thread>-<name>``, and puts files it
deletes aside as ``.ws-tmp-<pid>@<host>-del-<name>`` (see
:mod:`workspace.layout`). Before the first of them it notes their folders in
``.ws/tree-tmp/<pid>@<host>-<random>``, and removes the note once it is done.
A note that outlives its writer (kill -9, a crash) says where that process may
have left files, so the next writer finds them without walking the tree.

Only files of processes that are gone are touched, and only those of this
machine: a pid is checked where it runs (another machine's, or another pid
namespace's, may be alive). A file being written is removed; a file put aside
is renamed back when HEAD still has it and its place is free (the transaction
that put it aside never recorded its commit), else removed (it did: the file
is deleted, and its content is in history either way).
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from workspace.errors import PathOutsideWorkspace
from workspace.history.manifest import Manifest, head_manifest
from workspace.layout import (TREE_TMP_PREFIX, WS_DIR, TreeTempName, host_tag, parse_tree_temp_name,
                              parse_writer_id, safe_join, writer_id)
from workspace.lock import process_alive
from workspace.repo import Repo

_SEP = "\0"  # folder names may hold newlines, never NUL


@contextmanager
def noting_temp_folders(repo: Repo, folders: Iterable[str]) -> Iterator[None]:
    """Note, for the time of the block, the folders (workspace-relative, ``""`` the root) where this
    process puts ``.ws-tmp-`` files. Hold the workspace lock around it."""
    notes = repo.layout.tree_tmp_dir
    notes.mkdir(exist_ok=True)
    note = notes / f"{writer_id()}-{uuid.uuid4().hex[:8]}"
    note.write_text("".join(f + _SEP for f in sorted(set(folders))), encoding="utf-8",
                    errors="surrogateescape")
    try:
        yield
    finally:
        note.unlink(missing_ok=True)


def parent_folders(paths: Iterable[str]) -> set[str]:
    """The folders (``""`` the root) holding these workspace-relative paths."""
    return {p.rpartition("/")[0] for p in paths}


def remove_dead_temp_files(repo: Repo, everywhere: bool = False) -> int:
    """Remove (or put back) the ``.ws-tmp-`` files of writers that died on this machine; returns how many.

    Looks in the folders their notes name; with ``everywhere`` (``ws gc``)
    it also walks the whole tree, which finds files no note names (left by
    an older ws, or by a machine that crashed before the note reached the
    disk). Call it with the workspace lock held: no live writer of this
    workspace can then be between two of its files.
    """
    cleaner = _Cleaner(repo)
    me = host_tag()
    notes = repo.layout.tree_tmp_dir
    for note in sorted(notes.iterdir()) if notes.is_dir() else ():
        owner = parse_writer_id(note.name)
        if owner is None or owner[1] != me or process_alive(owner[0]):
            continue
        pid, host = owner
        try:
            folders = note.read_text(encoding="utf-8", errors="surrogateescape").split(_SEP)[:-1]
        except OSError:
            continue
        for folder in folders:
            cleaner.clean(folder, lambda t, pid=pid, host=host: t.pid == pid and t.host == host)
        note.unlink(missing_ok=True)
    if everywhere:
        def dead_here(t: TreeTempName) -> bool:  # untagged names (older ws) are taken to be this machine's
            return t.host in (me, None) and not process_alive(t.pid)

        for folder in _all_folders(repo.root):
            cleaner.clean(folder, dead_here)
    return cleaner.count


class _Cleaner:
    """Removes or puts back temporary files, folder by folder; counts what it did."""

    def __init__(self, repo: Repo):
        self.repo = repo
        self.count = 0
        self._head: Manifest | None = None

    def clean(self, folder: str, select: Callable[[TreeTempName], bool]) -> None:
        base = self._folder(folder)
        if base is None:
            return
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for entry in entries:
            if not entry.name.startswith(TREE_TMP_PREFIX) or entry.is_dir(follow_symlinks=False):
                continue
            temp = parse_tree_temp_name(entry.name)
            if temp is None or not select(temp):
                continue
            if temp.parked and self._put_back(base, folder, entry.name, temp.name):
                pass
            else:
                Path(entry.path).unlink(missing_ok=True)
            self.count += 1

    def _put_back(self, base: Path, folder: str, temp_name: str, name: str) -> bool:
        """Rename a file put aside back to its name if HEAD has it and the name is free."""
        rel = f"{folder}/{name}" if folder else name
        if self._head is None:
            self._head = head_manifest(self.repo.catalog)
        if rel not in self._head or os.path.lexists(base / name):
            return False
        os.rename(base / temp_name, base / name)
        return True

    def _folder(self, folder: str) -> Path | None:
        """The folder on disk, or None when a note names something unsafe (outside, a symlinked parent)."""
        if not folder:
            return self.repo.root
        try:
            return safe_join(self.repo.root, folder + "/x").parent
        except PathOutsideWorkspace:
            return None


def _all_folders(root: Path) -> Iterator[str]:
    """Every folder of the working tree (workspace-relative), ``.ws/`` and symlinked folders excepted."""
    for top, dirs, _files in os.walk(root):
        if top == str(root):
            dirs[:] = [d for d in dirs if d != WS_DIR]
        rel = os.path.relpath(top, root)
        yield "" if rel == "." else rel.replace(os.sep, "/")
