"""Bringing a PROMINENCE job's outputs back: output files and folders from their URLs, stdout and stderr.

PROMINENCE stages a job's ``outputFiles`` and ``outputDirs`` out to its object
storage and lists, in the job's description, a temporary URL for each (a
folder as a ``.tgz`` of it, made from the job's folder, so its entries carry
the folder's path). Each file is written under a temporary name in its
destination folder and renamed into place: a half-downloaded output never
appears under its real name. Nothing lands outside the destination: folder
archives may hold only regular files and folders below the declared folder
(links and anything else are refused, exit 5).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile

from sync.compute.prominence_jobs import relative_path
from sync.errors import UnsafeRemotePath


def match_outputs(declared: list[str], listed: list) -> list[tuple[str, str]]:
    """(declared path, URL) for each declared output PROMINENCE staged out (an empty URL: it did not).

    Listed entries are matched by position (PROMINENCE lists them in the order
    of the job description; a factory instance lists its template's names),
    falling back to the name when the counts differ.
    """
    entries = [e for e in listed if isinstance(e, dict)]
    if len(entries) == len(declared):
        pairs = zip(declared, entries)
    else:
        by_name = {relative_path(str(e.get("name") or "")): e for e in entries if e.get("name")}
        pairs = [(p, by_name.get(relative_path(p), {})) for p in declared]
    return [(relative_path(p), str(e.get("url") or "")) for p, e in pairs]


def target(dest: str, rel: str, is_dir: bool = False) -> str:
    """``dest/rel``, refusing a path that existing symlinks would lead outside ``dest``."""
    root = os.path.realpath(dest)
    full = os.path.join(root, *rel.split("/"))
    real = os.path.realpath(full if is_dir else os.path.dirname(full))
    if real != root and not real.startswith(root + os.sep):
        raise UnsafeRemotePath(f"output '{rel}' would be written outside {dest} (a symlinked folder)")
    return full


def place(download, url: str, dest: str, rel: str) -> None:
    """Download ``url`` (``download(url, path)``) to ``dest/rel`` through a temporary file in the same folder."""
    full = target(dest, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ws-fetch-", dir=os.path.dirname(full))
    os.close(fd)
    try:
        download(url, tmp)
        os.replace(tmp, full)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def place_dir(download, url: str, dest: str, rel: str, scratch: str) -> list[str]:
    """Download a folder's ``.tgz`` and unpack the entries below ``rel`` into ``dest``; the files written."""
    os.makedirs(scratch, exist_ok=True)
    fd, archive = tempfile.mkstemp(prefix=".ws-fetch-", suffix=".tgz", dir=scratch)
    os.close(fd)
    written: list[str] = []
    try:
        download(url, archive)
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = posixpath.normpath(member.name)
                if name == ".":
                    continue
                if name != rel and not name.startswith(rel + "/"):
                    raise UnsafeRemotePath(f"output folder '{rel}': its archive holds '{member.name}', "
                                           "outside the folder")
                if member.isdir():
                    os.makedirs(target(dest, name, is_dir=True), exist_ok=True)
                elif member.isfile():
                    _unpack(tar, member, target(dest, name))
                    written.append(name)
                else:
                    raise UnsafeRemotePath(f"output folder '{rel}': '{member.name}' is a link or special file; "
                                           "ws only restores files and folders")
    finally:
        os.unlink(archive)
    return written


def _unpack(tar: tarfile.TarFile, member: tarfile.TarInfo, full: str) -> None:
    os.makedirs(os.path.dirname(full), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ws-fetch-", dir=os.path.dirname(full))
    try:
        with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o755 if member.mode & 0o100 else 0o644)
        os.replace(tmp, full)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file (stdout/stderr into a job's log folder)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
