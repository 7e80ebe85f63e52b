"""Compute backends that move files through a storage remote, put together here.

Storage and compute backends do not import each other (docs/architecture.md):
a compute backend without the workspace's file system (AWS Batch) is handed a
way to open its staging remote instead. The registry builds ``batch`` through
:func:`batch_backend`, which turns the staging options into that opener. The
remote is opened at the first call that needs it, never when the backend is
built: constructing a backend reads and contacts nothing, and imports neither
fsspec nor boto3.
"""

from __future__ import annotations

import os

from sync.compute.batch import BatchBackend

STAGING_OPTIONS = ("staging_name", "staging_options", "catalog", "tmp_dir")


def open_stager(url: str, name: str = "batch-staging", options: dict | None = None, catalog=None,
                tmp_dir: str | None = None):
    """A :class:`sync.staging.Stager` on the remote at ``url``, its credentials found as for ``ws push``.

    ``name`` is the remote's name (``ws login NAME``, ``WS_REMOTE_<NAME>_*``,
    and the key of its index cache in ``catalog``, a Catalog or its path).
    """
    from sync import credentials
    from sync.remote import Remote
    from sync.staging import Stager
    from sync.storage.registry import open_backend, scheme_of

    opts = dict(options or {})
    if scheme_of(url) not in ("file", "memory"):
        opts = credentials.resolve(name, url, opts)
    if isinstance(catalog, (str, os.PathLike)):
        from catalog.db import Catalog

        catalog = Catalog(catalog)
    return Stager(Remote(open_backend(url, opts, label=name), name), catalog, tmp_dir)


def batch_backend(backend_class: type = BatchBackend, **options) -> BatchBackend:
    """The ``batch`` backend: :class:`~sync.compute.batch.BatchBackend` with an opener for its staging remote.

    Takes the backend's options plus ``staging_name``, ``staging_options``
    (endpoint_url, region, profile, ...), ``catalog`` and ``tmp_dir``, which
    only the opener uses; the container gets the remote's region and endpoint.
    """
    staging = {k: options.pop(k) for k in STAGING_OPTIONS if k in options}
    url = options.get("staging")
    store = dict(staging.get("staging_options") or {})
    options.setdefault("s3_region", store.get("region") or store.get("region_name"))
    options.setdefault("s3_endpoint", store.get("endpoint_url"))
    if url:
        options["open_staging"] = lambda: open_stager(url.rstrip("/"), staging.get("staging_name") or "batch-staging",
                                                      store, staging.get("catalog"), staging.get("tmp_dir"))
    return backend_class(**options)
