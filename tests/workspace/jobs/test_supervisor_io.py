"""The supervisor's I/O stays out of catalog transactions and off its loop.

Backend calls (a network round trip for Slurm or Batch) never run while the
supervisor holds the catalog's write lock, and notifications (commands,
webhooks) run beside the loop with their failures recorded on the job.
"""

from __future__ import annotations

import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog import jobs as cj
from sync.compute import registry
from sync.compute.local import LocalBackend
from tests.conftest import write
from workspace.jobs import engine
from workspace.jobs import notify as notify_mod


def spec(ws, name: str, body: str) -> None:
    write(ws.root, f"jobs/{name}.yaml", f"name: {name}\n" + body)


def run(ws, name: str, **kw) -> dict:
    kw.setdefault("wait", True)
    return engine.run_spec(ws, name, cwd=str(ws.root), **kw)


class ProbeBackend(LocalBackend):
    """The local backend, checking on every call whether someone holds the catalog's write lock."""

    name = "probe"
    catalog_path: str = ""
    calls: list[tuple[str, bool]] = []  # (operation, catalog write-locked at that moment)

    def _probe(self, op: str) -> None:
        conn = sqlite3.connect(self.catalog_path, timeout=0.05, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")  # fails within 50 ms if another connection holds the write lock
            conn.execute("ROLLBACK")
            locked = False
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc) or "busy" in str(exc), exc
            locked = True
        finally:
            conn.close()
        self.calls.append((op, locked))

    def submit(self, request):
        self._probe("submit")
        return super().submit(request)

    def status(self, backend_ids):
        self._probe("status")
        return super().status(backend_ids)

    def cancel(self, backend_ids):
        self._probe("cancel")
        return super().cancel(backend_ids)

    def find(self, request):
        self._probe("find")
        return super().find(request)


@pytest.fixture
def probe(ws, monkeypatch):
    monkeypatch.setitem(registry._BACKENDS, "probe", ProbeBackend)
    monkeypatch.setattr(ProbeBackend, "catalog_path", ws.catalog.path)
    monkeypatch.setattr(ProbeBackend, "calls", [])
    return ProbeBackend


def test_no_backend_call_while_the_catalog_is_write_locked(ws, probe):
    # successes, a failure with a retry, and a timeout (the supervisor cancels it): every kind of call
    spec(ws, "mix", "command: 'if [ {i} = 2 ]; then exit 1; elif [ {i} = 3 ]; then sleep 30; fi'\n"
                    "params: {i: [1, 2, 3, 4]}\nbackend: probe\n"
                    "policies: {retries: 1, backoff: 0s, timeout: 1s}\n")
    res = run(ws, "mix")
    states = {j["params"]["i"]: j["state"] for j in res["jobs"]}
    assert states == {1: "SUCCEEDED", 2: "FAILED", 3: "FAILED", 4: "SUCCEEDED"}
    ops = {op for op, _ in probe.calls}
    assert {"submit", "status", "cancel"} <= ops
    locked = [op for op, was_locked in probe.calls if was_locked]
    assert locked == [], f"backend calls made while the catalog was write-locked: {locked}"


class _Hook:
    """A real local HTTP server whose requests block until the test releases them."""

    def __init__(self):
        self.release = threading.Event()
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                hook.release.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _poll(predicate, timeout: float = 20.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a real condition with a deadline
    return predicate()


def test_slow_webhook_does_not_delay_other_jobs(ws, monkeypatch):
    monkeypatch.setattr(notify_mod, "URL_TIMEOUT_S", 120.0)  # the hook answers only when released
    hook = _Hook()
    cfg = dict(ws.config)
    cfg["jobs"] = {"max_cpus": 1}  # one job at a time: the second starts only after the first ended
    ws.save_config(cfg)
    spec(ws, "pair", f"command: touch started-{{i}}\nparams: {{i: [1, 2]}}\n"
                     f"notify: {{on: [started], url: '{hook.url}'}}\n")
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(run(ws, "pair")))
    runner.start()
    try:
        assert _poll(lambda: len(hook.bodies) >= 1), "the first job's webhook was never called"
        assert _poll(lambda: (ws.root / "started-2").exists()), \
            "the second job did not start while the first one's webhook was blocked"
        assert not hook.release.is_set()
    finally:
        hook.release.set()
        runner.join(60)
        hook.close()
    assert result["state"] == "SUCCEEDED" and len(hook.bodies) == 2


def test_failed_notifications_are_recorded_on_the_job(ws, cli):
    import json
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    spec(ws, "loud", "command: 'true'\n"
                     "notify: {on: [finished], command: 'echo boom >&2; exit 3'}\n")
    spec(ws, "post", f"command: 'true'\nnotify: {{on: [finished], url: 'http://127.0.0.1:{dead_port}/'}}\n")
    loud = run(ws, "loud")["jobs"][0]
    post = run(ws, "post")["jobs"][0]
    assert cj.get_job(ws.catalog, loud["id"])["state"] == "SUCCEEDED"  # a notification never fails the job
    shown = json.loads(cli(ws.root, "jobs", "show", loud["id"], "--json").stdout)
    details = [e["detail"] or "" for e in shown["events"]]
    assert any("notification failed: notify command exited 3: boom" in d for d in details), details
    assert any("workflow notification failed" in d for d in details), details
    human = cli(ws.root, "jobs", "show", post["id"]).stdout
    assert f"notification failed: notify POST to http://127.0.0.1:{dead_port}/ failed" in human
