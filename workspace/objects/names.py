"""Names and links in the working tree: temporary names that fit, and which symbolic links can be made.

Kept apart from the store so that checking a release record (before any
download) does not import the chunker.
"""

from __future__ import annotations

import hashlib
import os

from workspace.errors import SymlinksNotSupported

MAX_LINK_TARGET = 4095  # PATH_MAX - 1: the longest target a symbolic link can have on Linux
NAME_MAX = 255  # bytes in one file name on every common file system


def temp_name(tag: str, name: str) -> str:
    """``.ws-tmp-<pid>-<tag>-<name>``, shortened to fit NAME_MAX: any name a commit holds can be staged.

    A shortened one keeps a hash of the whole name, so two long names that
    share their first bytes still get different temporary names.
    """
    prefix = f".ws-tmp-{os.getpid()}-{tag}-"
    full = prefix + name
    encoded = name.encode("utf-8", "surrogateescape")
    if len(prefix.encode()) + len(encoded) <= NAME_MAX:
        return full
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    room = NAME_MAX - len(prefix.encode()) - len(digest) - 1
    return f"{prefix}{digest}-{encoded[:room].decode('utf-8', 'ignore')}"


def symlinks_supported() -> bool:
    """Whether this system can create symbolic links (Windows without the privilege cannot)."""
    return hasattr(os, "symlink") and os.name == "posix"


def require_symlinks(what: str, paths: list[str]) -> None:
    """Refuse, in one line, to write symbolic links where this system cannot create them."""
    if not symlinks_supported():
        shown = ", ".join(f"'{p}'" for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise SymlinksNotSupported(f"{what} holds symbolic links ({shown}), which this system cannot create; "
                                   "nothing was written")
