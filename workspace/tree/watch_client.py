"""Talking to a running ``ws watch`` over its Unix socket (standard library only, imported lazily: on the status path).

Status asks one question: "what changed since (epoch, seq)?". The watcher
answers only after a barrier (see workspace.tree.watcher), so the answer
covers every change made before the question. A connection that fails, times
out or gets a malformed answer is no answer: status then walks everything.
"""

from __future__ import annotations

import os
from pathlib import Path

SOCKET = "sock"
LOCK = "lock"
LOG = "log"
BARRIER_DIR = "barrier"
TIMEOUT_S = 10.0  # a watcher this slow to answer is treated as absent: status walks, still right
FULL_SCAN_ENV = "WS_STATUS_FULL_SCAN"  # "1": status walks everything even when a watcher vouches


class WatchAnswer:
    """A watcher's answer: its epoch and sequence number now, and whether (and what) it vouches for.

    A plain class: a NamedTuple's string annotations would make typing compile() them at import,
    which a clean status avoids (tests/test_architecture.py).
    """

    __slots__ = ("epoch", "seq", "vouch", "dirty")

    def __init__(self, epoch, seq, vouch, dirty):
        self.epoch = epoch  # str
        self.seq = seq  # int
        self.vouch = vouch  # bool
        self.dirty = dirty  # [folder, whole sub-tree?] pairs, when it vouches


class SocketAddress:
    """The socket's path, shortened through /proc/self/fd when the real one is too long for AF_UNIX."""

    def __init__(self, watch_dir: Path):
        self.path = os.fspath(watch_dir / SOCKET)
        self.dirfd = None
        if len(os.fsencode(self.path)) >= 100:
            self.dirfd = os.open(watch_dir, os.O_PATH | os.O_CLOEXEC)
            self.path = f"/proc/self/fd/{self.dirfd}/{SOCKET}"

    def close(self) -> None:
        if self.dirfd is not None:
            os.close(self.dirfd)
            self.dirfd = None


def ask(watch_dir: Path, message: dict, timeout: float = TIMEOUT_S) -> dict | None:
    """Send one request, return the decoded answer, or None when no watcher answers."""
    if not os.path.exists(watch_dir / SOCKET):
        return None
    import json  # only with a watcher: a clean status without one imports neither (see test_architecture)
    import socket

    addr = None
    try:
        addr = SocketAddress(watch_dir)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(addr.path)
            s.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                part = s.recv(1 << 20)
                if not part:
                    break
                data += part
        answer = json.loads(data)
        return answer if isinstance(answer, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        if addr is not None:
            addr.close()


def changes_since(watch_dir: Path, root: Path, epoch: str | None, seq: int) -> WatchAnswer | None:
    """The running watcher's answer for a snapshot taken at (``epoch``, ``seq``), after a barrier; or None."""
    a = ask(watch_dir, {"op": "changes", "epoch": epoch, "since": seq})
    if a is None:
        return None
    try:
        if a["root"] != os.fspath(root):
            return None  # a watcher of this folder under another name (moved): it cannot vouch
        vouch = bool(a["vouch"]) and os.environ.get(FULL_SCAN_ENV) != "1"
        return WatchAnswer(str(a["epoch"]), int(a["seq"]), vouch, list(a.get("dirty", [])) if vouch else [])
    except (KeyError, TypeError, ValueError):
        return None
