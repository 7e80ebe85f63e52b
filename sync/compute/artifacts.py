"""Artifacts: URLs a spec lists, fetched into the job's folder before it runs (backends on this file system).

Any fsspec URL works (``https://``, ``s3://``, ``file://``, ...). Each artifact
lands in the job's working folder under the last part of the URL's path (the
query string, as in a presigned URL, is not part of the name), written under
a temporary name and renamed into place, so a job never sees half a file. A
URL that cannot be read fails the attempt with one line naming it (the token
of a presigned URL is never shown).
"""

from __future__ import annotations

import os
import posixpath
import urllib.parse

from sync.errors import BackendError
from sync.urls import redact

CHUNK = 1 << 20


def artifact_name(url: str) -> str:
    """The file name an artifact gets: the last part of the URL's path, without its query."""
    path = urllib.parse.urlsplit(url).path
    name = posixpath.basename(path.rstrip("/"))
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise BackendError(f"artifact {_shown(url)}: its URL names no file (it must end in a file name)")
    return urllib.parse.unquote(name)


def _shown(url: str) -> str:
    return redact(url.split("?", 1)[0])  # a presigned URL's signature stays out of messages


def fetch_artifacts(urls: list[str], dest: str) -> list[str]:
    """Fetch every URL into the folder ``dest`` (created if needed); returns the paths written."""
    if not urls:
        return []
    import fsspec

    os.makedirs(dest, exist_ok=True)
    written = []
    for url in urls:
        name = artifact_name(url)
        final = os.path.join(dest, name)
        tmp = os.path.join(dest, f".ws-tmp-artifact-{os.getpid()}-{name}"[:255])
        try:
            with fsspec.open(url, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            os.replace(tmp, final)
        except Exception as exc:  # fsspec raises what each filesystem raises: one line for all of them
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            detail = str(exc).replace(url, _shown(url)).splitlines()[0] if str(exc) else type(exc).__name__
            raise BackendError(f"could not fetch artifact {_shown(url)}: {detail}") from None
        written.append(final)
    return written
