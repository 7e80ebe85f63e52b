"""Moving a job's files through a remote, for compute backends without the workspace's file system.

Inputs go up like a push: each input file is cut into chunks (the same
content-defined chunks the local store uses, so ids agree with every release
ever pushed), the chunks the remote lacks are packed and uploaded (pack
first, its index second), and a small job manifest names each input's path,
SHA-256, size, mode and chunk locations. A second run of the same sweep finds
every chunk on the remote and uploads nothing but manifests.

Outputs come back from what the container entrypoint
(:mod:`sync.compute.batch_entry`) left under the job's prefix: packs and
``outputs.json``. Every chunk is checked against its SHA-256, every file
against its own, each file is written under a temporary name in its folder and
renamed into place only once all of them verified, and nothing lands outside
the destination or outside the job's declared outputs.

Keys below the remote's root (docs/format.md, "Job staging")::

    packs/<aa>/<pack id>, index/<pack id>       input chunks, shared with releases
    jobs/<job id>/<attempt>/job.json            the job manifest (written before the job is submitted)
    jobs/<job id>/<attempt>/out/packs/<pack id> output packs (job-scoped)
    jobs/<job id>/<attempt>/out/stdout, stderr  the command's output streams
    jobs/<job id>/<attempt>/out/outputs.json    written last: exit code, files, chunk locations
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass

from catalog import remotes as rq
from sync.errors import BackendError, DamagedRemote, ObjectNotFound, SyncError, UnsafeRemotePath
from sync.remote import Remote, index_bytes, index_key, pack_key
from sync.storage.base import LocalFile
from workspace.objects import packs

FORMAT = 1
INDEX_TTL_S = 300.0  # how long a view of the remote's indexes is trusted before listing them again
SPAN_MAX, GAP_MAX = 16 << 20, 1 << 20  # range GETs of outputs: like the entrypoint's


class InputChanged(BackendError):
    """An input's content is not what the job was planned with (its key would lie): exit 10."""


def job_prefix(job_id: str, attempt: int) -> str:
    """The prefix of one attempt's staging objects."""
    return f"jobs/{job_id}/{attempt}/"


def manifest_key(job_id: str, attempt: int) -> str:
    """Where the job manifest of an attempt lives."""
    return job_prefix(job_id, attempt) + "job.json"


def out_key(job_id: str, attempt: int, name: str) -> str:
    """Where the entrypoint leaves ``name`` (``outputs.json``, ``stdout``, ``packs/<id>``)."""
    return job_prefix(job_id, attempt) + "out/" + name


@dataclass
class StageStats:
    """What staging inputs did."""

    files: int = 0
    bytes_read: int = 0  # input bytes chunked (0 when every file came from the cache)
    packs_uploaded: int = 0
    chunks_uploaded: int = 0
    bytes_uploaded: int = 0


class ChunkIndex:
    """Which chunks a remote holds, and where: from its pack indexes.

    With a catalog the indexes are cached there (the cache ``ws push`` and
    ``ws pull`` use, keyed by the remote's name), so only new indexes are read;
    without one they are read into memory once per instance.
    """

    def __init__(self, remote: Remote, catalog=None):
        self.remote = remote
        self.catalog = catalog
        self._mem: dict[str, rq.RemoteChunk] = {}
        self._packs: set[str] = set()
        self._refreshed: float | None = None

    def refresh(self, force: bool = False) -> None:
        """Learn the packs added since the last look (at most once per INDEX_TTL_S unless ``force``)."""
        if not force and self._refreshed is not None and time.monotonic() - self._refreshed < INDEX_TTL_S:
            return
        self.remote.ensure_initialized()
        if self.catalog is not None:
            self.remote.sync_index(self.catalog)
        else:
            for pack_id in self.remote.list_index_ids():
                if pack_id not in self._packs:
                    self.add(pack_id, self.remote.read_index(pack_id))
        self._refreshed = time.monotonic()

    def add(self, pack_id: str, entries: list[packs.PackEntry]) -> None:
        """Record a complete pack (ours, just uploaded, or one read from the remote)."""
        self._packs.add(pack_id)
        for e in entries:
            self._mem.setdefault(e.id, rq.RemoteChunk(e.id, pack_id, e.offset, e.length, e.raw_length, e.codec))
        if self.catalog is not None:
            self.remote.remember_pack(self.catalog, pack_id, entries)

    def has(self, chunk_id: str) -> bool:
        """Whether the remote holds the chunk."""
        if chunk_id in self._mem:
            return True
        return self.catalog is not None and bool(rq.chunk_locations(self.catalog, self.remote.name, [chunk_id]))

    def locate(self, ids) -> dict[str, rq.RemoteChunk]:
        """Locations of the given chunks (unknown ones are absent)."""
        ids = set(ids)
        out = {c: self._mem[c] for c in ids if c in self._mem}
        rest = ids - set(out)
        if rest and self.catalog is not None:
            out.update(rq.chunk_locations(self.catalog, self.remote.name, rest))
        return out


class Stager:
    """Stages jobs' inputs onto one remote and brings their outputs back.

    One instance serves many jobs (a sweep): files whose stat has not changed
    since they were last chunked are not read again, and the remote's indexes
    are listed once per INDEX_TTL_S.
    """

    def __init__(self, remote: Remote, catalog=None, tmp_dir: str | None = None):
        self.remote = remote
        self.index = ChunkIndex(remote, catalog)
        self.tmp_dir = tmp_dir
        self._files: dict[tuple, tuple[str, int, list[str]]] = {}  # stat key -> (file id, size, chunk ids)

    # -- inputs -----------------------------------------------------------------------
    def stage_inputs(self, root: str, files: dict[str, str | None]) -> tuple[list[dict], StageStats]:
        """Upload the chunks of ``files`` (relative path -> expected SHA-256 or None) the remote lacks.

        Returns the manifest's ``inputs`` (path, id, size, mode, chunk
        locations) and what was done. Raises InputChanged when a file's
        content is not the expected one, UnsafeRemotePath for a path outside
        ``root``.
        """
        self.index.refresh()
        stats = StageStats()
        digests = []
        uploader = _Uploader(self, stats)
        chunker = None
        try:
            for rel in sorted(files):
                full = _inside(root, rel)
                try:
                    st = os.stat(full)
                except OSError as exc:
                    raise InputChanged(f"input {rel} cannot be read any more ({exc.strerror}); run the spec "
                                       "again") from None
                digest = self._cached(full, st, uploader)
                if digest is None:
                    if chunker is None:
                        from workspace.objects.chunking import Chunker

                        chunker = Chunker(packs.encode)
                    digest = self._digest(chunker, full, st, uploader, stats)
                expected = files[rel]
                if expected and digest[0] != expected:
                    raise InputChanged(f"input {rel} changed since the job was planned (expected "
                                       f"{expected[:12]}, found {digest[0][:12]}); run the spec again")
                digests.append((rel, digest, 0o755 if st.st_mode & stat.S_IXUSR else 0o644))
            uploader.finish()
        finally:
            uploader.close()
            if chunker is not None:
                chunker.close()
        entries = []
        for rel, (file_id, size, chunk_ids), mode in digests:
            locs = self.index.locate(chunk_ids)
            lost = [c for c in chunk_ids if c not in locs]
            if lost:  # the remote was pruned under us: forget what we knew, the next run re-uploads
                self._files.clear()
                self.index.refresh(force=True)
                raise BackendError(f"remote {self.remote.name} lost chunk {lost[0][:12]} of input {rel} while "
                                   "staging; submit again")
            entries.append({"path": rel, "id": file_id, "size": size, "mode": mode,
                            "chunks": [[c, locs[c].pack_id, locs[c].offset, locs[c].length, locs[c].raw_length,
                                        locs[c].codec] for c in chunk_ids]})
        stats.files = len(entries)
        return entries, stats

    @staticmethod
    def _stat_key(full: str, st: os.stat_result) -> tuple:
        return os.path.realpath(full), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns

    def _cached(self, full: str, st: os.stat_result, uploader: "_Uploader"):
        """A file chunked before with the same stat, whose chunks the remote still holds; else None."""
        known = self._files.get(self._stat_key(full, st))
        if known and all(self.index.has(c) or uploader.has(c) for c in known[2]):
            return known
        return None

    def _digest(self, chunker, full: str, st: os.stat_result, uploader: "_Uploader", stats: StageStats):
        digest = chunker.digest_file(full, uploader.add)
        stats.bytes_read += digest.size
        self._files[self._stat_key(full, st)] = (digest.id, digest.size, list(digest.chunk_ids))
        return self._files[self._stat_key(full, st)]

    def write_manifest(self, job_id: str, attempt: int, manifest: dict) -> str:
        """Store the job manifest of an attempt; returns its key."""
        key = manifest_key(job_id, attempt)
        self.remote.backend.put(key, json.dumps(dict(manifest, format=FORMAT), sort_keys=True).encode())
        return key

    # -- outputs and logs --------------------------------------------------------------
    def result(self, job_id: str, attempt: int) -> dict | None:
        """The attempt's ``outputs.json`` (exit code, files), or None while there is none."""
        raw = self.read_out(job_id, attempt, "outputs.json")
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise DamagedRemote(f"remote {self.remote.name}: {out_key(job_id, attempt, 'outputs.json')} is "
                                "not JSON") from None
        if not isinstance(doc, dict) or int(doc.get("format", 0)) != FORMAT:
            raise DamagedRemote(f"remote {self.remote.name}: {out_key(job_id, attempt, 'outputs.json')} has an "
                                f"unknown format {doc.get('format') if isinstance(doc, dict) else doc!r}")
        return doc

    def read_out(self, job_id: str, attempt: int, name: str) -> bytes | None:
        """One object the entrypoint left (``stdout``, ``stderr``, ``outputs.json``), or None."""
        try:
            return self.remote.backend.get(out_key(job_id, attempt, name))
        except ObjectNotFound:
            return None

    def fetch_outputs(self, job_id: str, attempt: int, dest: str, files: list[str], dirs: list[str]) -> list[str]:
        """Write the attempt's staged outputs into ``dest``; the relative paths written.

        Only outputs below the declared ``files`` and ``dirs`` are accepted
        (UnsafeRemotePath, exit 5, otherwise); each file is verified and put
        in place by a rename once every file verified (DamagedRemote, exit 6).
        """
        doc = self.result(job_id, attempt)
        if doc is None:
            return []
        declared = [_clean(p) for p in [*files, *dirs]]  # a declared file may turn out to be a folder
        staged: list[tuple[str, str]] = []
        try:
            for f in doc.get("files") or []:
                rel = _clean(str(f.get("path")))
                if not any(rel == d or rel.startswith(d + "/") for d in declared):
                    raise UnsafeRemotePath(f"job {job_id} staged out {rel}, which is not among its declared outputs")
                try:
                    full = _inside(dest, rel, create=True)
                    staged.append((self._write_file(job_id, attempt, f, full), full))
                except OSError as exc:  # a file where a folder should be, a full disk...
                    raise SyncError(f"cannot write output {rel} of job {job_id} into {dest}: "
                                    f"{exc.strerror or exc}") from None
            for tmp, full in staged:
                os.replace(tmp, full)
        finally:
            for tmp, _ in staged:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return [_clean(str(f["path"])) for f in doc.get("files") or []]

    def _write_file(self, job_id: str, attempt: int, f: dict, full: str) -> str:
        folder = os.path.dirname(full)
        os.makedirs(folder, exist_ok=True)
        if os.path.isdir(full) and not os.path.islink(full):
            raise UnsafeRemotePath(f"output {f['path']}: a folder is in the way")
        fd, tmp = tempfile.mkstemp(prefix=".ws-fetch-", dir=folder)
        whole, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                for pack_id, start, end, chunks in _runs(f.get("chunks") or []):
                    key = out_key(job_id, attempt, f"packs/{pack_id}")
                    try:
                        data = self.remote.backend.get(key, start, end)
                    except ObjectNotFound:
                        raise DamagedRemote(f"remote {self.remote.name}: {key} is missing") from None
                    for cid, _pack, offset, length, raw_length, codec in chunks:
                        try:
                            raw = packs.verified_chunk(cid, codec, data[offset - start:offset - start + length],
                                                       raw_length)
                        except packs.PackError as exc:
                            raise DamagedRemote(f"remote {self.remote.name}: {key}: {exc}") from None
                        whole.update(raw)
                        out.write(raw)
                        size += len(raw)
            if whole.hexdigest() != f.get("id") or size != f.get("size"):
                raise DamagedRemote(f"job {job_id}: output {f['path']} does not match its SHA-256")
            os.chmod(tmp, 0o755 if int(f.get("mode") or 0o644) & 0o100 else 0o644)
            return tmp
        except BaseException:
            os.unlink(tmp)
            raise

    def forget_job(self, job_id: str) -> int:
        """Delete every staging object of a job (all attempts); returns how many."""
        objects = self.remote.backend.list(f"jobs/{job_id}/")
        for obj in objects:
            self.remote.backend.delete(obj.key)
        return len(objects)


class _Uploader:
    """Packs new chunks (~32 MiB packs) and uploads each pack, then its index, as it is sealed."""

    def __init__(self, stager: Stager, stats: StageStats):
        self.stager = stager
        self.stats = stats
        self.work = tempfile.mkdtemp(prefix="ws-stage-", dir=stager.tmp_dir)
        self.writer: packs.PackWriter | None = None
        self.pending: set[str] = set()  # in the open pack

    def has(self, chunk_id: str) -> bool:
        return chunk_id in self.pending

    def add(self, piece) -> None:
        """The chunker's sink: keep a chunk the remote lacks, skip the others."""
        try:
            if piece.id in self.pending or self.stager.index.has(piece.id):
                return
            if self.writer is None:
                self.writer = packs.PackWriter(self.work)
            self.writer.add(piece.id, piece.raw_length, piece.codec, piece.payload)
            self.pending.add(piece.id)
            if self.writer.size >= packs.TARGET_PACK_SIZE:
                self._upload()
        finally:
            piece.done()

    def finish(self) -> None:
        if self.writer is not None:
            self._upload()

    def _upload(self) -> None:
        writer, self.writer = self.writer, None
        pack_id, path, entries = writer.finish(lambda pid: os.path.join(self.work, pid))
        try:
            packs.verify_pack(path, pack_id)  # damaged bytes never reach a remote
            remote = self.stager.remote
            remote.backend.put(pack_key(pack_id), LocalFile(path))
            remote.backend.put(index_key(pack_id), index_bytes(entries))
            self.stats.bytes_uploaded += os.path.getsize(path) + len(entries) * packs.INDEX.size
        finally:
            os.unlink(path)
        self.stager.index.add(pack_id, entries)
        self.stats.packs_uploaded += 1
        self.stats.chunks_uploaded += len(entries)
        self.pending.clear()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        shutil.rmtree(self.work, ignore_errors=True)


def _clean(path: str) -> str:
    """A declared or staged path as a clean relative POSIX path; UnsafeRemotePath otherwise."""
    rel = path.rstrip("/")
    parts = rel.split("/")
    if (not rel or rel.startswith("/") or "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in parts)
            or parts[0] == ".ws"):
        raise UnsafeRemotePath(f"refusing path {path!r}: not a clean relative path inside the workspace")
    return rel


def _inside(root: str, rel: str, create: bool = False) -> str:
    """``root/rel``, refusing paths that leave ``root`` (by their text or through existing symlinks)."""
    rel = _clean(rel)
    real_root = os.path.realpath(root)
    full = os.path.join(real_root, *rel.split("/"))
    folder = os.path.dirname(full)
    if create:
        _make_dirs(real_root, folder)
    real = os.path.realpath(folder)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafeRemotePath(f"{rel} would lead outside {root} (a symlinked folder)")
    return full


def _make_dirs(root: str, folder: str) -> None:
    """Create ``folder`` below ``root`` one level at a time, never following a symlink out of ``root``."""
    rel = os.path.relpath(folder, root)
    cur = root
    for part in ([] if rel == "." else rel.split(os.sep)):
        cur = os.path.join(cur, part)
        real = os.path.realpath(cur)
        if real != root and not real.startswith(root + os.sep):
            raise UnsafeRemotePath(f"{os.path.relpath(cur, root)} is a symlink leading outside {root}")
        os.makedirs(cur, exist_ok=True)


def _runs(chunks: list) -> list:
    """A file's chunk locations grouped into range GETs (neighbours in one pack read together)."""
    groups: list = []
    for c in chunks:
        last = groups[-1] if groups else None
        if last and last[0] == c[1] and 0 <= c[2] - last[2] <= GAP_MAX and c[2] + c[3] - last[1] <= SPAN_MAX:
            last[2] = c[2] + c[3]
            last[3].append(c)
        else:
            groups.append([c[1], c[2], c[2] + c[3], [c]])
    return groups

