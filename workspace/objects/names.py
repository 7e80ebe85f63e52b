"""Symbolic links in the working tree: which ones can be made (temporary names are workspace.layout's).

Kept apart from the store so that checking a release record (before any
download) does not import the chunker.
"""

from __future__ import annotations

import os

from workspace.errors import SymlinksNotSupported
from workspace.layout import NAME_MAX  # noqa: F401  (re-exported: record checks use it)

MAX_LINK_TARGET = 4095  # PATH_MAX - 1: the longest target a symbolic link can have on Linux


def symlinks_supported() -> bool:
    """Whether this system can create symbolic links (Windows without the privilege cannot)."""
    return hasattr(os, "symlink") and os.name == "posix"


def require_symlinks(what: str, paths: list[str]) -> None:
    """Refuse, in one line, to write symbolic links where this system cannot create them."""
    if not symlinks_supported():
        shown = ", ".join(f"'{p}'" for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise SymlinksNotSupported(f"{what} holds symbolic links ({shown}), which this system cannot create; "
                                   "nothing was written")
