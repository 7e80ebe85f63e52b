"""Release mappings: which files of a commit go into a release, plus its description and metadata.

A mapping is a plain file kept in the project, read from the working tree:

- ``releases/NAME.toml`` with top-level keys, or
- a ``[release.NAME]`` table in ``ws.toml`` at the workspace root.

Keys: ``include`` and ``exclude`` (lists of gitignore-style globs, matched
against workspace-relative paths), ``description`` (a string) and a free
``[metadata]`` table. Without a mapping, a release takes every tracked file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from workspace.errors import InvalidConfig
from workspace.pathspecs import wildmatch  # imports pathspec only when a mapping has globs

MAPPING_DIR = "releases"
PROJECT_FILE = "ws.toml"
_KEYS = {"include", "exclude", "description", "metadata"}


class InvalidReleaseMapping(InvalidConfig):
    """A release mapping that cannot be used (exit 9); the message names the file and field."""


@dataclass
class ReleaseMapping:
    """A parsed mapping; ``source`` is the file it came from (None: the default, every file)."""

    name: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def select(self, paths: Iterable[str]) -> list[str]:
        """The paths this mapping takes, sorted (an empty include list takes everything)."""
        inc = wildmatch(self.include) if self.include else None
        exc = wildmatch(self.exclude) if self.exclude else None
        out = []
        for p in paths:
            if inc is not None and not inc.match_file(p):
                continue
            if exc is not None and exc.match_file(p):
                continue
            out.append(p)
        return sorted(out)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidReleaseMapping(f"{path}: malformed TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays recursively; a pulled file may be hostile
        raise InvalidReleaseMapping(f"{path}: malformed TOML: nested too deeply") from None
    except OSError as exc:
        raise InvalidReleaseMapping(f"{path}: cannot read: {exc.strerror}") from exc


def _check(name: str, table: Any, where: str) -> ReleaseMapping:
    """Validate one mapping table; errors name the file and the field."""
    if not isinstance(table, dict):
        raise InvalidReleaseMapping(f"{where}: must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise InvalidReleaseMapping(
            f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(sorted(_KEYS))})"
        )
    globs = {}
    for key in ("include", "exclude"):
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise InvalidReleaseMapping(f"{where}: field '{key}' must be a list of non-empty glob strings")
        globs[key] = value
        try:
            if value:
                wildmatch(value)
        except Exception as exc:  # pathspec raises several types for bad patterns
            raise InvalidReleaseMapping(f"{where}: field '{key}' has a bad glob: {exc}") from exc
    description = table.get("description", "")
    if not isinstance(description, str):
        raise InvalidReleaseMapping(f"{where}: field 'description' must be a string")
    metadata = table.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidReleaseMapping(f"{where}: field 'metadata' must be a table")
    return ReleaseMapping(name, globs["include"], globs["exclude"], description, _plain(metadata), where)


def _plain(value: Any) -> Any:
    """TOML values as JSON-friendly ones (dates become ISO strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def load_mapping(root: Path, name: str) -> ReleaseMapping:
    """The mapping for release ``name``: from releases/NAME.toml, ws.toml, or the default."""
    own = root / MAPPING_DIR / f"{name}.toml"
    project = root / PROJECT_FILE
    found: list[ReleaseMapping] = []
    if own.is_file():
        found.append(_check(name, _read_toml(own), f"{MAPPING_DIR}/{name}.toml"))
    if project.is_file():
        data = _read_toml(project)
        section = data.get("release", {})
        if not isinstance(section, dict):
            raise InvalidReleaseMapping(f"{PROJECT_FILE}: 'release' must be a table of [release.NAME] tables")
        if name in section:
            found.append(_check(name, section[name], f"{PROJECT_FILE} [release.{name}]"))
    if len(found) > 1:
        raise InvalidReleaseMapping(
            f"release '{name}' is mapped twice ({found[0].source} and {found[1].source}); keep one"
        )
    return found[0] if found else ReleaseMapping(name)
