"""``ws watch``: the watcher process, starting it in the background, asking its state, stopping it.

Everything lives in ``.ws/watch/``: ``lock`` (an exclusive flock held for the
watcher's whole life, with its pid inside: the kernel drops the lock when the
process dies, so a crashed watcher is never mistaken for a running one),
``sock`` (the Unix socket status asks), ``log`` and ``barrier/``.

One thread does everything: it reads inotify events and answers the socket,
so a barrier's answer is written after every earlier event was handled.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from workspace.errors import WatcherRunning, WatchUnavailable, WorkspaceError
from workspace.layout import Layout
from workspace.tree.watch_client import BARRIER_DIR, LOCK, LOG, SOCKET, SocketAddress, ask
from workspace.tree.watcher import Watcher

MAX_DIRTY = 50_000  # more changed folders than this: status walks everything (cheaper than a huge answer)


def _raise_stop(signum, frame) -> None:
    """SIGTERM ends the watcher as Ctrl-C does: leave the loop and clean up."""
    raise KeyboardInterrupt


def _holder_pid(lock_path: Path) -> int | None:
    try:
        return int(lock_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _take_lock(wdir: Path) -> int:
    """The exclusive watcher lock, or WatcherRunning naming the process that holds it."""
    fd = os.open(wdir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = _holder_pid(wdir / LOCK)
        raise WatcherRunning(f"a watcher already runs for this workspace (pid {pid}); "
                             "see 'ws watch --status', stop it with 'ws watch --stop'") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def running(layout: Layout) -> bool:
    """Whether a watcher process holds the lock now (proved by the kernel's flock, not by a timestamp)."""
    path = layout.watch_dir / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class _Server:
    def __init__(self, layout: Layout, watcher: Watcher, listener: socket.socket, log):
        self.layout = layout
        self.watcher = watcher
        self.listener = listener
        self.log = log
        self.started = time.time()
        self.sel = selectors.DefaultSelector()
        self.sel.register(watcher.fd, selectors.EVENT_READ, "inotify")
        self.sel.register(listener, selectors.EVENT_READ, "accept")
        self.buffers: dict[socket.socket, bytes] = {}
        self.pending: list[tuple[int, str, socket.socket, dict]] = []  # barrier, epoch then, client, request
        self.stopping = False
        self.last_epoch = watcher.epoch

    def run(self) -> None:
        while not self.stopping:
            for key, _ in self.sel.select():
                if key.data == "inotify":
                    while self.watcher.read():
                        pass
                    self._after_events()
                elif key.data == "accept":
                    self._accept()
                else:
                    self._from_client(key.fileobj)

    def _after_events(self) -> None:
        w = self.watcher
        if w.epoch != self.last_epoch:
            self.say(f"new epoch {w.epoch}: {getattr(w, 'last_restart', '')}")
            self.last_epoch = w.epoch
        still = []
        for n, epoch, conn, req in self.pending:
            if w.barrier_seen >= n or w.epoch != epoch:  # passed, or events were lost: it cannot vouch
                self._answer(conn, w.changes_since(req.get("epoch"), int(req.get("since") or 0), MAX_DIRTY))
            else:
                still.append((n, epoch, conn, req))
        self.pending = still

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.buffers[conn] = b""
        self.sel.register(conn, selectors.EVENT_READ, "client")

    def _from_client(self, conn: socket.socket) -> None:
        try:
            part = conn.recv(65536)
        except OSError:
            part = b""
        if not part:
            self._drop(conn)
            return
        data = self.buffers[conn] + part
        if b"\n" not in data:
            self.buffers[conn] = data[-65536:]
            return
        self.sel.unregister(conn)
        del self.buffers[conn]
        try:
            req = json.loads(data.split(b"\n", 1)[0])
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            self._answer(conn, {"error": "bad request"})
            return
        if op == "changes":
            try:
                n = self.watcher.request_barrier()
            except OSError as exc:
                self.say(f"cannot write a barrier file: {exc}")
                self._answer(conn, {**self.watcher.changes_since(None, 0, 0)})
                return
            self.pending.append((n, self.watcher.epoch, conn, req))
        elif op == "info":
            self._answer(conn, self.info())
        elif op == "stop":
            self._answer(conn, {"stopping": True, "pid": os.getpid()})
            self.stopping = True
        else:
            self._answer(conn, {"error": f"unknown op {op!r}"})

    def _drop(self, conn: socket.socket) -> None:
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        self.buffers.pop(conn, None)
        conn.close()

    def _answer(self, conn: socket.socket, msg: dict) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(5)
            conn.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def info(self) -> dict:
        w = self.watcher
        return {"running": True, "pid": os.getpid(), "root": str(self.layout.root), "epoch": w.epoch,
                "since": _iso(self.started), "folders_watched": w.folders(), "events": w.events, "seq": w.seq,
                "dirty_folders": len(w.dirty), "unwatched": sorted(w.unwatched), "overflows": w.overflows,
                "log": str(self.layout.watch_dir / LOG)}

    def say(self, line: str) -> None:
        self.log.write(f"{_iso(time.time())} {line}\n")
        self.log.flush()


def _log_line(wdir: Path, line: str) -> None:
    try:
        with open(wdir / LOG, "a", encoding="utf-8") as log:
            log.write(f"{_iso(time.time())} {line}\n")
    except OSError:
        pass


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def serve(root: Path, ready_fd: int | None = None, on_ready=None) -> None:
    """Watch the workspace at ``root`` until stopped (``ws watch --stop``, SIGTERM or Ctrl-C).

    ``ready_fd``: a pipe to write ``ok`` to once the watches are armed and the
    socket listens, or ``error CODE MESSAGE`` when the watcher cannot start.
    ``on_ready(state)``: called at that moment too.
    """
    layout = Layout(root)
    wdir = layout.watch_dir
    try:
        wdir.mkdir(exist_ok=True)
        lock_fd = _take_lock(wdir)
    except WorkspaceError as exc:
        _ready(ready_fd, f"error {exc.exit_code} {exc}")
        raise
    watcher = None
    listener = None
    addr = None
    old = {}
    try:
        addr = SocketAddress(wdir)
        for s in (signal.SIGTERM, signal.SIGINT):
            old[s] = signal.signal(s, _raise_stop)
        with open(wdir / LOG, "a", encoding="utf-8") as log:
            try:
                watcher = Watcher(root, wdir / BARRIER_DIR)
            except WorkspaceError as exc:
                _ready(ready_fd, f"error {exc.exit_code} {exc}")
                log.write(f"{_iso(time.time())} cannot start: {exc}\n")
                raise
            try:
                os.unlink(wdir / SOCKET)
            except FileNotFoundError:
                pass
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(addr.path)
            listener.listen(64)
            server = _Server(layout, watcher, listener, log)
            server.say(f"watching {root} (pid {os.getpid()}, epoch {watcher.epoch}, "
                       f"{watcher.folders()} folders)")
            _ready(ready_fd, "ok")
            if on_ready is not None:
                on_ready(server.info())
            server.run()
    except KeyboardInterrupt:
        pass  # SIGTERM or Ctrl-C, even while arming: clean up below
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if listener is not None:
            try:
                os.unlink(wdir / SOCKET)
            except FileNotFoundError:
                pass
            listener.close()
        if addr is not None:
            addr.close()
        if watcher is not None:
            watcher.close()
        _log_line(wdir, "stopped")
        os.close(lock_fd)  # last: until here, another watcher could not start


def _ready(fd: int | None, message: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, message.encode() + b"\n")
        os.close(fd)
    except OSError:
        pass


def start_daemon(root: Path) -> dict:
    """Start the watcher as a background process; returns its state once it watches everything."""
    layout = Layout(root)
    layout.watch_dir.mkdir(exist_ok=True)
    r, w = os.pipe()
    with open(layout.watch_dir / LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workspace", "-C", str(root), "watch", "--ready-fd", str(w)],
            pass_fds=(w,), cwd=str(root), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode(errors="replace").strip()
    if msg == "ok":
        return info(layout)
    proc.wait()
    if msg.startswith("error "):
        code, _, text = msg[6:].partition(" ")
        cls = {str(WatcherRunning.exit_code): WatcherRunning}.get(code, WatchUnavailable)
        raise cls(text)
    raise WatchUnavailable(f"the watcher did not start (exit {proc.returncode}); see {layout.watch_dir / LOG}")


def info(layout: Layout) -> dict:
    """The watcher's state: ``running`` false, or its pid, epoch, start time, folders watched..."""
    if not running(layout):
        return {"running": False, "root": str(layout.root)}
    answer = ask(layout.watch_dir, {"op": "info"})
    if answer is None:  # it holds the lock but does not answer (yet): starting, or stuck
        return {"running": True, "pid": _holder_pid(layout.watch_dir / LOCK), "root": str(layout.root),
                "answering": False}
    return answer


def stop(layout: Layout, timeout: float = 30.0) -> dict:
    """Stop the running watcher and wait until it has exited; ``{"stopped": pid or None}``."""
    if not running(layout):
        return {"stopped": None}
    pid = _holder_pid(layout.watch_dir / LOCK)
    if ask(layout.watch_dir, {"op": "stop"}) is None and pid:
        os.kill(pid, signal.SIGTERM)  # it does not answer: the signal ends it as cleanly
    fd = os.open(layout.watch_dir / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # free once the watcher process has exited
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WatchUnavailable(f"the watcher (pid {pid}) did not stop within {timeout:g}s") from None
                time.sleep(delay)  # polling a kernel lock, not synchronizing tests
                delay = min(delay * 2, 0.1)
    finally:
        os.close(fd)
    return {"stopped": pid}
