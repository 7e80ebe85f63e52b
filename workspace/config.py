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

DEFAULTS: dict[str, Any] = {"core": {"format": 1}}


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
    with open(tmp, "wb") as f:
        tomli_w.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
