"""Working-tree changes that can be undone until the commit they belong to is recorded.

git's order, applied to the working tree: write everything that can fail
first, record the commit, then move files into place with renames.
:meth:`StagedTree.prepare` checks every destination, puts each file to remove
aside under a temporary name next to it, creates missing folders and writes
every new file under a temporary name in its final folder (verified against
its SHA-256). Until :meth:`apply`, :meth:`undo` restores the tree exactly. What
:meth:`apply` does after the commit is recorded is only unlinks, removal of
emptied folders and renames within one folder.

Temporary names start with ``.ws-tmp-``, which status and commit never see; their folders
are noted (workspace.tree.leftovers) so that a killed transaction's files are cleaned up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from catalog import objects as q
from catalog.statcache import ManifestEntry, StatEntry
from workspace.errors import DamagedObjectError, UncommittedChanges
from workspace.layout import safe_join, tree_temp_name
from workspace.objects.store import DamagedObject
from workspace.repo import Repo
from workspace.tree.leftovers import noting_temp_folders, parent_folders


class StagedTree:
    """Files to write and paths to remove, staged so that nothing is half-done on failure."""

    def __init__(self, repo: Repo, writes: dict[str, ManifestEntry], removals: list[str],
                 infos: dict[str, q.FileInfo], locs: dict[str, q.ChunkLocation]):
        """``infos`` and ``locs`` describe the content of every write (it may not be in the catalog yet)."""
        self.repo = repo
        self.writes = writes
        self.removals = removals
        self.infos = infos
        self.locs = locs
        self._parked: list[tuple[Path, Path]] = []  # (real path, temporary name)
        self._made: list[Path] = []  # folders we created, outermost first
        self._staged: list[tuple[str, Path, str]] = []  # (path, destination, temporary name)
        self._recorded: dict[str, int] = {}
        self._applying = False
        self._note = None  # noting_temp_folders(), from prepare() until apply() or undo()

    def __enter__(self) -> "StagedTree":
        self.prepare()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self._applying:  # the commit was not recorded: undo
            self.undo()

    # -- before the commit is recorded --------------------------------------
    def prepare(self) -> None:
        """Check destinations, park removals, make folders, stage content; undone entirely on failure."""
        self._check()
        # a note of where our .ws-tmp- files go, so that the next writer cleans up if we are killed
        self._note = noting_temp_folders(self.repo, parent_folders([*self.removals, *self.writes]))
        self._note.__enter__()
        try:
            for path in sorted(self.removals):
                self._park(safe_join(self.repo.root, path))
            for path in sorted(self.writes):
                self._stage(path, self.writes[path])
        except BaseException:
            self.undo()
            raise

    def _check(self) -> None:
        """Refuse destinations that hold a folder of other files, or lie below an untracked file."""
        removing = set(self.removals)
        root = self.repo.root
        for path in self.writes:
            dest = safe_join(root, path)
            if dest.is_dir() and not dest.is_symlink():
                for folder, _dirs, names in os.walk(dest):
                    for name in names:
                        rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                        if rel not in removing:
                            raise UncommittedChanges(f"'{path}' is a folder holding files this transaction "
                                                     f"does not remove ({rel}); move them away first")
            parts = path.split("/")
            for i in range(1, len(parts)):
                above = "/".join(parts[:i])
                full = root / above
                if (full.is_file() or full.is_symlink()) and above not in removing:
                    raise UncommittedChanges(f"'{above}' is a file where '{path}' needs a folder; move it away first")

    def _park(self, full: Path) -> None:
        tmp = full.with_name(tree_temp_name(full.name, "del"))
        try:
            os.rename(full, tmp)
        except FileNotFoundError:
            return
        self._parked.append((full, tmp))

    def _stage(self, path: str, entry: ManifestEntry) -> None:
        dest = safe_join(self.repo.root, path)
        self._make_folder(dest.parent)
        self._recorded[path] = time.time_ns()
        try:
            tmp = self.repo.store.stage_file(self.infos[entry.file_id], str(dest), entry.mode, self.locs)
        except DamagedObject as exc:
            raise DamagedObjectError(f"cannot write '{path}': {exc}") from exc
        self._staged.append((path, dest, tmp))

    def _make_folder(self, folder: Path) -> None:
        missing = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for f in reversed(missing):
            os.mkdir(f)
            self._made.append(f)

    def undo(self) -> None:
        """Put the tree back as it was before :meth:`prepare` (best effort, in reverse order)."""
        for _path, _dest, tmp in self._staged:
            Path(tmp).unlink(missing_ok=True)
        self._staged = []
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:
                pass
        self._made = []
        for full, tmp in reversed(self._parked):
            os.rename(tmp, full)
        self._parked = []
        self._drop_note()

    def _drop_note(self) -> None:
        if self._note is not None:
            note, self._note = self._note, None
            note.__exit__(None, None, None)

    # -- after the commit is recorded ---------------------------------------
    def apply(self) -> dict[str, StatEntry]:
        """Drop parked files and emptied folders, rename staged files into place; their stat rows.

        Call it only after the commit is recorded: from here on nothing is undone.
        """
        self._applying = True
        for full, tmp in self._parked:
            Path(tmp).unlink(missing_ok=True)
            _remove_empty_parents(full.parent, self.repo.root)
        self._parked = []
        rows: dict[str, StatEntry] = {}
        for path, dest, tmp in self._staged:
            os.replace(tmp, dest)
            st = os.lstat(dest)  # a symlink's own stat, as the walk sees it
            rows[path] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, self.writes[path].file_id,
                                   self._recorded[path])
        self._staged = []
        self._drop_note()
        return rows


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent
