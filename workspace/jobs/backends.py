"""Configured compute backends: ``[backend.NAME]`` in ``.ws/config.toml`` (``ws backend add|list|remove|check``).

A configured backend has a name (what a spec's ``backend:`` and ``ws run
--backend`` say), a type (a name of the compute registry: ``local``,
``slurm``, ``batch``, ``prominence``) and non-secret options, the keyword
options of that type's constructor (docs/backends.md lists them). A spec may
also name a bare type: it runs with that type's defaults.

Secrets never go into ``.ws/``: a PROMINENCE token or AWS keys are stored with
``ws login NAME`` in the keyring (service ``ws``, user ``backend:NAME``, the
entry :mod:`sync.compute.prominence_api` reads) or come from the environment
(``WS_BACKEND_<NAME>_<KEY>``, and what boto3 reads for Batch).

Opening a backend for a workspace adds what only the workspace knows: the
local backend's log root, the workspace root of backends without its file
system, the catalog that caches a Batch staging remote's indexes, and a Batch
``staging`` option naming a configured remote (its URL, options and
credentials then come from ``[remote.NAME]``).
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import asdict, dataclass

from sync.compute import registry
from sync.compute.base import ComputeBackend, InvalidBackendOption
from sync.errors import BackendError, UnknownBackend
from workspace.errors import InvalidArgument
from workspace.repo import Repo

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# options a backend gets from the workspace or the keyring, never from .ws/config.toml
_INTERNAL = {"root", "workspace_root", "log_root", "catalog", "tmp_dir", "open_staging", "session",
             "token_provider", "backend_name", "s3_region", "s3_endpoint"}
SECRET_OPTIONS = {"token": ("prominence",), "aws_access_key_id": ("batch",), "aws_secret_access_key": ("batch",),
                  "aws_session_token": ("batch",)}
# what 'ws login NAME' asks for, per type: (secret, label, required)
_PROMPTS = {"prominence": [("token", "bearer token", True)],
            "batch": [("aws_access_key_id", "AWS access key id", True),
                      ("aws_secret_access_key", "AWS secret access key", True),
                      ("aws_session_token", "AWS session token (empty for none)", False)]}
_EXTRA_OPTIONS = {"batch": {"staging_name"}}  # sync.staged.batch_backend's own


@dataclass
class BackendInfo:
    """One configured backend (``ws backend list``)."""

    name: str
    type: str
    options: dict
    configured: bool = True

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


def _tables(config: dict) -> dict:
    tables = config.get("backend")
    return tables if isinstance(tables, dict) else {}


def configured(config: dict) -> list[BackendInfo]:
    """Every configured backend, by name."""
    return [BackendInfo(n, str(t.get("type", "")), dict(t.get("options") or {}))
            for n, t in sorted(_tables(config).items()) if isinstance(t, dict)]


def names(config: dict) -> list[str]:
    """What a spec's ``backend:`` may say: configured names and bare types."""
    return sorted({*registry.names(), *(b.name for b in configured(config))})


def resolve(config: dict, name: str) -> BackendInfo:
    """The backend a spec or ``--backend`` names: a configured one, else a bare type with its defaults.

    An unknown name is :class:`UnknownBackend` (exit 9) listing the configured
    backends and the types.
    """
    table = _tables(config).get(name)
    if isinstance(table, dict):
        return BackendInfo(name, str(table.get("type", "")), dict(table.get("options") or {}))
    if name in registry.names():
        return BackendInfo(name, name, {}, configured=False)
    mine = [b.name for b in configured(config)]
    raise UnknownBackend(f"unknown backend '{name}' (configured: {', '.join(mine) or 'none'}; types: "
                         f"{', '.join(registry.names())}); add one with 'ws backend add NAME TYPE'")


def backend_class(kind: str) -> type[ComputeBackend]:
    """The class of a backend type, for its class attributes (``stages_inputs``): nothing built, no secret read.

    Batch is registered as a factory (:func:`sync.staged.batch_backend`): its
    class is BatchBackend; another factory's is the base class.
    """
    target = registry.target(kind)
    if kind == "batch":
        from sync.compute.batch import BatchBackend

        return BatchBackend
    return target if isinstance(target, type) else ComputeBackend


def allowed_options(kind: str) -> list[str]:
    """The option names a backend of type ``kind`` takes from the configuration (its constructor's keywords)."""
    target = registry.target(kind)
    if kind == "batch":
        target = backend_class(kind)
    params = inspect.signature(target.__init__ if isinstance(target, type) else target).parameters
    names = {p for p, v in params.items() if p != "self" and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)}
    return sorted((names | _EXTRA_OPTIONS.get(kind, set())) - _INTERNAL - set(SECRET_OPTIONS))


def check_options(name: str, kind: str, options: dict) -> dict:
    """Refuse unknown options and secrets, then build the backend once so that it refuses bad values (exit 9)."""
    if kind not in registry.names():
        raise UnknownBackend(f"unknown backend type '{kind}' (types: {', '.join(registry.names())})")
    for key in options:
        if key.lower() in SECRET_OPTIONS:
            raise InvalidArgument(f"option {key!r} is a secret; store it with 'ws login {name}', "
                                  "secrets never go into .ws/")
    allowed = allowed_options(kind)
    for key in options:
        if key not in allowed:
            raise InvalidBackendOption(f"backend type {kind} has no option '{key}' (options: {', '.join(allowed)})")
    build(kind, name, dict(options)).close()
    return options


def build(kind: str, name: str, options: dict, extra: dict | None = None) -> ComputeBackend:
    """A backend of type ``kind`` (contacts nothing); a bad option value is InvalidBackendOption (exit 9)."""
    opts = dict(options)
    if kind in ("batch", "prominence"):
        opts.setdefault("backend_name", name)
    opts.update(extra or {})
    try:
        return registry.get(kind, **opts)
    except (ValueError, TypeError) as exc:
        raise InvalidBackendOption(f"backend '{name}' ({kind}): bad option value: {exc}") from None


def add(config: dict, name: str, kind: str, options: dict | None = None) -> BackendInfo:
    """Add ``[backend.NAME]`` to ``config`` (the caller saves it under the lock)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidArgument(f"invalid backend name {name!r}: use letters, digits, '_' and '-'")
    tables = config.setdefault("backend", {})
    if name in tables:
        raise InvalidArgument(f"backend '{name}' already exists ({tables[name].get('type')}); remove it first")
    options = check_options(name, kind, {str(k): v for k, v in (options or {}).items()})
    staging = options.get("staging")
    remotes = config.get("remote") if isinstance(config.get("remote"), dict) else {}
    if kind == "batch" and staging and "://" not in str(staging) and staging not in remotes:
        raise InvalidBackendOption(f"option staging={staging}: no remote of that name (remotes: "
                                   f"{', '.join(sorted(remotes)) or 'none'}); give a configured remote or an "
                                   "s3:// URL")
    tables[name] = {"type": kind, "options": options}
    return BackendInfo(name, kind, options)


def remove(config: dict, name: str) -> None:
    """Drop ``[backend.NAME]`` from ``config``."""
    tables = _tables(config)
    if name not in tables:
        raise UnknownBackend(f"unknown backend '{name}' (configured: {', '.join(sorted(tables)) or 'none'})")
    del tables[name]


# -- opening for a workspace ------------------------------------------------------------------
def env_prefix(name: str) -> str:
    """``WS_BACKEND_<NAME>_`` for a backend (non-alphanumeric characters become ``_``)."""
    return "WS_BACKEND_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_"


def _keyring_words(name: str) -> dict:
    """How keyring errors name a backend and the variables that carry its secrets instead of the keyring."""
    return {"what": f"backend '{name}'", "env_hint": f"{env_prefix(name)}<KEY> environment variables"}


def env_secrets(name: str) -> dict[str, str]:
    """``WS_BACKEND_<NAME>_<KEY>`` variables, as secrets (KEY lower-cased)."""
    prefix = env_prefix(name)
    return {k[len(prefix):].lower(): v for k, v in os.environ.items() if k.startswith(prefix) and len(k) > len(prefix)}


def _keyring_secrets(name: str) -> dict[str, str]:
    from sync.compute.prominence_api import keyring_user
    from sync.credentials import CredentialStoreError, load_secrets

    try:
        return load_secrets(keyring_user(name))
    except CredentialStoreError:
        return {}  # no usable keyring: the backend says what is missing when it needs it


def open_backend(repo: Repo, name: str, secrets: bool = True) -> ComputeBackend:
    """The backend a spec's ``backend:`` names, set up for this workspace (contacts nothing).

    Without ``secrets`` neither the keyring nor the environment is read: a
    backend to check a request against, never to submit with.
    """
    info = resolve(repo.config, name)
    kind, extra = info.type, {}
    if kind == "local":
        extra["root"] = str(repo.layout.jobs_dir)
    elif kind == "prominence":
        extra["workspace_root"] = str(repo.root)
    elif kind == "batch":
        tmp = repo.layout.ws_dir / "tmp"  # staging packs are built here, as 'ws push' builds its own
        tmp.mkdir(exist_ok=True)
        extra.update(workspace_root=str(repo.root), log_root=str(repo.layout.jobs_dir), catalog=repo.catalog,
                     tmp_dir=str(tmp))
        extra.update(_staging(repo.config, info.options))
        if info.configured and secrets:
            found = {**_keyring_secrets(name), **env_secrets(name)}
            extra.update({k: v for k, v in found.items() if k in SECRET_OPTIONS})
    elif not info.configured:
        return registry.get(kind)  # a type registered by a test or a plugin: its own defaults
    return build(kind, name, info.options, extra)


def _staging(config: dict, options: dict) -> dict:
    """A Batch ``staging`` option naming a configured remote: its URL, options and credentials' name."""
    staging = options.get("staging")
    remotes = config.get("remote") if isinstance(config.get("remote"), dict) else {}
    if not staging or "://" in str(staging) or staging not in remotes:
        return {}
    table = remotes[staging]
    return {"staging": table.get("url"), "staging_name": staging, "staging_options": dict(table.get("options") or {})}


def check(repo: Repo, name: str) -> list[dict]:
    """What ``ws backend check NAME`` reports: ``{check, ok, detail}`` per check, each reaching the service."""
    info = resolve(repo.config, name)
    rows: list[dict] = []
    try:
        backend = open_backend(repo, name)
    except BackendError as exc:
        return [{"check": "options", "ok": False, "detail": str(exc)}]
    rows.append({"check": "options", "ok": True, "detail": f"{info.type} backend"
                 + (f" with {', '.join(sorted(info.options))}" if info.options else " with its defaults")})
    try:
        for what, ok, detail in backend.check():
            rows.append({"check": what, "ok": bool(ok), "detail": detail})
    except BackendError as exc:  # a backend's check raised instead of reporting: still one line
        rows.append({"check": "service", "ok": False, "detail": str(exc)})
    finally:
        backend.close()
    return rows


def is_backend_login(config: dict, name: str, forced: bool = False) -> bool:
    """Whether ``ws login NAME`` is for a configured backend: asked with ``--backend``, or no remote has that name."""
    remotes = config.get("remote") if isinstance(config.get("remote"), dict) else {}
    return forced or (name not in remotes and name in _tables(config))


def login_prompts(config: dict, name: str) -> list[tuple[str, str, bool]]:
    """What ``ws login NAME`` asks for a configured backend.

    Before anything is asked, a machine without a keyring backend is refused
    with CredentialStoreError (exit 11) naming ``WS_BACKEND_<NAME>_<KEY>``, as
    a remote's login is.
    """
    from sync.compute.prominence_api import keyring_user
    from sync.credentials import check_keyring

    info = resolve(config, name)
    asks = list(_PROMPTS.get(info.type, []))
    if asks:
        check_keyring(keyring_user(name), **_keyring_words(name))
    return asks


def login(config: dict, name: str, secrets: dict[str, str]) -> dict:
    """Store a configured backend's secrets in the keyring (user ``backend:NAME``); names only in the answer."""
    from sync.compute.prominence_api import keyring_user
    from sync.credentials import SERVICE, store_secrets
    from sync.errors import InvalidCredentials

    info = resolve(config, name)
    wanted = _PROMPTS.get(info.type)
    if not wanted:
        raise InvalidCredentials(f"backend '{name}' ({info.type}) takes no secrets")
    known = {k for k, _, _ in wanted}
    clean = {k: v for k, v in secrets.items() if v != ""}
    bad = sorted(set(clean) - known)
    if bad:
        raise InvalidCredentials(f"backend '{name}' ({info.type}) takes {', '.join(sorted(known))}, not {bad[0]}")
    missing = [k for k, _, required in wanted if required and k not in clean]
    if missing:
        raise InvalidCredentials(f"backend '{name}' ({info.type}) needs {', '.join(missing)}")
    store_secrets(keyring_user(name), clean, **_keyring_words(name))
    return {"backend": name, "type": info.type, "stored": sorted(clean), "service": SERVICE}


def logout(config: dict, name: str) -> dict:
    """Delete a configured backend's secrets from the keyring."""
    from sync.compute.prominence_api import keyring_user
    from sync.credentials import forget_secrets

    info = resolve(config, name)
    return {"backend": name, "type": info.type, "removed": forget_secrets(keyring_user(name))}


# -- under the workspace lock ------------------------------------------------------------------
def add_backend(repo: Repo, name: str, kind: str, options: dict | None = None) -> BackendInfo:
    """``ws backend add``: configure a backend under the workspace lock."""
    with repo.lock():
        config = repo.reload_config()
        info = add(config, name, kind, options)
        repo.save_config(config)
    return info


def remove_backend(repo: Repo, name: str) -> None:
    """``ws backend remove``: forget a configured backend (its recorded jobs stay; its keyring entry too).

    Refused while jobs on it have not ended: ws could no longer follow or cancel them.
    """
    from catalog import jobs as q

    with repo.lock():
        config = repo.reload_config()
        live = [j["id"] for j in q.jobs_in_states(repo.catalog, q.ACTIVE_STATES)
                if j["backend"] == name]
        if live and name in _tables(config):
            raise InvalidArgument(f"backend '{name}' has {len(live)} unfinished job(s) ({', '.join(live[:3])}"
                                  f"{', ...' if len(live) > 3 else ''}); wait for them or cancel them first "
                                  "('ws jobs cancel ID')")
        remove(config, name)
        repo.save_config(config)
