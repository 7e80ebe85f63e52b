"""The ws server: a remote (docs/format.md) served over gRPC, with tokens and roles (docs/server.md).

``serve(root, host, port, tls_cert=None, tls_key=None)`` starts one and returns a
handle (``.port``, ``.url``, ``.stop()``); ``create_token``, ``list_tokens`` and
``revoke_token`` manage who may use it. Clients reach it as the storage backend
``grpc://HOST:PORT`` (``grpcs://`` with TLS), :mod:`sync.storage.grpc_backend`.

Names are imported on first use, so that the client (which needs only the
generated messages in :mod:`sync.server.ws_pb2`) does not load the server.
"""

from __future__ import annotations

_EXPORTS = {
    "serve": "sync.server.app", "ServerHandle": "sync.server.app", "ServerStartError": "sync.server.app",
    "create_token": "sync.server.tokens", "list_tokens": "sync.server.tokens", "revoke_token": "sync.server.tokens",
    "TokenInfo": "sync.server.tokens", "ROLES": "sync.server.tokens",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sync.server' has no attribute {name!r}")
