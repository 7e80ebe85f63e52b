"""The state behind the PROMINENCE test server: jobs, workflows, and how they change.

A job is ``idle`` (or ``pending``) when created. Then either

- the test drives it (:meth:`Playback.advance`: running, completed, failed,
  killed, with stdout, stderr and output files), or
- with ``execute=True`` the server runs its task at once, the way a
  container runtime would run ``cmd`` (split into words, not through a shell),
  on this machine, in the job's home (HOME; a relative ``workdir`` is below it),
  and notices the end on the next request (no threads, no sleeps).

When a job ends its output files and folders are staged out as PROMINENCE
does (a file: the first match of its name in the home; a folder: a ``.tgz``
made from the home, so entries keep the folder's path) and listed with
temporary URLs. A workflow creates its jobs as their parents complete (a
factory's instances with their parameters substituted into cmd, env, artifact
URLs and output names), at most ``max_idle`` idle jobs at a time.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import itertools
import os
import shlex
import signal
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ACTIVE = {"idle", "pending", "running"}
SUBSTITUTED = ("tasks", "artifacts", "outputFiles", "outputDirs")


@dataclass
class Job:
    id: int
    desc: dict  # as created (instances: parameters substituted)
    template: dict  # as submitted (instances: the factory's template; listings show its output names)
    name: str
    home: Path
    folder: Path  # stdout, stderr
    status: str = "idle"
    reason: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    started: int | None = None
    ended: int | None = None
    exit_code: int | None = None
    workflow: int | None = None
    node: str | None = None  # "<job name>" or "<job name>/<index>" within its workflow
    params: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    staged: dict = field(default_factory=lambda: {"outputFiles": [], "outputDirs": []})


@dataclass
class Workflow:
    id: int
    desc: dict
    nodes: dict  # node -> (job description, params, template)
    parents: dict  # node -> set of parent nodes
    jobs: dict = field(default_factory=dict)  # node -> job id
    status: str = "idle"
    reason: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


class Playback:
    """Jobs and workflows of the test server (callers hold the server's lock)."""

    def __init__(self, root: Path, base_url: str, execute: bool, home: Path | None, pending_state: bool,
                 max_idle: int | None):
        self.root, self.base_url, self.execute, self.shared_home = root, base_url, execute, home
        self.idle_name = "pending" if pending_state else "idle"
        self.max_idle = max_idle
        self.jobs: dict[int, Job] = {}
        self.workflows: dict[int, Workflow] = {}
        self.ids = itertools.count(101)
        self.secret = os.urandom(8).hex()
        self.storage: dict[str, Path] = {}  # signed key -> staged file

    # -- creating ----------------------------------------------------------------
    def create_job(self, desc: dict, template: dict | None = None, workflow: Workflow | None = None,
                   node: str | None = None, params: dict | None = None) -> Job:
        jid = next(self.ids)
        folder = self.root / "jobs" / str(jid)
        home = self.shared_home or folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        name = desc.get("name", "")
        if workflow is not None:
            name = f"{workflow.desc.get('name', '')}/{node}"
        job = Job(jid, desc, template or desc, name, home, folder, status=self.idle_name,
                  workflow=workflow.id if workflow else None, node=node, params=params or {})
        self.jobs[jid] = job
        if workflow is not None:
            workflow.jobs[node] = jid
        if self.execute:
            self._start(job)
        return job

    def create_workflow(self, desc: dict) -> Workflow:
        nodes, parents = {}, {}
        templated = {}
        for factory in desc.get("factories", []):
            for name in factory["jobs"]:
                templated[name] = _instances(factory)
        for job in desc["jobs"]:
            for i, params in enumerate(templated.get(job["name"], [None])):
                node = job["name"] if params is None else f"{job['name']}/{i}"
                nodes[node] = (_substitute(job, params) if params else job, params or {}, job)
        for node in nodes:
            base = node.split("/")[0]
            parents[node] = {p for p, children in desc.get("dependencies", {}).items() if base in children}
        wf = Workflow(next(self.ids), desc, nodes, parents)
        self.workflows[wf.id] = wf
        self._progress(wf)
        return wf

    def _progress(self, wf: Workflow) -> None:
        """Create the jobs whose parents all completed (exit 0), at most max_idle idle ones; settle the status."""
        if wf.status == "deleted":
            return
        done = {n for n, j in wf.jobs.items() if self._succeeded(self.jobs[j])}
        broken = {n for n, j in wf.jobs.items() if self.jobs[j].status not in ACTIVE and n not in done}
        for node, (desc, params, template) in wf.nodes.items():
            if node in wf.jobs:
                continue
            if self.max_idle is not None and self._idle_count(wf) >= self.max_idle:
                break
            bases = {n for n in wf.nodes if n.split("/")[0] in {p for p in wf.parents[node]}}
            if bases <= done:
                self.create_job(desc, template, wf, node, params)
        jobs = [self.jobs[j] for j in wf.jobs.values()]
        if any(j.status in ACTIVE for j in jobs):
            wf.status = "running" if any(j.started for j in jobs) else self.idle_name
        else:  # nothing can happen any more: jobs not created are those a failed parent holds back
            wf.status = "completed" if len(jobs) == len(wf.nodes) and not broken else "failed"

    def _idle_count(self, wf: Workflow) -> int:
        return sum(self.jobs[j].status in ("idle", "pending") for j in wf.jobs.values())

    @staticmethod
    def _succeeded(job: Job) -> bool:
        return job.status == "completed" and job.exit_code == 0

    # -- running -----------------------------------------------------------------
    def _start(self, job: Job) -> None:
        """Run the (single) task like a container runtime would: cmd split into words, HOME the job's folder."""
        task = job.desc["tasks"][0]
        try:
            self._stage_in(job)
        except OSError as exc:
            return self.finish(job, "failed", reason=f"Artifact download failed: {exc}")
        cwd = Path(task.get("workdir") or ".")
        cwd = cwd if cwd.is_absolute() else job.home / cwd
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(job.home), "TMP": str(job.home),
               "TEMP": str(job.home), "PROMINENCE_JOB_ID": str(job.id),
               "PROMINENCE_CPUS": str(job.desc["resources"].get("cpus", 1)),
               "PROMINENCE_MEMORY": str(job.desc["resources"].get("memory", 1)),
               "PROMINENCE_CONTAINER_RUNTIME": task["runtime"]}
        env.update({f"PROMINENCE_PARAMETER_{k}": str(v) for k, v in job.params.items()})
        env.update(task.get("env") or {})
        if not task.get("cmd") or not cwd.is_dir():
            return self.finish(job, "failed", reason="Unable to execute task(s)")
        job.folder.mkdir(parents=True, exist_ok=True)
        with open(job.folder / "stdout", "wb") as out, open(job.folder / "stderr", "wb") as err:
            job.proc = subprocess.Popen(shlex.split(task["cmd"]), cwd=cwd, env=env, stdout=out, stderr=err,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        job.status, job.started = "running", int(time.time())

    def _stage_in(self, job: Job) -> None:
        for item in job.desc.get("inputs", []):
            (job.home / item["filename"]).write_bytes(base64.b64decode(item["content"]))
        for art in job.desc.get("artifacts", []):
            with urllib.request.urlopen(art["url"], timeout=10) as resp:  # noqa: S310 (loopback in tests)
                (job.home / os.path.basename(art["url"].split("?")[0])).write_bytes(resp.read())

    def refresh(self) -> None:
        """Notice processes that ended (called on every request)."""
        for job in list(self.jobs.values()):
            if job.proc is not None and job.status == "running" and job.proc.poll() is not None:
                code = job.proc.returncode
                job.proc = None
                self.finish(job, "completed", exit_code=code)

    def finish(self, job: Job, status: str, exit_code: int | None = None, reason: str | None = None) -> None:
        """End a job: its state, stage-out of outputs, and its workflow's next jobs."""
        job.status, job.exit_code, job.reason = status, exit_code, reason
        job.ended = int(time.time())
        job.started = job.started or job.ended
        if status != "deleted":
            self._stage_out(job)
        if job.workflow is not None:
            self._progress(self.workflows[job.workflow])

    def kill(self, job: Job) -> None:
        """``DELETE``: stop the job's processes (the whole group, as removing a container does)."""
        if job.proc is not None:
            try:
                os.killpg(job.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            job.proc.wait()
            job.proc = None
        self.finish(job, "deleted", reason="Job deleted by user")

    def _stage_out(self, job: Job) -> None:
        for name in job.desc.get("outputFiles", []):
            matches = sorted(glob.glob(str(job.home / name)))
            url = self._publish(job, matches[0], os.path.basename(matches[0])) if matches else ""
            job.staged["outputFiles"].append((url, matches[0] if matches else None))
        for name in job.desc.get("outputDirs", []):
            url, path = "", None
            if (job.home / name).is_dir():
                path = job.folder / (os.path.basename(name) + ".tgz")
                with tarfile.open(path, "w:gz") as tar:
                    tar.add(str(job.home / name), arcname=name)
                url = self._publish(job, str(path), path.name)
            job.staged["outputDirs"].append((url, path))

    def _publish(self, job: Job, path: str, name: str) -> str:
        key = f"{job.id}/{len(self.storage)}/{name}"
        self.storage[key] = Path(path)
        expires = int(time.time()) + 864000
        return f"{self.base_url}/storage/{key}?temp_url_sig={self.sign(key)}&temp_url_expires={expires}"

    def sign(self, key: str) -> str:
        return hashlib.sha1((self.secret + key).encode()).hexdigest()

    # -- describing ----------------------------------------------------------------
    def describe_job(self, job: Job, detail: bool) -> dict:
        out = {"id": job.id, "name": job.name, "status": job.status, "tasks": job.desc["tasks"],
               "events": {k: v for k, v in (("createTime", job.created), ("startTime", job.started),
                                            ("endTime", job.ended)) if v}}
        if job.reason:
            out["statusReason"] = job.reason
        if job.params:
            out["parameters"] = job.params
        if detail:
            for key in ("resources", "policies", "labels", "artifacts", "notifications", "inputs"):
                if key in job.desc:
                    out[key] = job.desc[key]
            if job.status not in ACTIVE and job.status != "deleted":
                out["execution"] = {"site": "ws-test-site", "tasks": [
                    {"exitCode": job.exit_code, "retries": 0}] if job.exit_code is not None else []}
            for key in ("outputFiles", "outputDirs"):  # names as in the (template) description, as PROMINENCE lists
                if key in job.template:
                    urls = [u for u, _ in job.staged[key]] or [""] * len(job.template[key])
                    out[key] = [{"name": n, "url": u} for n, u in zip(job.template[key], urls)]
        return out

    def describe_workflow(self, wf: Workflow, detail: bool) -> dict:
        self._progress(wf)
        out = dict(wf.desc) if detail else {"name": wf.desc.get("name", "")}
        states = [self.jobs[j].status for j in wf.jobs.values()]
        out.update({"id": wf.id, "status": wf.status, "events": {"createTime": wf.created},
                    "progress": {"total": len(wf.nodes), "done": states.count("completed"),
                                 "failed": sum(s in ("failed", "killed") for s in states),
                                 "queued": sum(s in ACTIVE for s in states)}})
        if wf.reason:
            out["statusReason"] = wf.reason
        return out


def _instances(factory: dict) -> list[dict]:
    """The parameters of each instance a factory makes."""
    if factory["type"] == "repeat":
        return [{} for _ in range(factory["number"])]
    params = factory["parameters"]
    if factory["type"] == "zip":
        return [{p["name"]: p["values"][i] for p in params} for i in range(len(params[0]["values"]))]
    axes = []
    for p in params:
        count = p.get("number") or int((p["end"] - p["start"]) / p["step"]) + 1
        step = p.get("step") or ((p["end"] - p["start"]) / (count - 1) if count > 1 else 0)
        axes.append([(p["name"], p["start"] + i * step) for i in range(count)])
    return [dict(combo) for combo in itertools.product(*axes)]


def _substitute(job: dict, params: dict) -> dict:
    """A template job with ``$name``/``${name}`` replaced where PROMINENCE substitutes (factories.md)."""
    values = {k: str(v) for k, v in params.items()}

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return Template(node).safe_substitute(values) if isinstance(node, str) else node

    return {k: (walk(v) if k in SUBSTITUTED else v) for k, v in job.items()}
