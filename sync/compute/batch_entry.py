"""The AWS Batch container entrypoint: stage the inputs in, run the command, stage the outputs out.

Every ws job on AWS Batch runs this inside its container::

    python3 -m sync.compute.batch_entry s3://BUCKET/PREFIX/jobs/<job id>/<attempt>/job.json

(or the same code embedded in the job definition's command, see
:func:`sync.compute.batch_jobs.entry_command`, so the image needs no ws). It
uses the standard library only, plus :mod:`sync.compute.batch_s3` (standard
library too), so the image needs ``python3`` (3.8 or newer) and ``/bin/sh``.
Chunks that a ws remote holds zstd-compressed also need the ``zstandard``
module or Python 3.14 (``compression.zstd``); without either the job fails at
stage-in saying so. It must keep running on Python 3.8: no newer syntax.

1. It reads the job manifest (``job.json``, written by :mod:`sync.staging`):
   the command, its folder, the declared outputs and every input file with
   its SHA-256, size, mode and chunk locations in the remote's packs.
2. It writes each input under the job's root folder (``$WS_JOB_ROOT``, else a
   new folder under ``$TMPDIR``): its chunks are fetched with range GETs,
   each one checked against its SHA-256, the whole file too, through a
   temporary name and a rename.
3. It runs the command with ``/bin/sh -c`` in ``<root>/<workdir>``, its own
   process group, ``WS_WORKSPACE`` set to the root. Output goes to the
   container's stdout and stderr as it comes (CloudWatch Logs shows it while
   the job runs) and into ``out/stdout`` and ``out/stderr`` once it ended.
   SIGTERM (what ``terminate_job`` sends) is passed on to the command.
4. It stages out the declared outputs that exist, as packs under
   ``jobs/<job id>/<attempt>/out/packs/`` and, written last,
   ``out/outputs.json`` listing each file with its chunk locations.

It exits with the command's exit code, so AWS Batch reports it; 121 when the
inputs could not be staged in, 122 when the outputs could not be staged out,
123 when the manifest is unusable, 143 after a SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

if "ws_batch_s3" in sys.modules:  # embedded in a job definition: the bootstrap defined it
    import ws_batch_s3 as s3
else:
    from sync.compute import batch_s3 as s3

FORMAT = 1
EXIT_STAGE_IN, EXIT_STAGE_OUT, EXIT_MANIFEST = 121, 122, 123
PIECE = 4 * 1024 * 1024  # outputs are cut into pieces of this size (a job-scoped transfer, no dedup)
PACK_TARGET = 32 * 1024 * 1024
SPAN_MAX, GAP_MAX = 16 * 1024 * 1024, 1024 * 1024  # range GETs: how much to read at once, what gap to read over

# the pack format of workspace/objects/packs.py (docs/format.md); tests check that both agree
MAGIC, TRAILER_MAGIC, ENTRY_MAGIC = b"WSPACK01", b"WSIDX001", b"WC"
ENTRY, INDEX, TRAILER = struct.Struct("<2sBBQQ32s"), struct.Struct("<32sQQQB"), struct.Struct("<QQ8s")
RAW, ZSTD = 0, 1


class StageError(Exception):
    """A step of the entrypoint failed; the message says what, for the job's log."""


def log(message: str) -> None:
    """One line on stderr (it reaches CloudWatch Logs with the command's output)."""
    sys.stderr.write("ws-batch: %s\n" % message)
    sys.stderr.flush()


# -- zstd, when the image has it ----------------------------------------------------------
def _zstd():
    try:
        import zstandard

        return (lambda data, size: zstandard.ZstdDecompressor().decompress(data, max_output_size=size),
                lambda data: zstandard.ZstdCompressor(level=1).compress(data))
    except ImportError:
        pass
    try:
        from compression import zstd  # Python 3.14

        return (lambda data, size: zstd.decompress(data), lambda data: zstd.compress(data, level=1))
    except ImportError:
        return None


ZSTD_CODEC = _zstd()


def decoded(chunk_id: str, codec: int, payload: bytes, raw_length: int) -> bytes:
    """A chunk's raw bytes from its stored bytes, checked against its length and SHA-256."""
    if codec == ZSTD:
        if ZSTD_CODEC is None:
            raise StageError("chunk %s is zstd-compressed but this image has no zstd decoder: install the "
                             "'zstandard' module (pip install zstandard) or use Python 3.14+" % chunk_id[:12])
        try:
            payload = ZSTD_CODEC[0](payload, raw_length)
        except Exception as exc:  # the module's own error type
            raise StageError("chunk %s cannot be decompressed: %s" % (chunk_id[:12], exc)) from None
    elif codec != RAW:
        raise StageError("chunk %s has unknown codec %d" % (chunk_id[:12], codec))
    if len(payload) != raw_length or hashlib.sha256(payload).hexdigest() != chunk_id:
        raise StageError("chunk %s fails its SHA-256 check" % chunk_id[:12])
    return bytes(payload)


# -- paths ---------------------------------------------------------------------------------
def safe_path(root: str, rel: str) -> str:
    """``root/rel`` for a clean relative POSIX path; refuses anything that would leave ``root``."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in parts):
        raise StageError("refusing path %r: not a clean relative path" % rel)
    full = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    parent = os.path.realpath(os.path.dirname(full))
    if parent != real_root and not parent.startswith(real_root + os.sep):
        raise StageError("refusing path %r: a symlink leads it outside the job's folder" % rel)
    return full


# -- the job's files -------------------------------------------------------------------------
class Staging:
    """The S3 side of one job: its manifest, the remote's packs, its ``out/`` prefix."""

    def __init__(self, client, manifest_url: str):
        self.client = client
        self.bucket, self.manifest_key = s3.split_url(manifest_url)
        self.out = self.manifest_key.rsplit("/", 1)[0] + "/out/"
        self.root_key = ""

    def manifest(self) -> dict:
        data = json.loads(self.client.get(self.bucket, self.manifest_key).decode("utf-8"))
        if not isinstance(data, dict) or int(data.get("format", 0)) != FORMAT:
            raise StageError("job manifest s3://%s/%s has format %r; this entrypoint reads format %d"
                             % (self.bucket, self.manifest_key, data.get("format"), FORMAT))
        bucket, self.root_key = s3.split_url(data["root"].rstrip("/") + "/")
        if bucket != self.bucket:
            raise StageError("the manifest's remote %s is not in bucket %s" % (data["root"], self.bucket))
        return data

    def pack_key(self, pack_id: str) -> str:
        return "%spacks/%s/%s" % (self.root_key, pack_id[:2], pack_id)

    def put_out(self, name: str, body) -> None:
        self.client.put(self.bucket, self.out + name, body)


def runs(chunks: list) -> list:
    """Group a file's chunk locations into range GETs: neighbours in one pack, read together."""
    groups = []
    for c in chunks:
        last = groups[-1] if groups else None
        if (last and last[0] == c[1] and 0 <= c[2] - last[2] <= GAP_MAX
                and c[2] + c[3] - last[1] <= SPAN_MAX):
            last[2] = c[2] + c[3]
            last[3].append(c)
        else:
            groups.append([c[1], c[2], c[2] + c[3], [c]])  # pack, start, end, chunks
    return groups


def stage_in(staging: Staging, root: str, inputs: list) -> int:
    """Write every input file under ``root``, verified; returns the bytes written."""
    total = 0
    for f in inputs:
        dest = safe_path(root, f["path"])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = os.path.join(os.path.dirname(dest), ".ws-in-%d-%s" % (os.getpid(), os.path.basename(dest)))
        whole = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as out:
                for pack, start, end, chunks in runs(f["chunks"]):
                    data = staging.client.get(staging.bucket, staging.pack_key(pack), start, end)
                    for cid, _pack, offset, length, raw_length, codec in chunks:
                        raw = decoded(cid, codec, data[offset - start:offset - start + length], raw_length)
                        whole.update(raw)
                        out.write(raw)
                        size += len(raw)
            if whole.hexdigest() != f["id"] or size != f["size"]:
                raise StageError("input %s does not match its SHA-256 after staging" % f["path"])
            os.chmod(tmp, f.get("mode", 0o644) & 0o7777)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        total += size
    return total


class PackOut:
    """Builds output packs in a scratch folder and uploads each as it is sealed."""

    def __init__(self, staging: Staging, scratch: str):
        self.staging = staging
        self.scratch = scratch
        self.f = None
        self.path = None
        self.size = 0
        self.entries = []  # (chunk id, offset, length, raw length, codec) of the open pack
        self.pending = []  # location records waiting for the open pack's id
        self.known = {}  # chunk id -> location record (a piece seen twice is stored once)
        self.packs = []

    def add(self, raw: bytes) -> list:
        """Store one piece; its location record ``[id, pack, offset, length, raw length, codec]``."""
        cid = hashlib.sha256(raw).hexdigest()
        if cid in self.known:
            return self.known[cid]
        codec, payload = RAW, raw
        if ZSTD_CODEC is not None and len(raw) >= 512:
            packed = ZSTD_CODEC[1](raw)
            if len(packed) <= 0.92 * len(raw):  # worth it (the rule of workspace/objects/packs.py)
                codec, payload = ZSTD, packed
        if self.f is None:
            fd, self.path = tempfile.mkstemp(prefix="ws-out-", suffix=".pack", dir=self.scratch)
            self.f = os.fdopen(fd, "wb")
            self.f.write(MAGIC)
            self.size = len(MAGIC)
        self.f.write(ENTRY.pack(ENTRY_MAGIC, codec, 0, len(raw), len(payload), bytes.fromhex(cid)))
        record = [cid, None, self.size + ENTRY.size, len(payload), len(raw), codec]
        self.f.write(payload)
        self.size += ENTRY.size + len(payload)
        self.entries.append((cid, record[2], len(payload), len(raw), codec))
        self.pending.append(record)
        self.known[cid] = record
        if self.size >= PACK_TARGET:
            self.seal()
        return record

    def seal(self) -> None:
        """Write the open pack's index and trailer, upload it, and fill in its id where it is used."""
        if self.f is None:
            return
        index = b"".join(INDEX.pack(bytes.fromhex(c), off, ln, raw, codec) for c, off, ln, raw, codec in self.entries)
        pack_id = hashlib.sha256(index).hexdigest()
        self.f.write(index)
        self.f.write(TRAILER.pack(self.size, len(self.entries), TRAILER_MAGIC))
        self.f.close()
        self.f = None
        try:
            self.staging.put_out("packs/" + pack_id, self.path)
        finally:
            os.unlink(self.path)
        for record in self.pending:
            record[1] = pack_id
        self.packs.append(pack_id)
        self.entries, self.pending = [], []


def output_files(root: str, files: list, dirs: list):
    """(relative path, full path) of every file the declared outputs name, and the declared ones that do not exist.

    A declared path that is a folder stands for every regular file below it,
    whether or not it was declared with a trailing ``/``.
    """
    found, missing = [], []
    for rel in [p.rstrip("/") for p in list(files) + list(dirs)]:
        full = safe_path(root, rel)
        if os.path.isfile(full) and not os.path.islink(full):
            found.append((rel, full))
            continue
        if not os.path.isdir(full) or os.path.islink(full):
            missing.append(rel)
            continue
        for folder, subdirs, names in os.walk(full):
            subdirs.sort()
            for name in sorted(names):
                path = os.path.join(folder, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    log("skipping %s: not a regular file" % os.path.relpath(path, root))
                    continue
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    seen = set()
    return [f for f in found if not (f[0] in seen or seen.add(f[0]))], missing


def stage_out(staging: Staging, root: str, manifest: dict, result: dict, scratch: str) -> None:
    """Upload the declared outputs as packs, then ``out/outputs.json`` (last: its presence means complete)."""
    outs = manifest.get("outputs") or {}
    found, missing = output_files(root, outs.get("files") or [], outs.get("dirs") or [])
    packer = PackOut(staging, scratch)
    files = []
    for rel, full in found:
        whole = hashlib.sha256()
        chunks, size = [], 0
        with open(full, "rb") as f:
            while True:
                raw = f.read(PIECE)
                if not raw:
                    break
                whole.update(raw)
                size += len(raw)
                chunks.append(packer.add(raw))
        files.append({"path": rel, "id": whole.hexdigest(), "size": size, "chunks": chunks,
                      "mode": 0o755 if os.stat(full).st_mode & 0o100 else 0o644})
    packer.seal()
    result.update(files=files, missing=missing, packs=packer.packs)
    staging.put_out("outputs.json", json.dumps(result, sort_keys=True).encode())


# -- running the command ---------------------------------------------------------------------
def _pump(src, sinks) -> None:
    """Copy a pipe to every sink until it closes; a sink that fails is dropped, the pipe is always drained."""
    sinks = list(sinks)
    while True:
        block = os.read(src.fileno(), 65536)
        if not block:
            return
        for sink in list(sinks):
            try:
                sink.write(block)
                sink.flush()
            except (OSError, ValueError):  # a closed log pipe must not block the command on a full pipe
                sinks.remove(sink)


def run(command: str, cwd: str, env: dict, logs: str) -> tuple:
    """Run ``command`` (``/bin/sh -c``) in its own process group; (exit code, terminated by SIGTERM)."""
    stopped = []
    proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=os.setpgrp)

    def forward(signum, _frame):
        stopped.append(signum)
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    with open(os.path.join(logs, "stdout"), "wb") as out, open(os.path.join(logs, "stderr"), "wb") as err:
        pumps = [threading.Thread(target=_pump, args=(proc.stdout, [sys.stdout.buffer, out])),
                 threading.Thread(target=_pump, args=(proc.stderr, [sys.stderr.buffer, err]))]
        for t in pumps:
            t.start()
        code = proc.wait()
        for t in pumps:
            t.join()
    return (128 - code if code < 0 else code), bool(stopped)


def main(argv: list) -> int:
    """Stage in, run, stage out (see the module doc); the exit code for the container."""
    if len(argv) != 1 or not argv[0].startswith("s3://"):
        log("usage: batch_entry s3://BUCKET/PREFIX/jobs/<job id>/<attempt>/job.json")
        return EXIT_MANIFEST
    client = s3.S3Client(os.environ.get("WS_S3_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
                         os.environ.get("WS_S3_ENDPOINT") or None)
    root = os.environ.get("WS_JOB_ROOT") or tempfile.mkdtemp(prefix="ws-job-")
    os.makedirs(root, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="ws-batch-")  # logs and packs being built: never among the outputs
    try:
        return _job(Staging(client, argv[0]), root, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _job(staging: Staging, root: str, scratch: str) -> int:
    result = {"format": FORMAT, "exit_code": None, "started": time.time()}
    try:
        manifest = staging.manifest()
    except (s3.S3Error, StageError, ValueError, KeyError) as exc:
        log("error: cannot read the job manifest s3://%s/%s: %s" % (staging.bucket, staging.manifest_key, exc))
        return EXIT_MANIFEST
    result.update(job=manifest.get("job"), attempt=manifest.get("attempt"))
    try:
        staged = stage_in(staging, root, manifest.get("inputs") or [])
        log("staged in %d input file(s), %d bytes" % (len(manifest.get("inputs") or []), staged))
        workdir = safe_path(root, manifest["workdir"]) if manifest.get("workdir") else root
        os.makedirs(workdir, exist_ok=True)
    except (s3.S3Error, StageError, OSError) as exc:
        log("error: staging in failed: %s" % exc)
        result.update(error="staging in failed: %s" % exc, finished=time.time())
        _upload_logs(staging, scratch, strict=False)
        _upload_result(staging, result)
        return EXIT_STAGE_IN
    env = dict(os.environ, WS_WORKSPACE=root, WS_JOB_ROOT=root)
    code, stopped = run(manifest["command"], workdir, env, scratch)
    result.update(exit_code=code, finished=time.time())
    if stopped:
        log("stopped by a signal: outputs are not staged out")
        _upload_logs(staging, scratch, strict=False)
        return 143
    try:
        _upload_logs(staging, scratch, strict=True)
        stage_out(staging, root, manifest, result, scratch)
    except (s3.S3Error, StageError, OSError) as exc:
        log("error: staging out failed: %s" % exc)
        return EXIT_STAGE_OUT
    return code


def _upload_logs(staging: Staging, scratch: str, strict: bool) -> None:
    """Upload the command's stdout and stderr; only complaining (not failing) unless ``strict``."""
    for name in ("stdout", "stderr"):
        path = os.path.join(scratch, name)
        if not os.path.exists(path):
            continue
        try:
            staging.put_out(name, path)
        except s3.S3Error as exc:
            if strict:
                raise
            log("cannot upload %s: %s" % (name, exc))


def _upload_result(staging: Staging, result: dict) -> None:
    try:
        staging.put_out("outputs.json", json.dumps(result, sort_keys=True).encode())
    except s3.S3Error as exc:
        log("cannot upload outputs.json: %s" % exc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
