"""The workspace configuration, ``.ws/config.toml``.

Read with tomllib (standard library); written with tomli-w. Sections other
concerns own (``remote.<name>``, ``jobs``) are kept untouched by the others.
"""

from __future__ import annotations

import os
import tomllib
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


def load(path: Path) -> dict[str, Any]:
    """The parsed config (with this process's ``memory://`` remotes); a malformed file is an InvalidConfig."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return _merge_process_local(path, {})
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{path}: malformed TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays recursively
        raise InvalidConfig(f"{path}: malformed TOML: nested too deeply") from None
    core = data.get("core", {})
    if not isinstance(core, dict):
        raise InvalidConfig(f"{path}: [core] must be a table")
    return _merge_process_local(path, data)


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
