"""A local PROMINENCE REST API for the tests (no PROMINENCE service can run here).

It serves the endpoints of PROMINENCE's REST API under ``/v1`` on a loopback
port: ``POST/GET /v1/jobs`` (list filters: ``id=1,2``, ``workflow=true&id=W``,
``constraint=key=value``, ``name``, ``all``, ``completed``, ``num``,
``detail``), ``GET/DELETE /v1/jobs/<id>``, ``GET /v1/jobs/<id>/stdout`` and
``/stderr``, ``POST/GET /v1/workflows``, ``GET/DELETE /v1/workflows/<id>``.
Every call needs ``Authorization: Bearer <token>`` (else 401). Every job and
workflow description is checked against :mod:`tests.sync.prominence_schema`
(else 400 with the problem as ``error``). Output files are served from
``/storage/...`` temporary URLs that, like presigned object-storage URLs,
refuse a request carrying an ``Authorization`` header.

What jobs do is :mod:`tests.sync.prominence_playback`'s business; tests drive
it with :meth:`ProminenceServer.advance` or let it execute commands.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.sync.prominence_playback import ACTIVE, Playback
from tests.sync.prominence_schema import Invalid, validate_job, validate_workflow

TOKEN = "test-token-0123456789"


class ProminenceServer:
    """The server, its state and a log of the requests it answered (method, path, query)."""

    def __init__(self, root: Path, token: str = TOKEN, execute: bool = False, home: Path | None = None,
                 pending_state: bool = False, max_idle: int | None = None):
        self.token = token
        self.lock = threading.RLock()
        self.log: list[tuple[str, str, dict]] = []
        self.received: list[dict] = []  # descriptions accepted, as sent
        self.refused: list[str] = []  # errors answered with 400
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.url = self.base + "/v1"
        self.state = Playback(Path(root), self.base, execute, home, pending_state, max_idle)
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> "ProminenceServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        with self.lock:
            for job in self.state.jobs.values():
                if job.proc is not None:  # stop what still runs, without playing the workflow on
                    try:
                        os.killpg(job.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    job.proc.wait()

    # -- what tests use ------------------------------------------------------------
    def advance(self, job_id: int, status: str, exit_code: int | None = None, reason: str | None = None,
                stdout: str = "", stderr: str = "", files: dict[str, bytes] | None = None) -> None:
        """Move a job on: ``running``, or an end (completed, failed, killed) with its logs and files in its home."""
        with self.lock:
            job = self.state.jobs[int(job_id)]
            assert job.status in ACTIVE, f"job {job_id} already ended {job.status}"
            job.folder.mkdir(parents=True, exist_ok=True)
            (job.folder / "stdout").write_text(stdout)
            (job.folder / "stderr").write_text(stderr)
            for rel, data in (files or {}).items():
                path = job.home / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            if status == "running":
                job.status, job.started = "running", job.started or job.created
            else:
                self.state.finish(job, status, exit_code, reason)

    def job_ids(self, workflow: int | None = None) -> list[int]:
        """Ids of the jobs created so far (of one workflow, in node order)."""
        with self.lock:
            return [j.id for j in self.state.jobs.values() if workflow is None or j.workflow == workflow]

    def calls(self, method: str | None = None, path: str | None = None) -> list[tuple[str, str, dict]]:
        """Logged requests, filtered by method and path prefix."""
        return [c for c in self.log if (method is None or c[0] == method) and (path is None or c[1].startswith(path))]

    # -- answering -------------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict, headers, body: bytes) -> tuple[int, object]:
        with self.lock:
            self.log.append((method, path, query))
            if path.startswith("/storage/"):
                return self._storage(path[len("/storage/"):], query, headers)
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"error": "Unauthorized"}
            self.state.refresh()
            parts = path.strip("/").split("/")
            if parts[:1] != ["v1"] or len(parts) < 2 or parts[1] not in ("jobs", "workflows"):
                return 404, {"error": "not found"}
            try:
                return self._route(method, parts[1], parts[2:], query, body)
            except Invalid as exc:
                self.refused.append(str(exc))
                return 400, {"error": str(exc)}

    def _route(self, method: str, kind: str, rest: list[str], query: dict, body: bytes):
        if method == "POST" and not rest:
            desc = _json(body)
            (validate_job if kind == "jobs" else validate_workflow)(desc)
            self.received.append(desc)
            made = self.state.create_job(desc) if kind == "jobs" else self.state.create_workflow(desc)
            return 201, {"id": made.id}
        if method == "GET" and not rest:
            return 200, (self._list_jobs(query) if kind == "jobs" else self._list_workflows(query))
        if not rest or not rest[0].isdigit():
            return 404, {"error": "not found"}
        table = self.state.jobs if kind == "jobs" else self.state.workflows
        item = table.get(int(rest[0]))
        if len(rest) == 2 and kind == "jobs" and rest[1] in ("stdout", "stderr") and method == "GET":
            if item is None:
                return 400, {"error": "job does not exist"}
            log = item.folder / rest[1]
            return (200, log.read_text()) if log.exists() else (404, {"error": f"no {rest[1]}"})
        if item is None or len(rest) != 1:
            return 404, {"error": f"{kind[:-1]} {rest[0]} not found"}
        if method == "GET":
            describe = self.state.describe_job if kind == "jobs" else self.state.describe_workflow
            return 200, [describe(item, True)]
        if method == "DELETE":
            return self._delete(kind, item)
        return 405, {"error": "method not allowed"}

    def _delete(self, kind: str, item):
        if kind == "jobs":
            if item.status not in ACTIVE:
                return 400, {"error": f"job {item.id} is {item.status}: only idle or running jobs can be deleted"}
            self.state.kill(item)
            return 200, {}
        if item.status not in ACTIVE:
            return 400, {"error": f"workflow {item.id} is {item.status}"}
        item.status, item.reason = "deleted", "Workflow deleted by user"
        for jid in item.jobs.values():
            if self.state.jobs[jid].status in ACTIVE:
                self.state.kill(self.state.jobs[jid])
        return 200, {}

    def _list_jobs(self, q: dict) -> list[dict]:
        jobs = list(self.state.jobs.values())
        ids = [int(i) for i in q["id"].split(",") if i.isdigit()] if q.get("id") else None
        if q.get("workflow") == "true":
            jobs = [j for j in jobs if ids and j.workflow == ids[0]]
        elif ids is not None:
            jobs = [j for j in jobs if j.id in ids]
        else:
            jobs = self._by_state(jobs, q, lambda j: j.status)
        jobs = [j for j in jobs if _matches(j.desc, q)]
        return [self.state.describe_job(j, "detail" in q) for j in jobs]

    def _list_workflows(self, q: dict) -> list[dict]:
        wfs = list(self.state.workflows.values())
        for wf in wfs:
            self.state._progress(wf)
        if q.get("id"):
            ids = [int(i) for i in q["id"].split(",") if i.isdigit()]
            wfs = [w for w in wfs if w.id in ids]
        else:
            wfs = self._by_state(wfs, q, lambda w: w.status)
        wfs = [w for w in wfs if _matches(w.desc, q)]
        return [self.state.describe_workflow(w, "detail" in q) for w in wfs]

    @staticmethod
    def _by_state(items: list, q: dict, status) -> list:
        """Active only by default; ``completed=true`` finished only (the last ``num``, default 1); ``all`` both."""
        if "all" in q:
            return items
        if q.get("completed") == "true":
            done = [i for i in items if status(i) not in ACTIVE]
            return done[-int(q.get("num", 1)):] if int(q.get("num", 1)) > 0 else done
        return [i for i in items if status(i) in ACTIVE]

    def _storage(self, key: str, query: dict, headers) -> tuple[int, object]:
        if headers.get("Authorization"):
            return 400, {"error": "only one auth mechanism allowed: a temporary URL takes no Authorization header"}
        path = self.state.storage.get(key)
        if path is None or query.get("temp_url_sig") != self.state.sign(key):
            return 401, {"error": "invalid temporary URL signature"}
        return 200, path.read_bytes()


def _matches(desc: dict, q: dict) -> bool:
    """The ``name`` and ``constraint`` (one label ``key=value``) filters of a listing."""
    if "name" in q and desc.get("name") != q["name"]:
        return False
    if "constraint" not in q:
        return True
    key, sep, value = q["constraint"].partition("=")
    if not sep or "=" in value:
        raise Invalid("invalid constraint: expected key=value")
    return (desc.get("labels") or {}).get(key) == value


def _json(body: bytes):
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise Invalid(f"the body is not JSON: {exc}") from None


def _handler(server: ProminenceServer):
    class Handler(BaseHTTPRequestHandler):
        def _do(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code, payload = server.answer(method, url.path, query, self.headers, body)
            if isinstance(payload, (bytes, str)):
                data = payload.encode() if isinstance(payload, str) else payload
                ctype = "text/plain; charset=utf-8" if isinstance(payload, str) else "application/octet-stream"
            else:
                data, ctype = json.dumps(payload).encode(), "application/json"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's names)
            self._do("GET")

        def do_POST(self):  # noqa: N802
            self._do("POST")

        def do_DELETE(self):  # noqa: N802
            self._do("DELETE")

        def log_message(self, *args):  # quiet
            pass

    return Handler


@contextmanager
def running(root: Path, **options):
    """A started server for the length of a ``with`` block."""
    server = ProminenceServer(root, **options).start()
    try:
        yield server
    finally:
        server.stop()
