"""Finding a backend by URL scheme: one registry for every storage service.

A plain path or ``file://`` is a local folder, ``memory://NAME`` the in-process
store, ``grpc://HOST:PORT`` (``grpcs://``) a ws server; any other scheme goes
to fsspec (``s3://``, ``gcs://``, ``sftp://`` ...) unless a more specific
factory is registered for it.
"""

from __future__ import annotations

from typing import Callable

from sync.errors import SyncError
from sync.urls import check_no_credentials, check_options, redact

Factory = Callable[[str, dict, str], object]
_FACTORIES: dict[str, Factory] = {}


class UnsupportedURL(SyncError):
    """A remote URL whose scheme neither this registry nor fsspec knows (exit 2: a bad argument value)."""

    exit_code = 2


def register(scheme: str, factory: Factory) -> None:
    """Serve ``scheme://`` URLs with ``factory(url, options, label)``."""
    _FACTORIES[scheme] = factory


def scheme_of(url: str) -> str:
    """The URL's scheme; plain paths are ``file``."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def protocols_of(url: str) -> list[str]:
    """Every protocol a URL uses: ``s3`` for ``s3://b/p``, both of ``simplecache::s3://b/p``; ``file`` for paths."""
    if "://" not in url:
        return ["file"]
    *chain, last = url.split("::")
    return [p.lower() for p in chain] + [scheme_of(last)]


def check_url(url: str) -> str:
    """``url`` when something can open it (our registry, or fsspec); UnsupportedURL naming the known schemes."""
    unknown = [p for p in protocols_of(url) if p not in _FACTORIES and p != "file"]
    if unknown:
        from fsspec.registry import known_implementations, registry

        known = set(_FACTORIES) | set(known_implementations) | set(registry)
        bad = [p for p in unknown if p not in known]
        if bad:
            raise UnsupportedURL(f"cannot use remote URL {redact(url)!r}: no storage backend for '{bad[0]}://'; "
                                 f"known: {', '.join(sorted(known))}")
    return url


def normalize_url(url: str) -> str:
    """Plain relative paths become absolute ``file`` paths; other URLs are kept."""
    import os

    if not url or not url.strip():
        raise SyncError("a remote URL cannot be empty")
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    return url


def open_backend(url: str, options: dict | None = None, label: str | None = None, retries: int = 4):
    """A backend for ``url`` wrapped in retries; ``label`` names the remote in messages."""
    from sync.storage.retry import RetryBackend

    options = dict(options or {})
    hint = "give secrets with 'ws login NAME' or WS_REMOTE_<NAME>_<KEY> environment variables"
    check_no_credentials(url, hint)  # every URL ws opens comes through here
    check_options({k: v for k, v in options.items() if k == "endpoint_url"}, lambda k, v: hint)  # others: secrets
    check_url(url)
    scheme = scheme_of(url)
    factory = _FACTORIES.get(scheme, _fsspec)
    backend = factory(url, options, label or url)
    return RetryBackend(backend, attempts=retries) if retries > 1 else backend


def _memory(url: str, options: dict, label: str):
    from sync.storage.memory import MemoryBackend

    return MemoryBackend(url)


def _grpc(url: str, options: dict, label: str):
    from sync.storage.grpc_backend import GrpcBackend  # grpc is loaded only for ws server remotes

    return GrpcBackend(url, options, label)


def _fsspec(url: str, options: dict, label: str):
    from sync.storage.fsspec_backend import FsspecBackend

    return FsspecBackend(url, options, label)


register("memory", _memory)
register("grpc", _grpc)
register("grpcs", _grpc)
