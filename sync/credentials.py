"""Secrets for remotes: the system keyring, overridden by environment variables.

Secrets never go into ``.ws/`` or the catalog. The keyring holds one entry per
remote: service ``ws``, username = the remote name, password = a JSON object
of the secrets (for S3: ``key``, ``secret``, ``token``; for a ws server:
``token``). :func:`resolve` merges, lowest to highest priority:

1. the remote's non-secret ``options`` from ``.ws/config.toml``,
2. the keyring entry (``ws login NAME``),
3. for ``s3://`` remotes, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
   ``AWS_SESSION_TOKEN`` (as ``key``/``secret``/``token``, the names s3fs takes);
   for ws servers (``grpc://``, ``grpcs://``), ``WS_TOKEN`` (as ``token``),
4. ``WS_REMOTE_<NAME>_<KEY>`` (NAME upper-cased with every non-alphanumeric
   character turned into ``_``; KEY is lower-cased into the option name).

``keyring`` is imported only when a keyring is actually consulted.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

from sync.errors import InvalidCredentials, MissingCredentials, RejectedCredentials, SyncError, UnknownRemote
from sync.urls import redact

SERVICE = "ws"
# per URL scheme: the secrets a remote needs, and the optional ones ``ws login`` also asks for
_NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "s3": (("key", "secret"), ("token",)),
    "s3a": (("key", "secret"), ("token",)),
    "ws": (("token",), ()),
    "wss": (("token",), ()),
    "grpc": (("token",), ()),
    "grpcs": (("token",), ()),
}
# remotes that never need a secret: a folder (a path or file://) and the process-local memory://
NO_SECRET_SCHEMES = ("", "file", "memory")
_TOKEN_SCHEMES = ("ws", "wss", "grpc", "grpcs")  # ws servers: WS_TOKEN is their token
_AWS_ENV = {"key": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY", "token": "AWS_SESSION_TOKEN"}
_LABELS = {"key": "access key id", "secret": "secret access key", "token": "session token (empty for none)"}


class CredentialStoreError(SyncError):
    """The keyring cannot be used (no backend, locked, refused)."""

    exit_code = 11


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased ('' for a plain path)."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url or "")
    return m.group(1).lower() if m else ""


def env_prefix(remote_name: str) -> str:
    """``WS_REMOTE_<NAME>_`` for a remote (non-alphanumeric characters become ``_``)."""
    return "WS_REMOTE_" + re.sub(r"[^A-Z0-9]", "_", remote_name.upper()) + "_"


def login_hint(remote_name: str) -> str:
    """How to fix missing or rejected credentials, for error messages."""
    return f"run 'ws login {remote_name}' or set {env_prefix(remote_name)}<KEY> environment variables"


def _env_hint(remote_name: str, url: str) -> str:
    """Which environment variables carry a remote's secrets (the AWS ones too for S3)."""
    hint = f"{env_prefix(remote_name)}<KEY> environment variables"
    if any(p.split("://", 1)[0].lower() in ("s3", "s3a") for p in url.split("::") if "://" in p):
        hint += f" (for S3: {', '.join(_AWS_ENV[k] for k in ('key', 'secret'))})"
    return hint


def url_secrets_hint(remote_name: str, url: str, how: str = "add", option: tuple[str, str] | None = None) -> str:
    """What to do instead of writing secrets into a remote's URL, for :func:`sync.urls.check_no_credentials`.

    ``how``: ``add`` (``ws remote add``), ``clone`` (no workspace yet, so the
    environment first), or ``configured`` (a URL already in ``.ws/config.toml``).
    ``option`` (key, value): the URL with credentials is that option's value.
    """
    from sync.urls import strip_userinfo

    bare = f"'{strip_userinfo(url)}'" + (f" -o {option[0]}={strip_userinfo(option[1])}" if option else "")
    if how == "clone":
        return (f"clone {bare} with the secrets in {_env_hint(remote_name, url)}, then "
                f"'ws login {remote_name}' keeps them in the keyring")
    if how == "configured":
        return (f"remote '{remote_name}' has them in .ws/config.toml: run 'ws remote remove {remote_name}', "
                f"then ws remote add {remote_name} {bare}, and 'ws login {remote_name}' "
                f"(or set {_env_hint(remote_name, url)})")
    return f"add {bare} and run 'ws login {remote_name}', or set {_env_hint(remote_name, url)}"


def needed(url: str, options: Mapping[str, Any] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) secret names for a remote's URL.

    S3 remotes need none when their options say ``anon = true`` or name a
    ``profile`` (the AWS configuration files then decide).
    """
    options = options or {}
    required, optional = _NEEDS.get(scheme_of(url), ((), ()))
    if scheme_of(url) in ("s3", "s3a") and (_truthy(options.get("anon")) or options.get("profile")):
        return (), required + optional
    return required, optional


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


def _keyring():
    try:
        import keyring
        import keyring.errors
    except ImportError as exc:  # declared dependency; a broken install is a credentials problem
        raise CredentialStoreError(f"the keyring package is not available: {exc}") from exc
    return keyring


def load_secrets(remote_name: str) -> dict[str, str]:
    """The secrets ``ws login`` stored for a remote ({} when none)."""
    keyring = _keyring()
    try:
        raw = keyring.get_password(SERVICE, remote_name)
    except (keyring.errors.KeyringError, OSError) as exc:
        raise CredentialStoreError(f"cannot read the keyring for remote '{remote_name}': {exc}") from exc
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise CredentialStoreError(
            f"the keyring entry of remote '{remote_name}' is not ws's JSON; run 'ws login {remote_name}' again"
        ) from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def no_keyring_message(remote_name: str, url: str = "", *, what: str | None = None,
                       env_hint: str | None = None) -> str:
    """What to do on a machine without a keyring backend (a server, a container, CI).

    ``what`` names the owner of the secrets (default ``remote 'NAME'``) and
    ``env_hint`` the variables that carry them instead (default the remote's):
    a compute backend's are ``WS_BACKEND_<NAME>_<KEY>``.
    """
    return (f"no system keyring is available on this machine to store the secrets of "
            f"{what or f'remote {remote_name!r}'}: "
            "run a keyring service (GNOME Keyring, KWallet, macOS Keychain) or 'pip install keyrings.alt' "
            f"for a file-based one, or set {env_hint or _env_hint(remote_name, url)} instead of 'ws login'")


def _no_backend(keyring, exc: BaseException | None = None) -> bool:
    if exc is not None:
        return isinstance(exc, keyring.errors.NoKeyringError)
    from keyring.backends import fail

    return isinstance(keyring.get_keyring(), fail.Keyring)


def check_keyring(remote_name: str, url: str = "", *, what: str | None = None, env_hint: str | None = None) -> None:
    """Raise CredentialStoreError (exit 11) saying how to get one when no keyring backend is usable
    (``what``, ``env_hint``: see :func:`no_keyring_message`)."""
    keyring = _keyring()
    if _no_backend(keyring):
        raise CredentialStoreError(no_keyring_message(remote_name, url, what=what, env_hint=env_hint))


def store_secrets(remote_name: str, secrets: Mapping[str, str], url: str = "", *, what: str | None = None,
                  env_hint: str | None = None) -> None:
    """Replace the keyring entry of a remote (or of ``what``, see :func:`no_keyring_message`) with ``secrets``."""
    keyring = _keyring()
    try:
        keyring.set_password(SERVICE, remote_name, json.dumps(dict(secrets), sort_keys=True))
    except (keyring.errors.KeyringError, OSError) as exc:
        if _no_backend(keyring, exc):
            raise CredentialStoreError(no_keyring_message(remote_name, url, what=what, env_hint=env_hint)) from exc
        raise CredentialStoreError(
            f"cannot store secrets for {what or f'remote {remote_name!r}'} in the keyring: {exc}; "
            f"set {env_hint or f'{env_prefix(remote_name)}<KEY> environment variables'} instead"
        ) from exc


def forget_secrets(remote_name: str) -> bool:
    """Delete a remote's keyring entry; False when there was none."""
    keyring = _keyring()
    try:
        keyring.delete_password(SERVICE, remote_name)
    except keyring.errors.PasswordDeleteError:
        return False
    except (keyring.errors.KeyringError, OSError) as exc:
        raise CredentialStoreError(f"cannot delete the keyring entry of remote '{remote_name}': {exc}") from exc
    return True


def env_secrets(remote_name: str, url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secrets from the environment (AWS_* for S3, WS_TOKEN for ws servers, then WS_REMOTE_<NAME>_<KEY>)."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    if scheme_of(url) in ("s3", "s3a"):
        out.update({k: environ[v] for k, v in _AWS_ENV.items() if environ.get(v)})
    if scheme_of(url) in _TOKEN_SCHEMES and environ.get("WS_TOKEN"):
        out["token"] = environ["WS_TOKEN"]
    prefix = env_prefix(remote_name)
    for name, value in environ.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            out[name[len(prefix):].lower()] = value
    return out


def resolve(remote_name: str, url: str, options: Mapping[str, Any] | None = None) -> dict:
    """The options to open a remote with: config options + keyring + environment (see module doc).

    Raises MissingCredentials (exit 11) naming the remote and ``ws login`` when
    a required secret is found nowhere.
    """
    merged: dict[str, Any] = dict(options or {})
    env = env_secrets(remote_name, url)
    required, _ = needed(url, options)
    try:
        merged.update(load_secrets(remote_name))
    except CredentialStoreError:
        # an unusable keyring matters only when the environment does not cover what is needed
        if not all(env.get(k) for k in required):
            raise
    merged.update(env)
    missing = [k for k in required if not merged.get(k)]
    if missing:
        also = " (or WS_TOKEN)" if scheme_of(url) in _TOKEN_SCHEMES else ""
        raise MissingCredentials(
            f"remote '{remote_name}' needs credentials ({', '.join(missing)} missing); {login_hint(remote_name)}{also}"
        )
    return merged


def rejected(remote_name: str, detail: str = "") -> RejectedCredentials:
    """The error to raise when a remote refuses its credentials (one line, with the fix)."""
    why = f": {detail}" if detail else ""
    return RejectedCredentials(f"remote '{remote_name}' rejected the credentials{why}; {login_hint(remote_name)}")


def remote_config(config: Mapping[str, Any], remote_name: str) -> tuple[str, dict]:
    """(url, options) of ``[remote.NAME]`` in ``.ws/config.toml``; UnknownRemote (exit 4) otherwise."""
    remotes = config.get("remote", {})
    table = remotes.get(remote_name) if isinstance(remotes, dict) else None
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        known = ", ".join(sorted(remotes)) if isinstance(remotes, dict) and remotes else "none"
        raise UnknownRemote(f"unknown remote '{remote_name}' (configured: {known}); add it with 'ws remote add'")
    options = table.get("options", {})
    return table["url"], dict(options) if isinstance(options, dict) else {}


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a dict; InvalidCredentials (exit 2) for anything else."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or not re.match(r"^[a-z0-9_]+$", key):
            raise InvalidCredentials(f"invalid --key {pair.split('=')[0]!r}: expected KEY=VALUE")
        out[key] = value
    return out


def parse_stdin(text: str) -> dict[str, str]:
    """Secrets piped to ``ws login --stdin``: a JSON object, or KEY=VALUE lines."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise InvalidCredentials(f"invalid JSON on stdin: {exc}") from None
        if not all(isinstance(v, (str, int, float)) for v in data.values()):
            raise InvalidCredentials("the JSON on stdin must map names to strings")
        return {str(k).lower(): str(v) for k, v in data.items()}
    return parse_pairs([ln for ln in stripped.splitlines() if ln.strip() and not ln.startswith("#")])


def gather(secrets: Mapping[str, str] | None = None, pairs: list[str] | None = None,
           text: str | None = None) -> dict[str, str]:
    """The secrets given to ``ws login`` in one of its forms: the text of ``--stdin``, ``--key`` pairs, or a dict."""
    if text is not None:
        return parse_stdin(text)
    if pairs:
        return parse_pairs(pairs)
    return dict(secrets or {})


def needs_no_secret(url: str) -> bool:
    """True for remotes that never take a secret: folders and ``memory://``."""
    return scheme_of(url) in NO_SECRET_SCHEMES


def prompts_for(config: Mapping[str, Any], remote_name: str) -> list[tuple[str, str, bool]]:
    """What ``ws login`` asks for a configured remote (see :func:`prompts`).

    Before anything is asked, a machine without a keyring backend is refused
    with CredentialStoreError saying how to get one or which environment
    variables to set instead.
    """
    url, options = remote_config(config, remote_name)
    asks = prompts(url, options)
    if asks:
        check_keyring(remote_name, url)
    return asks


def prompts(url: str, options: Mapping[str, Any] | None = None) -> list[tuple[str, str, bool]]:
    """What ``ws login`` asks for: (name, label, required) for each secret of the remote's scheme.

    Empty for a remote that needs no secret (a folder, ``memory://``).
    """
    if needs_no_secret(url):
        return []
    required, optional = needed(url, options)
    if not required and not optional:
        return [("token", "token", True)]  # a generic remote: one secret
    return [(k, _LABELS.get(k, k), True) for k in required] + [(k, _LABELS.get(k, k), False) for k in optional]


def login(config: Mapping[str, Any], remote_name: str, secrets: Mapping[str, str]) -> dict:
    """Store secrets for a configured remote in the keyring; returns what was stored (names only).

    Empty values are dropped; a required secret that is missing is refused
    with InvalidCredentials (exit 2) before anything is stored. A remote that
    needs no secret (a folder, ``memory://``) given none stores nothing and
    says so (``"needs_secrets": false``); an empty value given for it is still an error.
    """
    url, options = remote_config(config, remote_name)
    clean = {k: v for k, v in secrets.items() if v != ""}
    if not secrets and needs_no_secret(url):
        return {"remote": remote_name, "url": redact(url), "stored": [], "service": SERVICE,
                "needs_secrets": False}
    if not clean:
        raise InvalidCredentials(f"no secret given for remote '{remote_name}'")
    required, _ = needed(url, options)
    missing = [k for k in required if k not in clean]
    if missing:
        raise InvalidCredentials(f"remote '{remote_name}' ({scheme_of(url)}) needs {', '.join(missing)} too")
    store_secrets(remote_name, clean, url)
    return {"remote": remote_name, "url": redact(url), "stored": sorted(clean), "service": SERVICE,
            "needs_secrets": True}


def logout(config: Mapping[str, Any], remote_name: str) -> dict:
    """Delete a configured remote's secrets from the keyring (``ws login --forget``)."""
    url, _ = remote_config(config, remote_name)
    return {"remote": remote_name, "url": redact(url), "removed": forget_secrets(remote_name)}
