"""Which paths ws ignores: built-ins (.ws/, .git/) plus ``.wsignore`` (gitignore syntax).

pathspec costs ~50 ms to import, so it is loaded only when a ``.wsignore``
with patterns exists.
"""

from __future__ import annotations

from pathlib import Path

from workspace.errors import InvalidConfig

BUILTIN_DIRS = frozenset({".ws", ".git"})
IGNORE_FILE = ".wsignore"


class IgnoreRules:
    """Decides whether a workspace-relative path is ignored."""

    def __init__(self, root: Path):
        self.root = root
        self._spec = None
        path = root / IGNORE_FILE
        if path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidConfig(f"cannot read {IGNORE_FILE}: {exc}") from exc
            patterns = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            if patterns:
                import pathspec

                try:
                    self._spec = pathspec.GitIgnoreSpec.from_lines(lines)
                except Exception as exc:  # pathspec raises several types for bad patterns
                    raise InvalidConfig(f"{IGNORE_FILE}: bad pattern: {exc}") from exc

    @property
    def has_patterns(self) -> bool:
        return self._spec is not None

    def ignored_dir(self, rel: str, name: str) -> bool:
        """Whether a directory (relative path, no trailing slash) is ignored."""
        if name in BUILTIN_DIRS:
            return True
        return self._spec is not None and self._spec.match_file(rel + "/")

    def ignored_file(self, rel: str) -> bool:
        """Whether a file is ignored."""
        return self._spec is not None and self._spec.match_file(rel)
