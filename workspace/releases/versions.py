"""Semantic versions of releases and the expressions that pick one.

An expression is one of:

- ``latest`` (or empty, or ``*``): the highest version that is not a
  pre-release; when there are only pre-releases, the highest of those.
- an exact version, ``1.2.3`` or ``=1.2.3`` (pre-releases included).
- ``^1.2``: compatible with 1.2 (``>=1.2.0,<2.0.0``; ``^0.2`` means ``<0.3.0``,
  ``^0.0.3`` means ``<0.0.4``).
- ``~1.2``: same minor (``>=1.2.0,<1.3.0``; ``~1`` means ``<2.0.0``).
- a range of comparators joined by commas, ``>=1.0,<2.0``, each of
  ``>= > <= < = == !=`` followed by a full or partial version.

Ranges, ``^`` and ``~`` skip pre-releases unless the expression names one
itself (so ``>=1.0.0`` never picks ``2.0.0-rc.1`` by surprise). Among the
matches, the highest wins.

This module imports only ``semver`` and our error types, so the sync layer
uses :func:`select` on the versions a remote lists.
"""

from __future__ import annotations

import re

import semver

from workspace.errors import InvalidArgument, UnknownRef


class InvalidVersion(InvalidArgument):
    """A version string that is not semantic versioning (exit 2)."""


class InvalidVersionExpression(InvalidArgument):
    """A version expression that cannot be parsed (exit 2)."""


class UnknownRelease(UnknownRef):
    """A release title or version that does not exist (exit 4)."""


class NoMatchingVersion(UnknownRelease):
    """No version satisfies an expression (exit 4)."""


_PARTIAL = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")
_COMPARATOR = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*(\S+)$")
_LATEST = ("", "latest", "*")


def parse_version(text: str) -> semver.Version:
    """A full semantic version (``MAJOR.MINOR.PATCH[-pre][+build]``); InvalidVersion otherwise."""
    if not isinstance(text, str):
        raise InvalidVersion(f"invalid version {text!r}: expected a string like 1.2.3")
    try:
        return semver.Version.parse(text.strip())
    except (ValueError, TypeError):
        raise InvalidVersion(
            f"invalid version {text!r}: expected semantic versioning MAJOR.MINOR.PATCH, e.g. 1.2.3 or 2.0.0-rc.1"
        ) from None


def bump(previous: str | None, part: str) -> str:
    """The next version after ``previous`` for ``part`` (major, minor or patch).

    With no previous version the count starts from 0.0.0, so the first release
    is 1.0.0 (major), 0.1.0 (minor) or 0.0.1 (patch).
    """
    if part not in ("major", "minor", "patch"):
        raise InvalidArgument(f"invalid bump {part!r}: use major, minor or patch")
    base = parse_version(previous) if previous else semver.Version(0, 0, 0)
    return str(getattr(base, f"bump_{part}")())


def highest(versions: list[str]) -> str | None:
    """The highest of ``versions`` by semver precedence (pre-releases included), or None."""
    if not versions:
        return None
    return str(max(parse_version(v) for v in versions))


def _partial(text: str, expr: str) -> tuple[semver.Version, int]:
    """A possibly partial version and how many numeric parts it gave (1-3)."""
    m = _PARTIAL.match(text)
    if not m:
        raise InvalidVersionExpression(f"invalid version expression {expr!r}: {text!r} is not a version")
    major, minor, patch, pre, build = m.groups()
    given = 1 + (minor is not None) + (patch is not None)
    if (pre or build) and given < 3:
        raise InvalidVersionExpression(f"invalid version expression {expr!r}: a pre-release needs X.Y.Z-{pre}")
    return semver.Version(int(major), int(minor or 0), int(patch or 0), pre, build), given


def _caret(text: str, expr: str) -> list[tuple[str, semver.Version]]:
    low, given = _partial(text, expr)
    if low.major > 0 or given == 1:
        high = semver.Version(low.major + 1, 0, 0)
    elif low.minor > 0 or given == 2:
        high = semver.Version(0, low.minor + 1, 0)
    else:
        high = semver.Version(0, 0, low.patch + 1)
    return [(">=", low), ("<", high)]


def _tilde(text: str, expr: str) -> list[tuple[str, semver.Version]]:
    low, given = _partial(text, expr)
    high = semver.Version(low.major + 1, 0, 0) if given == 1 else semver.Version(low.major, low.minor + 1, 0)
    return [(">=", low), ("<", high)]


def _comparators(expr: str) -> list[tuple[str, semver.Version]]:
    """The expression as (operator, version) pairs that must all hold."""
    text = expr.strip()
    if text.startswith("^"):
        return _caret(text[1:].strip(), expr)
    if text.startswith("~"):
        return _tilde(text[1:].lstrip("=").strip(), expr)
    out = []
    for part in text.split(","):
        m = _COMPARATOR.match(part.strip())
        if not m:
            raise InvalidVersionExpression(
                f"invalid version expression {expr!r}: use latest, 1.2.3, ^1.2, ~1.2 or a range like '>=1.0,<2.0'"
            )
        op, ver = m.groups()
        version, given = _partial(ver, expr)
        if op in (None, "=", "==") and given < 3:
            # '1.2' means any 1.2.x, like '~1.2'
            out.extend(_tilde(ver, expr) if given == 2 else _caret(ver, expr))
            continue
        out.append((op or "==", version))
    return out


_OPS = {
    ">=": lambda c: c >= 0,
    ">": lambda c: c > 0,
    "<=": lambda c: c <= 0,
    "<": lambda c: c < 0,
    "==": lambda c: c == 0,
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
}


def matches(version: str, expr: str) -> bool:
    """Whether one version satisfies an expression (``latest`` matches everything)."""
    if expr.strip().lower() in _LATEST:
        return True
    v = parse_version(version)
    comps = _comparators(expr)
    if v.prerelease and not any(c.prerelease for _, c in comps):
        return False
    return all(_OPS[op](v.compare(c)) for op, c in comps)


def select(versions: list[str], expr: str = "latest") -> str:
    """The highest of ``versions`` that ``expr`` picks (see the module docstring).

    Raises InvalidVersionExpression for a malformed expression and
    NoMatchingVersion when nothing matches.
    """
    expr = (expr or "").strip()
    parsed = sorted((parse_version(v) for v in versions), reverse=True)
    if expr.lower() in _LATEST:
        if not parsed:
            raise NoMatchingVersion("no version exists")
        stable = [v for v in parsed if not v.prerelease]
        return str((stable or parsed)[0])
    _comparators(expr)  # a malformed expression is an error even with no versions
    for v in parsed:
        if matches(str(v), expr):
            return str(v)
    shown = ", ".join(str(v) for v in parsed[:10]) or "none"
    raise NoMatchingVersion(f"no version matches {expr!r} (available: {shown})")
