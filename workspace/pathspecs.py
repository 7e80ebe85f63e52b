"""Pathspecs: the one way ``ws ls``, ``status``, ``restore``, ``diff`` and job spec inputs match paths.

The rules (documented for users once, in docs/guide.md, "Paths and patterns"):

- A pattern without ``*``, ``?`` or ``[`` is a path: it matches that file, or
  every file below that folder (as git's pathspecs).
- A pattern with one is git's wildmatch, the syntax of ``.gitignore`` and
  ``.wsignore`` (pathspec's ``gitwildmatch``, called ``gitignore`` since pathspec 1.0): ``*``, ``?`` and ``[...]``
  never match ``/``; ``**`` matches any number of folders (``data/**/*.txt``,
  ``**/labels.csv``); a pattern with a ``/`` in it is anchored (``data/*.txt``
  is ``data/a.txt``, not ``data/sub/y.txt``); a pattern without one matches a
  file name at any depth (``'*.csv'``); a pattern that matches a folder
  matches every file below it.

Patterns given on the command line are relative to the current folder
(:func:`resolve`); those of job specs and ``ws ls`` to the workspace root.
``pathspec`` (~50 ms to import) is imported only when a pattern has a
wildcard, so ``ws status`` without patterns never pays for it.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

WILDCARDS = re.compile(r"[*?\[]")


def is_literal(pattern: str) -> bool:
    """True for a plain path (no ``*``, ``?`` or ``[``)."""
    return not WILDCARDS.search(pattern)


def static_prefix(pattern: str) -> str:
    """The folder part of a pattern before its first wildcard ('' when there is none: anywhere)."""
    m = WILDCARDS.search(pattern)
    if not m:
        return pattern.strip("/")
    head = pattern[: m.start()]
    return head.rsplit("/", 1)[0].strip("/") if "/" in head else ""


def resolve(pattern: str, rel: Callable[[str], str]) -> str:
    """A pattern given relative to the current folder as one relative to the workspace root.

    ``rel`` turns a path into a workspace-relative one (``Repo.rel`` with the
    caller's folder; it refuses paths outside the workspace). A wildcard
    pattern without ``/`` given in a subfolder matches names at any depth
    below that folder (``*.txt`` in ``sub`` is ``sub/**/*.txt``).
    """
    if is_literal(pattern):
        return rel(pattern)
    trailing = "/" if pattern.endswith("/") else ""
    if "/" not in pattern.rstrip("/"):
        folder = rel(".")
        return f"{folder}/**/{pattern}" if folder else pattern
    return rel(pattern) + trailing


def wildmatch(patterns: list[str]):
    """``patterns`` in git's wildmatch syntax as a ``pathspec.PathSpec`` (``.match_file(path)``)."""
    import pathspec  # ~50 ms: only when a pattern has a wildcard

    try:
        return pathspec.PathSpec.from_lines("gitignore", patterns)
    except KeyError:  # pathspec < 1.0 knows the same syntax only as 'gitwildmatch'
        return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


class Pathspec:
    """Workspace-relative patterns compiled once: ``spec.matches(path)``."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns = [p for p in patterns]
        self._paths = [p.strip("/") for p in self.patterns if is_literal(p)]
        globs = [p for p in self.patterns if not is_literal(p)]
        self._globs = wildmatch(globs) if globs else None

    def matches(self, path: str) -> bool:
        """Whether a workspace-relative file path is matched by any of the patterns."""
        for p in self._paths:
            if not p or path == p or path.startswith(p + "/"):
                return True
        return self._globs is not None and self._globs.match_file(path)

    def prefixes(self) -> list[str]:
        """Folders below which every match lies ('' for anywhere), to narrow a walk of the tree."""
        return sorted({static_prefix(p) for p in self.patterns})

    def filter(self, paths: Iterable[str]) -> list[str]:
        """The matched ones of ``paths``, in their order."""
        return [p for p in paths if self.matches(p)]


def compile(patterns: Iterable[str]) -> Pathspec:  # noqa: A001 - the verb of re.compile
    """A :class:`Pathspec` of workspace-relative patterns."""
    return Pathspec(patterns)
