"""Tokens and roles of a ws server root, stored hashed in ``<root>/.ws-server/tokens.json``.

A token is ``wst_`` + 43 URL-safe characters (256 random bits). Only its
SHA-256 is stored: a token that random cannot be guessed from its hash, so a
slow password hash would buy nothing (the same choice as GitHub's tokens).
:func:`create_token` returns the token once; nothing can show it again.

Roles, each including the one before:

- ``reader``: stat, read and list objects, ask which chunks are missing or where they are;
- ``writer``: also upload packs and their indexes, and publish new releases (create-only);
- ``admin``: also delete objects, overwrite release records, write keys outside the layout.

A token may be limited to release titles matching glob patterns (``raw-*``):
it then lists, reads, publishes and deletes only those releases. Packs are
shared by every release (that is what deduplication means), so a pattern is
not a wall between teams: give each team its own server root for that.

The file is replaced atomically (temporary name, fsync, rename) under an
exclusive lock (``tokens.lock``), so two ``ws serve token create`` at once
both land. A running server notices a changed file at its next request:
revoking a token takes effect at once, without a restart.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sync.errors import SyncError

STATE_DIR = ".ws-server"  # under the root; never served, never listed
TOKENS_FILE = "tokens.json"
ROLES = ("reader", "writer", "admin")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_PREFIX = "wst_"


class InvalidTokenRequest(SyncError):
    """A token name, role or title pattern that cannot be used (exit 2)."""

    exit_code = 2


class TokenExists(SyncError):
    """``token create`` with a name that already has a token (exit 8)."""

    exit_code = 8


class UnknownToken(SyncError):
    """``token revoke`` of a name that has no token (exit 4)."""

    exit_code = 4


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the token's name, role and title patterns (empty: every title)."""

    name: str
    role: str
    titles: tuple[str, ...] = ()

    def at_least(self, role: str) -> bool:
        """Whether this role includes ``role`` (reader < writer < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def may_see_title(self, title: str) -> bool:
        """Whether the token's title patterns allow release ``title``."""
        return not self.titles or any(fnmatch.fnmatchcase(title, p) for p in self.titles)


@dataclass
class TokenInfo:
    """A stored token, without the token itself."""

    name: str
    role: str
    titles: list[str] = field(default_factory=list)
    created_at: str = ""
    hint: str = ""  # the token's first characters, to tell tokens apart

    def to_dict(self) -> dict:
        """For --json."""
        return {"name": self.name, "role": self.role, "titles": list(self.titles), "created_at": self.created_at,
                "hint": self.hint}


def state_dir(root: str | os.PathLike) -> Path:
    """The server's own folder under a root (tokens, chunk index, uploads in progress)."""
    return Path(root) / STATE_DIR


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check(name: str, role: str, titles: list[str]) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidTokenRequest(f"invalid token name {name!r}: use letters, digits, '.', '_', '@' and '-'")
    if role not in ROLES:
        raise InvalidTokenRequest(f"invalid role {role!r}: choose one of {', '.join(ROLES)}")
    for pattern in titles:
        if not pattern or not re.match(r"^[A-Za-z0-9._*?\[\]!-]+$", pattern):
            raise InvalidTokenRequest(f"invalid title pattern {pattern!r}: a glob such as 'raw-*'")


def _check_root(root: str | os.PathLike) -> None:
    if os.path.lexists(root) and not os.path.isdir(root):
        raise InvalidTokenRequest(f"{root} is not a folder: give the server's root folder (--root)")


@contextmanager
def _locked(root: str | os.PathLike) -> Iterator[Path]:
    folder = state_dir(root)
    _check_root(root)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SyncError(f"cannot keep tokens in {folder}: {exc.strerror}") from None
    with open(folder / "tokens.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield folder / TOKENS_FILE


def _read(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError:
        raise SyncError(f"{path} is damaged (not JSON); restore it or remove it and create tokens again") from None
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list):
        raise SyncError(f"{path} is damaged (no 'tokens' list)")
    return [t for t in tokens if isinstance(t, dict)]


def _write(path: Path, tokens: list[dict]) -> None:
    tmp = path.with_name(f".{TOKENS_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "tokens": tokens}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_token(root: str | os.PathLike, name: str, role: str, titles: list[str] | None = None) -> str:
    """Create a token for a server root and return it (the only time it is shown)."""
    titles = list(titles or [])
    _check(name, role, titles)
    token = _PREFIX + secrets.token_urlsafe(32)
    with _locked(root) as path:
        tokens = _read(path)
        if any(t.get("name") == name for t in tokens):
            raise TokenExists(f"a token named '{name}' exists already; revoke it first or choose another name")
        tokens.append({"name": name, "role": role, "titles": titles, "sha256": _hash(token),
                       "hint": token[:len(_PREFIX) + 4],
                       "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        _write(path, tokens)
    return token


def list_tokens(root: str | os.PathLike) -> list[TokenInfo]:
    """Every token of a server root, by name (never the tokens themselves)."""
    _check_root(root)
    tokens = _read(state_dir(root) / TOKENS_FILE)
    return sorted((TokenInfo(t.get("name", ""), t.get("role", ""), list(t.get("titles") or []),
                             t.get("created_at", ""), t.get("hint", "")) for t in tokens), key=lambda t: t.name)


def revoke_token(root: str | os.PathLike, name: str) -> TokenInfo:
    """Delete the token called ``name``; UnknownToken (exit 4) when there is none."""
    _check_root(root)
    if not os.path.exists(state_dir(root) / TOKENS_FILE):  # no token at all: create no lock (nor the root)
        raise UnknownToken(f"no token named '{name}' (tokens: none)")
    with _locked(root) as path:
        tokens = _read(path)
        keep = [t for t in tokens if t.get("name") != name]
        if len(keep) == len(tokens):
            known = ", ".join(sorted(t.get("name", "") for t in tokens)) or "none"
            raise UnknownToken(f"no token named '{name}' (tokens: {known})")
        gone = next(t for t in tokens if t.get("name") == name)
        _write(path, keep)
    return TokenInfo(name, gone.get("role", ""), list(gone.get("titles") or []), gone.get("created_at", ""),
                     gone.get("hint", ""))


class TokenStore:
    """What a running server checks tokens against; re-reads the file whenever it changed."""

    def __init__(self, root: str | os.PathLike):
        self.path = state_dir(root) / TOKENS_FILE
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._by_hash: dict[str, Principal] = {}

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a token belongs to, or None (no token, unknown or revoked)."""
        if not token:
            return None
        table = self._table()
        digest = _hash(token)
        for known, principal in table.items():  # constant time per comparison, not a dict probe on secrets
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def _table(self) -> dict[str, Principal]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                rows = _read(self.path) if stamp is not None else []
                self._by_hash = {t["sha256"]: Principal(t["name"], t["role"], tuple(t.get("titles") or ()))
                                 for t in rows if t.get("role") in ROLES and t.get("sha256") and t.get("name")}
                self._stamp = stamp
            return self._by_hash
