"""Storage on any fsspec filesystem: local folders, ``s3://bucket/prefix``, and the rest.

Local folders get atomic, durable writes (temporary name, fsync, rename; a hard
link for create-only puts, which fails if the key exists). Whole files (packs)
are copied, never shared: a reflink where the file system can (the copy shares
no bytes once either side changes), else an in-kernel ``copy_file_range``, else
a plain copy; so damage on the remote never reaches the local store, and the
remote stays a second copy. Hard links between them are an opt-in
(``link=true``, docs/remotes.md says what it risks). S3 gets create-only
puts through ``If-None-Match: *`` and multipart uploads for large objects
(s3fs). Other filesystems fall back to check-then-write for create-only puts,
which is racy between two writers; docs/remotes.md says so.
"""

from __future__ import annotations

import os
import shutil
import uuid

from sync.errors import (MissingCredentials, ObjectExists, ObjectNotFound, RejectedCredentials, SyncError,
                         TransientError)
from sync.storage.base import LocalFile, ObjectInfo, Payload, check_key, payload_bytes
from sync.urls import redact
from workspace.objects.packs import fsync_dir

# S3 parts of 8 MiB: 32 MiB packs go up as 4 parts, in parallel
DEFAULT_PART_SIZE = 8 * 1024 * 1024
_S3_OPTIONS = {"endpoint_url", "region", "region_name", "key", "secret", "token", "aws_access_key_id",
               "aws_secret_access_key", "aws_session_token", "profile", "anon", "part_size"}


class FsspecBackend:
    """A remote root on an fsspec filesystem."""

    def __init__(self, url: str, options: dict | None = None, label: str | None = None):
        import fsspec

        self.url = url
        self.label = label or url
        options = dict(options or {})
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        self.protocol = protocol
        self.part_size = int(options.pop("part_size", DEFAULT_PART_SIZE))
        # folders: "link=true" hard-links whole files instead of copying them (same filesystem only). Off by
        # default: one inode for both means damage to either copy is damage to both (docs/remotes.md)
        self.link = str(options.pop("link", "false")).lower() in ("1", "true", "yes")
        if protocol in ("s3", "s3a"):
            options = _s3_options(options)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError, TypeError) as exc:
            raise SyncError(f"remote {self.label}: cannot open {redact(url)}: {redact(str(exc))}") from exc
        self.root = self.root.rstrip("/")
        self.local = protocol in ("file", "local")
        if self.local:
            self.root = os.path.abspath(self.root)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    # -- the protocol ---------------------------------------------------------
    def stat(self, key: str) -> ObjectInfo | None:
        """Size of an object or None."""
        try:
            info = self._call(self.fs.info, self._path(key))
        except ObjectNotFound:
            return None
        if info.get("type") == "directory":
            return None
        return ObjectInfo(key, int(info.get("size") or 0))

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes of an object, optionally ``[start, end)``."""
        data = self._call(self.fs.cat_file, self._path(key), start=start, end=end)
        if end is not None and len(data) != end - (start or 0):
            raise SyncError(f"remote {self.label}: short read of {key} ({len(data)} of {end - (start or 0)} bytes)")
        return data

    def get_file(self, key: str, local_path: str) -> int:
        """Copy a whole object to a local file (streamed download; for folders a reflink or kernel copy).

        With ``link=true`` a folder remote hands out a hard link instead (its
        objects are never modified in place, every put is a new file renamed
        over the key); callers must not modify the file either.
        """
        path = self._path(key)
        if self.local:
            try:
                if not (self.link and _try_link(path, local_path)):
                    copy_file(path, local_path)
            except FileNotFoundError as exc:
                raise ObjectNotFound(f"remote {self.label}: not found: {key}") from exc
            except OSError as exc:
                raise SyncError(f"remote {self.label}: cannot read {key}: {exc.strerror or exc}") from exc
        else:
            self._call(self.fs.get_file, path, local_path)
        return os.path.getsize(local_path)

    def put(self, key: str, data: Payload, exclusive: bool = False) -> None:
        """Store an object; ``exclusive`` refuses to replace an existing one."""
        path = self._path(key)
        if self.local:
            return self._put_local(path, key, data, exclusive)
        if self.protocol in ("s3", "s3a"):
            return self._put_s3(path, key, data, exclusive)
        if exclusive and self.stat(key) is not None:  # racy, but the best a generic fs offers
            raise ObjectExists(f"remote {self.label}: {key} already exists")
        if isinstance(data, LocalFile):
            self._call(self.fs.put_file, data.path, path)
        else:
            self._call(self.fs.pipe_file, path, payload_bytes(data))

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted."""
        if self.local:
            return _list_local(self.root, prefix)
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = f"{self.root}/{base}".rstrip("/")
        try:
            self.fs.invalidate_cache()
            found = self._call(self.fs.find, top, detail=True)
        except ObjectNotFound:
            return []
        out = []
        for path, info in found.items():
            key = path[len(self.root) + 1:] if path.startswith(self.root + "/") else path
            if key.startswith(prefix) and info.get("type") != "directory":
                out.append(ObjectInfo(key, int(info.get("size") or 0)))
        return sorted(out)

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        try:
            self._call(self.fs.rm_file, self._path(key))
        except ObjectNotFound:
            pass

    # -- helpers ----------------------------------------------------------------
    def _put_s3(self, path: str, key: str, data: Payload, exclusive: bool) -> None:
        mode = "create" if exclusive else "overwrite"
        try:
            if isinstance(data, LocalFile):
                self._call(self.fs.put_file, data.path, path, chunksize=self.part_size, mode=mode)
            else:
                self._call(self.fs.pipe_file, path, payload_bytes(data), chunksize=self.part_size, mode=mode)
        except ObjectExists:
            raise ObjectExists(f"remote {self.label}: {key} already exists") from None

    def _put_local(self, path: str, key: str, data: Payload, exclusive: bool) -> None:
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
            if isinstance(data, LocalFile):
                if not (self.link and _try_link(data.path, tmp)):
                    copy_file(data.path, tmp, durable=True)
            else:
                _write_local(tmp, data)
            try:
                if exclusive:
                    try:
                        os.link(tmp, path)  # fails if the key exists: create-only, atomically
                    except FileExistsError:
                        raise ObjectExists(f"remote {self.label}: {key} already exists") from None
                else:
                    os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            fsync_dir(folder)
        except PermissionError as exc:
            raise RejectedCredentials(f"remote {self.label}: permission denied writing {key}: {exc}") from exc
        except OSError as exc:
            raise SyncError(f"remote {self.label}: cannot write {key}: {exc.strerror or exc}") from exc

    def _call(self, fn, *args, **kwargs):
        """Run one filesystem call, translating its errors into ours."""
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"remote {self.label}: not found: {args[0] if args else ''}") from exc
        except FileExistsError as exc:
            raise ObjectExists(f"remote {self.label}: already exists: {args[0] if args else ''}") from exc
        except Exception as exc:  # fsspec backends raise many unrelated types
            raise translate_error(exc, self.label) from exc


def translate_error(exc: BaseException, label: str) -> SyncError:
    """One of our errors for whatever a filesystem raised (a URL it echoes loses its userinfo)."""
    name = type(exc).__name__
    text = redact(str(exc)) or name
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError"):
        return MissingCredentials(f"remote {label}: no credentials ({text}); run 'ws login {label}'")
    if isinstance(exc, PermissionError) or any(w in text for w in ("AccessDenied", "InvalidAccessKeyId",
                                                                    "SignatureDoesNotMatch", "Forbidden")):
        return RejectedCredentials(f"remote {label}: access denied ({text}); check 'ws login {label}'")
    if any(w in name for w in ("Connect", "Timeout", "ServerDisconnected")) or isinstance(
            exc, (ConnectionError, TimeoutError)):
        return TransientError(f"remote {label}: connection failed: {text}")
    if "SlowDown" in text or "ServiceUnavailable" in text or "InternalError" in text:
        return TransientError(f"remote {label}: service busy: {text}")
    return SyncError(f"remote {label}: {text}")


def _s3_options(options: dict) -> dict:
    """fsspec/s3fs keyword arguments from our remote options and credentials."""
    out: dict = {"skip_instance_cache": True, "use_listings_cache": False}
    client: dict = {}
    for k, v in options.items():
        if k == "endpoint_url":
            out["endpoint_url"] = v
        elif k in ("region", "region_name"):
            client["region_name"] = v
        elif k in ("key", "aws_access_key_id"):
            out["key"] = v
        elif k in ("secret", "aws_secret_access_key"):
            out["secret"] = v
        elif k in ("token", "aws_session_token"):
            out["token"] = v
        elif k == "anon":
            out["anon"] = str(v).lower() in ("1", "true", "yes")
        else:
            out[k] = v
    if client:
        out["client_kwargs"] = client
    return out


_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int), a reflink of a whole file


def copy_file(src: str, dst: str, durable: bool = False) -> None:
    """Make ``dst`` (a new file) an independent copy of ``src``, as cheaply as the file systems allow.

    A reflink first (btrfs, XFS, bcachefs...: no bytes are written, and the two
    files share nothing once either changes), then ``copy_file_range`` (an
    in-kernel copy; NFS 4.2 and SMB servers copy without the bytes crossing the
    network), then a plain copy. ``durable``: fsync before returning.
    """
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if not _reflink(fin.fileno(), fout.fileno()):
            done = _kernel_copy(fin.fileno(), fout.fileno())
            fin.seek(done)
            fout.seek(done)
            shutil.copyfileobj(fin, fout, 4 * 1024 * 1024)  # what the kernel did not copy (usually nothing)
        if durable:
            fout.flush()
            os.fsync(fout.fileno())


def _reflink(src_fd: int, dst_fd: int) -> bool:
    """Clone a whole file (FICLONE); False where the file system or platform cannot."""
    try:
        import fcntl

        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return True
    except (ImportError, OSError):  # EOPNOTSUPP, EXDEV, EINVAL, ENOTTY: not here
        return False


def _kernel_copy(src_fd: int, dst_fd: int) -> int:
    """Copy with copy_file_range from the start of both files; returns the bytes copied (0 if unavailable)."""
    if not hasattr(os, "copy_file_range"):
        return 0
    size = os.fstat(src_fd).st_size
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src_fd, dst_fd, min(size - done, 1 << 30), done, done)
            if n == 0:
                break
            done += n
    except OSError:  # EXDEV on older kernels, ENOSYS, EOPNOTSUPP: the rest goes the ordinary way
        pass
    return done


def _try_link(src: str, tmp: str) -> bool:
    """Hard-link a finished local file instead of copying it (same filesystem only; ``link=true``).

    Uploaded files (sealed packs) are never modified afterwards, so sharing the
    inode saves a full copy of every pack; but a damaged block is then damaged
    in both places, so it is an opt-in.
    """
    try:
        os.link(src, tmp)
        return True
    except OSError:
        return False


def _write_local(tmp: str, data: Payload) -> None:
    with open(tmp, "wb") as f:
        if isinstance(data, LocalFile):
            with data.open() as src:
                shutil.copyfileobj(src, f, 4 * 1024 * 1024)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())



def _list_local(root: str, prefix: str) -> list[ObjectInfo]:
    base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    top = os.path.join(root, base) if base else root
    out = []
    for folder, dirs, files in os.walk(top):
        rel_dir = os.path.relpath(folder, root)
        for name in files:
            if name.startswith(".tmp-"):
                continue  # an upload in progress (or abandoned): not an object
            key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
            if key.startswith(prefix):
                try:
                    out.append(ObjectInfo(key, os.path.getsize(os.path.join(folder, name))))
                except FileNotFoundError:
                    continue
    return sorted(out)
