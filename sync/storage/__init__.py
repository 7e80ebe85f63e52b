"""Storage backends: one small protocol (:mod:`sync.storage.base`), found by URL scheme."""

from sync.storage.base import Backend, LocalFile, ObjectInfo
from sync.storage.registry import open_backend, register

__all__ = ["Backend", "LocalFile", "ObjectInfo", "open_backend", "register"]
