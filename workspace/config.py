"""The workspace configuration, ``.ws/config.toml``.

Read with tomllib (standard library); written with tomli-w. Sections other
concerns own (``remote.<name>``, ``jobs``) are kept untouched by the others.

Every command reads this file, ``ws status`` included, and importing tomllib (it compiles
its regular expressions) cost as much as the rest of the status start-up. So :func:`load`
first tries :func:`_parse_simple`, which reads the plain subset tomli-w writes for ws's
own settings (bare-key tables, ``key = integer | true | false | "string without escapes"``)
and gives up (``None``) on anything else: then tomllib parses the file, as before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from workspace.errors import InvalidConfig

# 1: history only in the catalog; 2: history as pack objects, refs and release records as files
FORMAT = 2
DEFAULTS: dict[str, Any] = {"core": {"format": FORMAT}}


def format_of(config: dict[str, Any]) -> int:
    """The ``[core] format`` a workspace's config declares (1 when absent: the first workspaces)."""
    core = config.get("core", {})
    value = core.get("format", 1) if isinstance(core, dict) else 1
    return value if isinstance(value, int) else 1


_BARE = r"[A-Za-z0-9_-]+"
_TABLE = re.compile(rf"\[[ \t]*({_BARE}(?:[ \t]*\.[ \t]*{_BARE})*)[ \t]*\]")
_KEY_VALUE = re.compile(rf"({_BARE})[ \t]*=[ \t]*(?:(0|[+-]?[1-9][0-9]*)|(true|false)|\"([^\"\\\x00-\x1f\x7f]*)\")")
_COMMENT = re.compile(r"[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?")


def _parse_simple(text: str) -> dict[str, Any] | None:
    """``text`` parsed if it is in the plain subset (see the module doc), else None (tomllib decides).

    Within the subset the result is what tomllib gives; anything it is unsure of (another
    value type, a quoted or dotted key, a repeated key or table, a table over a value) is None.
    """
    root: dict[str, Any] = {}
    table = root
    defined: set[tuple[str, ...]] = set()
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            if _COMMENT.fullmatch(stripped) is None:
                return None
            continue
        m = _TABLE.match(stripped)
        if m is not None:
            if _COMMENT.fullmatch(stripped, m.end()) is None:
                return None
            names = tuple(part.strip(" \t") for part in m.group(1).split("."))
            if names in defined:
                return None
            defined.add(names)
            table = root
            for name in names:
                table = table.setdefault(name, {})
                if not isinstance(table, dict):
                    return None
            continue
        m = _KEY_VALUE.match(stripped)
        if m is None or _COMMENT.fullmatch(stripped, m.end()) is None:
            return None
        key, number, boolean, string = m.groups()
        if key in table:
            return None
        if number is not None:
            table[key] = int(number)
        elif boolean is not None:
            table[key] = boolean == "true"
        else:
            table[key] = string
    return root


def load(path: Path) -> dict[str, Any]:
    """The parsed config; a malformed file is an InvalidConfig naming the problem."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    try:
        data = _parse_simple(raw.decode("utf-8"))
    except UnicodeDecodeError:
        data = None
    if data is None:
        data = _load_toml(path, raw)
    core = data.get("core", {})
    if not isinstance(core, dict):
        raise InvalidConfig(f"{path}: [core] must be a table")
    return data


def _load_toml(path: Path, raw: bytes) -> dict[str, Any]:
    """The whole TOML grammar, by tomllib."""
    import tomllib

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidConfig(f"{path}: malformed TOML: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{path}: malformed TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays recursively
        raise InvalidConfig(f"{path}: malformed TOML: nested too deeply") from None


def save(path: Path, data: dict[str, Any]) -> None:
    """Write the config atomically (temporary file, then rename)."""
    import tomli_w

    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            tomli_w.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk: the old config stays as it was, no stray .tmp
        raise


def author(config: dict[str, Any]) -> str:
    """Who commits: WS_AUTHOR, then [user] name/email, then user@host."""
    env = os.environ.get("WS_AUTHOR")
    if env:
        return env
    user = config.get("user", {}) if isinstance(config.get("user"), dict) else {}
    name = user.get("name")
    email = user.get("email")
    if name and email:
        return f"{name} <{email}>"
    if name:
        return str(name)
    import getpass
    import socket

    try:
        login = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        login = "unknown"
    return f"{login}@{socket.gethostname()}"
