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


def load(path: Path) -> dict[str, Any]:
    """The parsed config; a malformed file is an InvalidConfig naming the problem."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{path}: malformed TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays recursively
        raise InvalidConfig(f"{path}: malformed TOML: nested too deeply") from None
    core = data.get("core", {})
    if not isinstance(core, dict):
        raise InvalidConfig(f"{path}: [core] must be a table")
    return data


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
