"""The repository handle: one open workspace, made once per command and passed down.

A :class:`Repo` holds what every capability needs: the root and its layout,
the configuration (read on first use, reloadable), the catalog connection, the
chunk store (imported on first use: ``ws status`` never needs it), the
workspace lock and the pack guard. Modules below the porcelain take a ``Repo``
(or the narrower piece they use: a ``Catalog``, an ``ObjectStore``, a
``Layout``), never an untyped workspace object.

:class:`workspace.api.Workspace` is a ``Repo`` with one method per verb, so a
``Workspace`` can be passed wherever a ``Repo`` is expected.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from catalog import history as history_queries
from catalog.db import Catalog
from catalog.errors import CatalogError
from workspace import config as config_mod
from workspace.errors import AlreadyAWorkspace, InvalidArgument, WorkspaceError, reporting_no_space
from workspace.layout import HEAD_REF_PREFIX, WS_DIR, Layout, find_root
from workspace.lock import pack_guard, workspace_lock
from workspace.objects.durable import write_atomic

if TYPE_CHECKING:
    from typing import TypeVar

    from workspace.objects.store import ObjectStore

    # for type checkers only: at run time a string bound is a ForwardRef, which calls compile(), and
    # the first compile() of a process costs ~10 M instructions (it sets up the ast module)
    R = TypeVar("R", bound="Repo")

HEAD_KEY = "HEAD"  # the catalog meta row naming HEAD: "ref:<branch>" or a commit id
DEFAULT_BRANCH = "main"


class Repo:
    """One workspace: paths, config, catalog, chunk store and locks."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(root))
        self.layout = Layout(self.root)
        self.catalog = Catalog(self.layout.catalog)
        self._store: ObjectStore | None = None
        self._config: dict | None = None

    # -- making and opening -------------------------------------------------
    @classmethod
    def init(cls: type[R], path: str | os.PathLike = ".", *, files: dict[str, bytes] | None = None,
             spec_folder: bool = False) -> R:
        """Make ``path`` a workspace: ``.ws/`` with catalog.db, objects/ and config.toml.

        ``files`` are written into ``.ws/`` before it appears (``ws clone``'s
        marker), so no crash can leave the folder without them. With
        ``spec_folder`` (what ``ws init`` asks for), an empty ``jobs/`` is made
        for job specs unless something named so is already there.
        """
        root = Path(os.path.abspath(path))
        if (root / WS_DIR).exists():
            raise AlreadyAWorkspace(f"{root} is already a ws workspace" + _catalog_advice(root))
        try:
            outer = find_root(root.parent) if root.parent != root else None
        except WorkspaceError:
            outer = None
        if outer is not None:
            raise AlreadyAWorkspace(f"{root} is inside the workspace {outer}; nested workspaces are not supported")
        if root.exists() and not root.is_dir():
            raise InvalidArgument(f"{root} is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / (WS_DIR + f".init-{os.getpid()}")
        # build .ws under a temporary name so a crash never leaves a half-made workspace
        try:
            with reporting_no_space(root):
                (tmp / "objects" / "packs").mkdir(parents=True)
                config_mod.save(tmp / "config.toml", dict(config_mod.DEFAULTS))
                write_atomic(tmp / "HEAD", f"{HEAD_REF_PREFIX}{DEFAULT_BRANCH}\n".encode())
                _new_catalog(tmp / "catalog.db")
                for name, data in (files or {}).items():
                    (tmp / name).write_bytes(data)
                os.rename(tmp, root / WS_DIR)
        except BaseException:
            import shutil  # (not at import: shutil pulls in bz2 and lzma, and ws status opens a Repo)

            shutil.rmtree(tmp, ignore_errors=True)  # a full disk, say: leave the folder as it was
            raise
        if spec_folder and not os.path.lexists(root / "jobs"):
            try:
                (root / "jobs").mkdir()  # where `ws run NAME` looks for jobs/NAME.yaml
            except OSError:
                pass  # a convenience only: the workspace is made
        return cls(root)

    @classmethod
    def open(cls: type[R], path: str | os.PathLike | None = None) -> R:
        """The workspace at or above ``path`` (default: the current folder).

        A missing, empty, truncated or foreign catalog raises CatalogCorrupt
        (exit 6) naming ``ws fsck --rebuild-catalog``; it is never re-created.
        """
        repo = cls(find_root(path))
        repo.catalog.ensure_schema()
        return repo

    def close(self) -> None:
        """Release open files and connections."""
        if self._store is not None:
            self._store.close()
        self.catalog.close()

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the pieces -----------------------------------------------------------
    @property
    def store(self) -> ObjectStore:
        """The local chunk store (imported on first use: status does not need it)."""
        if self._store is None:
            from workspace.objects.store import ObjectStore

            self._store = ObjectStore(self.layout.objects, self.catalog)
        return self._store

    @property
    def config(self) -> dict:
        """The parsed ``.ws/config.toml``."""
        if self._config is None:
            self._config = config_mod.load(self.layout.config)
        return self._config

    def reload_config(self) -> dict:
        """A fresh copy of ``.ws/config.toml`` (another process may have changed it since we read it)."""
        self._config = None
        return dict(self.config)

    def save_config(self, data: dict) -> None:
        """Replace ``.ws/config.toml``."""
        config_mod.save(self.layout.config, data)
        self._config = data

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the workspace write lock."""
        with workspace_lock(self.layout.lock, timeout):
            yield

    @contextmanager
    def pack_guard(self, exclusive: bool = False, timeout: float | None = None) -> Iterator[None]:
        """Hold the pack guard: shared while reading local packs (push, pull), exclusive in gc.

        Lock order everywhere: the pack guard first, then the workspace lock.
        """
        with pack_guard(self.layout.pack_lock, exclusive, timeout):
            yield

    def rel(self, path: str | os.PathLike, cwd: str | os.PathLike | None = None) -> str:
        """A user path as a workspace-relative POSIX path (refusing paths outside)."""
        return self.layout.rel(path, cwd)


def _new_catalog(path: Path) -> None:
    """An empty catalog with HEAD attached to the default branch (the encoding workspace.history.refs reads)."""
    cat = Catalog(path)
    try:
        cat.ensure_schema(create=True)
        history_queries.set_meta(cat, HEAD_KEY, f"ref:{DEFAULT_BRANCH}")
    finally:
        cat.close()
    for leftover in (path.name + "-wal", path.name + "-shm"):
        (path.parent / leftover).unlink(missing_ok=True)


def _catalog_advice(root: Path) -> str:
    """For ``ws init`` on an existing workspace whose catalog cannot be used: say how to recover."""
    cat = Catalog(root / WS_DIR / "catalog.db")
    try:
        cat.ensure_schema()
    except CatalogError as exc:
        return f", but {str(exc).replace('the catalog ', 'its catalog ', 1)}"
    finally:
        cat.close()
    return ""
