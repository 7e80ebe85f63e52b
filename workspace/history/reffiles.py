"""Branch heads and HEAD as small files under ``.ws/``, as git keeps them.

The catalog indexes refs for fast reads, but it is never their only copy:
``.ws/HEAD`` holds ``ref: refs/heads/<branch>`` (or a commit id when
detached) and ``.ws/refs/heads/<branch>`` holds the branch's commit id. Each
is written atomically (a temporary file in the same folder, fsync, rename,
fsync of the folder) BEFORE the catalog row that indexes it, so after a crash
the files are the truth and the catalog catches up
(:mod:`workspace.history.reconcile`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from catalog import history
from workspace.errors import DamagedObjectError, InvalidArgument
from workspace.layout import HEAD_REF_PREFIX as _REF_PREFIX, Layout
from workspace.objects.durable import fsync_dir, write_atomic
from workspace.repo import DEFAULT_BRANCH, HEAD_KEY, Repo

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def write_head(layout: Layout, branch: str | None, commit_id: str | None = None) -> None:
    """Attach HEAD to ``branch``, or detach it at ``commit_id`` (branch None)."""
    text = f"{_REF_PREFIX}{branch}\n" if branch is not None else f"{commit_id}\n"
    write_atomic(layout.head_file, text.encode())


def read_head(layout: Layout) -> tuple[str | None, str | None] | None:
    """(branch, None) or (None, commit id) from ``.ws/HEAD``; None when the file does not exist."""
    try:
        text = layout.head_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if text.startswith(_REF_PREFIX) and len(text) > len(_REF_PREFIX):
        return text[len(_REF_PREFIX):], None
    if _HEX64.match(text):
        return None, text
    raise DamagedObjectError(f"{layout.head_file} is damaged ({text[:60]!r}); run 'ws fsck --rebuild-catalog'")


def _ref_path(layout: Layout, branch: str) -> Path:
    return layout.heads_dir / branch


def check_free(layout: Layout, branch: str) -> None:
    """Refuse a branch name whose file would collide with an existing one (``a`` and ``a/b``), as git does."""
    path = _ref_path(layout, branch)
    if path.is_dir():
        raise InvalidArgument(f"cannot create branch '{branch}': branches named '{branch}/...' exist")
    for parent in path.relative_to(layout.heads_dir).parents:
        if str(parent) != "." and (layout.heads_dir / parent).is_file():
            raise InvalidArgument(f"cannot create branch '{branch}': a branch named '{parent}' exists")


def write_ref(layout: Layout, branch: str, commit_id: str) -> None:
    """Point a branch's file at a commit."""
    write_atomic(_ref_path(layout, branch), f"{commit_id}\n".encode())


def delete_ref(layout: Layout, branch: str) -> None:
    """Remove a branch's file (and folders its name left empty)."""
    path = _ref_path(layout, branch)
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != layout.heads_dir and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    fsync_dir(str(parent))


def read_refs(layout: Layout) -> dict[str, str]:
    """Every branch file as name -> commit id (a damaged file is an error naming it)."""
    out: dict[str, str] = {}
    top = layout.heads_dir
    if not top.is_dir():
        return out
    for folder, _dirs, names in os.walk(top):
        for name in names:
            if name.startswith("."):
                continue  # a temporary file of a writer
            path = Path(folder) / name
            text = path.read_text(encoding="utf-8").strip()
            if not _HEX64.match(text):
                raise DamagedObjectError(f"{path} is damaged ({text[:60]!r}); run 'ws fsck --rebuild-catalog'")
            out[str(path.relative_to(top))] = text
    return out


def head_value(branch: str | None, commit_id: str | None) -> str:
    """HEAD as the catalog's meta row holds it: ``ref:<branch>`` or a commit id."""
    return f"ref:{branch}" if branch is not None else str(commit_id)


def in_sync(repo: Repo) -> bool:
    """Whether ``.ws/HEAD`` and ``.ws/refs/heads/`` say what the catalog says (two small reads, one query)."""
    head = read_head(repo.layout)
    if head is None:
        return False
    cat = repo.catalog
    if head_value(*head) != (history.get_meta(cat, HEAD_KEY) or f"ref:{DEFAULT_BRANCH}"):
        return False
    return read_refs(repo.layout) == dict(history.list_refs(cat))


def put_back(path: Path, data: bytes) -> None:
    """Undo a ref move: atomically if the disk allows, else in place.

    A ref's content has a fixed length (a commit id and a newline), so writing
    it over the newer one in place needs no new disk block: it works on the
    full disk that made the catalog refuse the commit being undone.
    """
    try:
        write_atomic(path, data)
    except OSError:
        with open(path, "r+b") as f:
            if len(f.read()) != len(data):
                raise
            f.seek(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def ref_path(layout: Layout, branch: str | None) -> Path:
    """The file of a branch, or ``.ws/HEAD`` for a detached HEAD (branch None)."""
    return layout.head_file if branch is None else _ref_path(layout, branch)
