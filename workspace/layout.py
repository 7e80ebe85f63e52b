"""Where things are in a workspace, and finding the workspace from any subfolder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workspace.errors import NotAWorkspace, PathOutsideWorkspace

WS_DIR = ".ws"


@dataclass(frozen=True)
class Layout:
    """The paths of one workspace."""

    root: Path

    @property
    def ws_dir(self) -> Path:
        return self.root / WS_DIR

    @property
    def catalog(self) -> Path:
        return self.ws_dir / "catalog.db"

    @property
    def objects(self) -> Path:
        return self.ws_dir / "objects"

    @property
    def config(self) -> Path:
        return self.ws_dir / "config.toml"

    @property
    def lock(self) -> Path:
        return self.ws_dir / "lock"

    @property
    def pack_lock(self) -> Path:
        return self.ws_dir / "packs.lock"

    @property
    def jobs_dir(self) -> Path:
        return self.ws_dir / "jobs"

    def rel(self, path: str | os.PathLike, cwd: str | os.PathLike | None = None) -> str:
        """A user-given path as a workspace-relative POSIX path ('' for the root).

        Relative paths are taken from ``cwd`` (default: the process's). Raises
        PathOutsideWorkspace for anything that lands outside the root or inside .ws/.
        """
        base = Path(cwd) if cwd is not None else Path.cwd()
        p = Path(path)
        full = Path(os.path.normpath(p if p.is_absolute() else base / p))
        try:
            rel = full.relative_to(self.root)
        except ValueError:
            # the root itself may be reached through a symlink
            try:
                rel = Path(os.path.realpath(full)).relative_to(os.path.realpath(self.root))
            except ValueError:
                raise PathOutsideWorkspace(f"path '{path}' is outside the workspace {self.root}") from None
        text = rel.as_posix()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise PathOutsideWorkspace(f"path {path!r} is not valid UTF-8; ws stores paths as text") from None
        if text == ".":
            return ""
        if text == WS_DIR or text.startswith(WS_DIR + "/"):
            raise PathOutsideWorkspace(f"path '{path}' is inside {WS_DIR}/, which ws manages itself")
        return text


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds a ws ``.ws/`` folder.

    A ``.ws/`` counts when it holds the catalog, the config or the object store,
    so a workspace whose catalog was deleted is still found (and then refused
    with advice by the catalog) instead of being mistaken for no workspace.
    """
    here = Path(os.path.abspath(start if start is not None else os.getcwd()))
    for candidate in (here, *here.parents):
        if is_ws_dir(candidate / WS_DIR):
            return candidate
    raise NotAWorkspace(f"not a ws workspace (or any parent up to /): {here}; run 'ws init' first")


def is_ws_dir(path: Path) -> bool:
    """Whether ``path`` is a ws metadata folder (not just any folder named .ws)."""
    return path.is_dir() and any((path / name).exists() for name in ("catalog.db", "config.toml", "objects"))


def check_rel(rel: str) -> list[str]:
    """The parts of a stored relative path; PathOutsideWorkspace for one that is absolute, has NUL,
    empty, '.' or '..' parts, or starts with .ws/ (the text alone; safe_join also checks the disk)."""
    if not rel or rel.startswith("/") or "\x00" in rel:
        raise PathOutsideWorkspace(f"refusing unsafe path {rel!r}")
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] == WS_DIR:
        raise PathOutsideWorkspace(f"refusing unsafe path {rel!r}")
    return parts


def safe_join(root: Path, rel: str) -> Path:
    """Join a stored relative path onto the root, refusing anything that escapes it.

    Stored paths come from commits and remote releases, so they are untrusted:
    absolute paths, '..' parts, and parents that are symlinks are all refused.
    """
    parts = check_rel(rel)
    cur = root
    for part in parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            raise PathOutsideWorkspace(f"refusing path {rel!r}: '{cur.relative_to(root)}' is a symlink")
    return root / rel
