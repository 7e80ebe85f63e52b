"""Compute backends found by name: ``names()`` and ``get(name, **options)``.

Backends are registered as "module:Class" strings so that listing names never
imports a backend's dependencies (boto3 for AWS Batch costs 0.2 s).
"""

from __future__ import annotations

import importlib

from sync.compute.base import ComputeBackend
from sync.errors import UnknownBackend

_BACKENDS: dict[str, str] = {
    "local": "sync.compute.local:LocalBackend",
    "batch": "sync.staged:batch_backend",  # BatchBackend with its staging remote's opener (sync/staged.py)
    "prominence": "sync.compute.prominence:ProminenceBackend",
    "slurm": "sync.compute.slurm:SlurmBackend",
}


def register(name: str, target: str | type) -> None:
    """Make a backend available under ``name`` ("module:Class" or the class itself)."""
    _BACKENDS[name] = target


def names() -> list[str]:
    """The names of every known backend, sorted."""
    return sorted(_BACKENDS)


def target(name: str):
    """The class (or factory) registered under ``name``, imported."""
    target = _BACKENDS.get(name)
    if target is None:
        raise UnknownBackend(f"unknown compute backend '{name}' (known: {', '.join(names())})")
    if isinstance(target, str):
        module, _, cls_name = target.partition(":")
        target = getattr(importlib.import_module(module), cls_name)
    return target


def get(name: str, **options) -> ComputeBackend:
    """A new backend instance for ``name``; options go to its constructor."""
    return target(name)(**options)
