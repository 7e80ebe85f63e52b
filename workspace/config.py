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


# Remotes that live only as long as this process (``memory://``): never written to
# config.toml, kept here per config file and merged into what load() returns.
PROCESS_LOCAL_SCHEMES = ("memory://",)
_PROCESS_LOCAL: dict[str, dict[str, Any]] = {}


def _is_process_local(table: Any) -> bool:
    return isinstance(table, dict) and str(table.get("url", "")).lower().startswith(PROCESS_LOCAL_SCHEMES)


def split_process_local(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what may be written to config.toml, the process-local remotes and default of ``data``)."""
    remotes = data.get("remote")
    if not isinstance(remotes, dict) or not any(_is_process_local(t) for t in remotes.values()):
        return data, {}
    kept = dict(data)
    kept["remote"] = {n: t for n, t in remotes.items() if not _is_process_local(t)}
    local: dict[str, Any] = {"remote": {n: t for n, t in remotes.items() if _is_process_local(t)}}
    sync = data.get("sync")
    if isinstance(sync, dict) and sync.get("default_remote") in local["remote"]:
        local["default_remote"] = sync["default_remote"]
        kept["sync"] = {k: v for k, v in sync.items() if k != "default_remote"}
        if not kept["sync"]:
            del kept["sync"]
    if not kept["remote"]:
        del kept["remote"]
    return kept, local


def _merge_process_local(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    local = _PROCESS_LOCAL.get(os.path.abspath(path))
    if not local:
        return data
    data = dict(data)
    data["remote"] = {**(data.get("remote") if isinstance(data.get("remote"), dict) else {}), **local["remote"]}
    if local.get("default_remote"):
        data["sync"] = {**(data.get("sync") if isinstance(data.get("sync"), dict) else {}),
                        "default_remote": local["default_remote"]}
    return data


_BARE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_NOT_IN_STRING = frozenset('"\\' + "".join(map(chr, range(0x20))) + "\x7f")  # tab too: tomllib decides
_DIGITS = frozenset("0123456789")


def _bare(name: str) -> bool:
    return bool(name) and not name.strip(_BARE)


def _parse_simple(text: str) -> dict[str, Any] | None:
    """``text`` parsed if it is in the plain subset (see the module doc), else None (tomllib decides).

    Within the subset the result is what tomllib gives; anything it is unsure of (another
    value type, a quoted or dotted key, a comment after a value, a repeated key or table, a
    table over a value) is None. String methods only: a regular expression costs more to
    compile than this whole parse.
    """
    root: dict[str, Any] = {}
    table = root
    defined: set[tuple[str, ...]] = set()
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip(" \t")
        if not stripped:
            continue
        if stripped[0] == "#":
            if any(c in _NOT_IN_STRING and c != '"' and c != "\\" and c != "\t" for c in stripped):
                return None
            continue
        if stripped[0] == "[":
            if stripped[-1] != "]":
                return None
            names = tuple(part.strip(" \t") for part in stripped[1:-1].split("."))
            if not all(map(_bare, names)) or names in defined:
                return None
            defined.add(names)
            table = root
            for name in names:
                table = table.setdefault(name, {})
                if not isinstance(table, dict):
                    return None
            continue
        key, eq, value = stripped.partition("=")
        key, value = key.rstrip(" \t"), value.lstrip(" \t")
        if not eq or not _bare(key) or key in table or not value:
            return None
        if value == "true" or value == "false":
            table[key] = value == "true"
        elif value[0] == '"':
            inner = value[1:-1]
            if len(value) < 2 or value[-1] != '"' or any(c in _NOT_IN_STRING for c in inner):
                return None
            table[key] = inner
        else:
            digits = value[1:] if value[0] == "-" else value
            if not digits or not _DIGITS.issuperset(digits) or (digits[0] == "0" and value != "0"):
                return None
            table[key] = int(value)
    return root


def load(path: Path) -> dict[str, Any]:
    """The parsed config (with this process's ``memory://`` remotes); a malformed file is an InvalidConfig."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return _merge_process_local(path, {})
    try:
        data = _parse_simple(raw.decode("utf-8"))
    except UnicodeDecodeError:
        data = None
    if data is None:
        data = _load_toml(path, raw)
    core = data.get("core", {})
    if not isinstance(core, dict):
        raise InvalidConfig(f"{path}: [core] must be a table")
    return _merge_process_local(path, data)


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
    """Write the config atomically (temporary file, then rename).

    ``memory://`` remotes are process-local: they are kept in this process
    (load() returns them) and never written to the file.
    """
    import tomli_w

    data, local = split_process_local(data)

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
    if local:
        _PROCESS_LOCAL[os.path.abspath(path)] = local
    else:
        _PROCESS_LOCAL.pop(os.path.abspath(path), None)


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
