"""Remotes' configuration, and opening a configured remote.

``[remote.NAME]`` tables of ``.ws/config.toml`` hold each remote's ``url`` and
non-secret ``options``; ``[sync] default_remote`` names the default. The
functions here read and edit that configuration as a plain dict (the caller
loads it, and saves it under the workspace lock); secrets come from
:func:`sync.credentials.resolve` (keyring, environment) and never touch ``.ws/``.
``ws status``'s per-remote lines are :mod:`sync.remote_status` (kept apart:
it runs on every status and must import next to nothing).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from catalog import remotes as rq
from catalog.db import Catalog
from sync.errors import InvalidRemoteName, RemoteExists, UnknownRemote
from sync.urls import check_no_credentials, check_options, redact
from workspace.errors import InvalidArgument

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SECRET_OPTIONS = {"key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key",
                   "aws_session_token"}
DEFAULT_NAME = "origin"


@dataclass
class RemoteInfo:
    """One configured remote."""

    name: str
    url: str
    options: dict
    default: bool

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


def check_name(name: str) -> str:
    """A remote name: letters, digits, '_' and '-' (at most 64)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidRemoteName(f"invalid remote name {name!r}: use letters, digits, '_' and '-'")
    return name


def _tables(config: dict) -> dict:
    """The ``[remote.*]`` tables ({} when the config has none or a malformed one)."""
    return config.get("remote", {}) if isinstance(config.get("remote"), dict) else {}


def default_remote_name(config: dict) -> str | None:
    """The default remote: ``[sync] default_remote``, else the only remote, else None."""
    remotes = _tables(config)
    named = config.get("sync", {}).get("default_remote") if isinstance(config.get("sync"), dict) else None
    if named in remotes:
        return named
    return next(iter(remotes)) if len(remotes) == 1 else None


def list_remotes(config: dict) -> list[RemoteInfo]:
    """Every configured remote, by name."""
    default = default_remote_name(config)
    return [RemoteInfo(n, redact(t.get("url", "")), _shown(t.get("options", {})), n == default)
            for n, t in sorted(_tables(config).items()) if isinstance(t, dict)]


def _shown(options) -> dict:
    """Options as shown: a URL-valued one without its userinfo (configs from before ws refused them)."""
    return {k: redact(v) for k, v in options.items()} if isinstance(options, dict) else {}


def add(config: dict, name: str, url: str, options: dict | None = None, default: bool = False) -> RemoteInfo:
    """Add ``[remote.NAME]`` to ``config`` (the first remote becomes the default). Secrets are refused,
    as options and inside URLs (``https://user:password@host``)."""
    from sync.credentials import url_secrets_hint
    from sync.storage.registry import check_url, normalize_url

    check_name(name)
    options = {str(k): v for k, v in (options or {}).items()}
    check_no_credentials(url, url_secrets_hint(name, url))
    check_options(options, lambda k, v: url_secrets_hint(name, url, option=(k, v)))
    url = check_url(normalize_url(url))  # refuse now what no backend could open later (exit 2)
    secret = sorted(set(k.lower() for k in options) & _SECRET_OPTIONS)
    if secret:
        raise InvalidArgument(f"option {secret[0]!r} is a secret; store it with 'ws login {name}', "
                              "secrets never go into .ws/")
    remotes = config.setdefault("remote", {})
    if name in remotes:
        raise RemoteExists(f"remote '{name}' already exists ({redact(remotes[name].get('url'))}); remove it first")
    remotes[name] = {"url": url, "options": options}
    sync_table = config.setdefault("sync", {})
    if default or not sync_table.get("default_remote"):
        sync_table["default_remote"] = name
    return next(r for r in list_remotes(config) if r.name == name)


def remove(config: dict, name: str) -> None:
    """Drop ``[remote.NAME]`` from ``config`` (and the default, if it was that one)."""
    remotes = config.get("remote", {})
    if name not in remotes:
        raise UnknownRemote(f"unknown remote '{name}'")
    del remotes[name]
    if config.get("sync", {}).get("default_remote") == name:
        del config["sync"]["default_remote"]


def forget(catalog: Catalog, name: str) -> None:
    """Drop what the catalog remembers about a remote (its packs, its releases)."""
    rq.forget_remote(catalog, name)


def open_remote(config: dict, name: str | None = None):
    """The :class:`sync.remote.Remote` for a configured remote (default when ``name`` is None)."""
    from sync import credentials

    name = name or default_remote_name(config)
    if not name:
        raise UnknownRemote("no remote given and no default remote; add one with 'ws remote add NAME URL'")
    url, options = credentials.remote_config(config, name)
    # written by a ws from before they were refused
    check_no_credentials(url, credentials.url_secrets_hint(name, url, how="configured"))
    check_options(options, lambda k, v: credentials.url_secrets_hint(name, url, "configured", (k, v)))
    return connect(name, url, options)


def connect(name: str, url: str, options: dict):
    """A Remote for ``url`` with credentials resolved for ``name`` (local folders need none).

    A URL with credentials in it is refused (``ws clone`` comes here first).
    """
    from sync.credentials import url_secrets_hint
    from sync.remote import Remote
    from sync.storage.registry import open_backend, scheme_of

    check_no_credentials(url, url_secrets_hint(name, url, how="clone"))
    check_options(options, lambda k, v: url_secrets_hint(name, url, "clone", (k, v)))

    if scheme_of(url) not in ("file", "memory"):
        from sync import credentials

        options = credentials.resolve(name, url, options)
    return Remote(open_backend(url, options, label=name), name)
