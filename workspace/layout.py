"""Where things are in a workspace, and finding the workspace from any subfolder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from workspace.errors import NotAWorkspace, PathOutsideWorkspace

WS_DIR = ".ws"
HEAD_REF_PREFIX = "ref: refs/heads/"  # .ws/HEAD when HEAD is on a branch, as in git
TREE_TMP_PREFIX = ".ws-tmp-"  # files ws is writing (or putting aside) in the working tree; the walk skips them


class Layout:
    """The paths of one workspace (immutable; a plain class: ``ws status`` imports no dataclasses)."""

    __slots__ = ("root",)
    root: Path

    def __init__(self, root: Path) -> None:
        object.__setattr__(self, "root", root)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Layout is immutable: cannot set {name!r}")

    def __repr__(self) -> str:
        return f"Layout(root={self.root!r})"

    def __eq__(self, other: object) -> bool:
        return other.__class__ is Layout and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

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

    @property
    def head_file(self) -> Path:
        """``HEAD``: ``ref: refs/heads/<branch>`` or a commit id (detached), as in git."""
        return self.ws_dir / "HEAD"

    @property
    def heads_dir(self) -> Path:
        """``refs/heads/<branch>``: one small file per branch holding its commit id."""
        return self.ws_dir / "refs" / "heads"

    @property
    def releases_dir(self) -> Path:
        """``releases/<title>/<version>.json``: every local release record (the remote record format)."""
        return self.ws_dir / "releases"

    @property
    def watch_dir(self) -> Path:
        """``ws watch``'s lock (holding the daemon's pid), socket, log and barrier folder."""
        return self.ws_dir / "watch"

    @property
    def tree_tmp_dir(self) -> Path:
        """Notes of the folders where each writer puts ``.ws-tmp-`` files (one file per writer)."""
        return self.ws_dir / "tree-tmp"

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


# -- temporary files in the working tree ------------------------------------------------------
_host_tag: str | None = None
_TREE_TMP_RE = re.compile(r"\.ws-tmp-(\d+)(?:@([0-9a-f]{8}))?-(del|\d+)-(.+)", re.DOTALL)
_WRITER_RE = re.compile(r"(\d+)@([0-9a-f]{8})(?:-.*)?", re.DOTALL)


# The functional form, for ws status's start-up: see catalog/statcache.py.
TreeTempName = NamedTuple("TreeTempName", [
    ("pid", int),
    ("host", str | None),  # None: named by a ws that did not tag names with their machine
    ("parked", bool),  # a file put aside (to be deleted), not a file being written
    ("name", str),  # the real name it is written for, or was put aside from
])
TreeTempName.__doc__ = """What a ``.ws-tmp-`` name says: who wrote it, and which file it stands for."""


def host_tag() -> str:
    """8 hex digits naming this machine and its pid namespace: a pid means something only where it runs."""
    global _host_tag
    if _host_tag is None:
        import hashlib
        import socket

        try:
            namespace = os.stat("/proc/self/ns/pid").st_ino  # containers on one host have their own pids
        except OSError:
            namespace = 0
        _host_tag = hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]
    return _host_tag


def writer_id() -> str:
    """``<pid>@<host tag>``: this process, as temporary names and notes carry it."""
    return f"{os.getpid()}@{host_tag()}"


NAME_MAX = 255  # bytes in one file name on every common file system


def tree_temp_name(name: str, role: str) -> str:
    """``.ws-tmp-<pid>@<host>-<role>-<name>``; ``role`` is ``del`` for a file put aside, else a thread id.

    Shortened to fit NAME_MAX, so any name a commit holds can be staged: a
    shortened one keeps a hash of the whole name, so two long names that share
    their first bytes still get different temporary names.
    """
    import hashlib

    prefix = f"{TREE_TMP_PREFIX}{writer_id()}-{role}-"
    encoded = name.encode("utf-8", "surrogateescape")
    if len(prefix.encode()) + len(encoded) <= NAME_MAX:
        return prefix + name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    room = NAME_MAX - len(prefix.encode()) - len(digest) - 1
    return f"{prefix}{digest}-{encoded[:room].decode('utf-8', 'ignore')}"


def parse_tree_temp_name(name: str) -> TreeTempName | None:
    """The parts of a temporary name (also the untagged ``.ws-tmp-<pid>-...`` of older versions), else None."""
    m = _TREE_TMP_RE.fullmatch(name)
    if m is None:
        return None
    return TreeTempName(int(m.group(1)), m.group(2), m.group(3) == "del", m.group(4))


def parse_writer_id(text: str) -> tuple[int, str] | None:
    """(pid, host tag) of a note's name ``<pid>@<host>[-...]``, else None."""
    m = _WRITER_RE.fullmatch(text)
    return (int(m.group(1)), m.group(2)) if m else None
