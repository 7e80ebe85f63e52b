"""The Python API for jobs, in the shape users of job services know.

    from workspace.api import Workspace
    from workspace.jobs.api import Job, Resources, JobPolicies, Workflow

    ws = Workspace.open()
    job = Job("train", "python train.py --lr {lr}", params={"lr": [0.1, 0.01]},
              resources=Resources(cpus=2, memory_mb=4096), outputs=["out/{lr}/"])
    job.submit(ws, wait=True)          # or Job.load(ws, "train") for jobs/train.yaml
    job.status, job.done(), [t.stdout() for t in job.tasks], job.outputs()

A :class:`Job` is a spec (built here or loaded from YAML); submitting it expands
its sweep into :class:`Task` objects, one per recorded catalog job. A
:class:`Workflow` is one submission (one ``ws run``) of one or more jobs and
their dependencies. Running is done by :mod:`workspace.jobs.engine`; reading
answers from the catalog alone.
"""

from __future__ import annotations

from typing import Iterable

from catalog import jobs as cj
from workspace.history.manifest import manifest
from workspace.jobs import query
from workspace.jobs.fields import from_dict
from workspace.jobs.spec import (FINAL_STATES, Container, InvalidSpec, JobPolicies, JobSpec, Notify, Resources,
                                 folder_config, validate)
from workspace.jobs.specfile import find_spec
from workspace.repo import Repo

__all__ = ["Job", "Task", "Resources", "Container", "JobPolicies", "Notify", "Workflow", "JobsAPI", "combined_state"]

_ACTIVE_ORDER = ("RUNNING", "QUEUED", "PENDING")


def combined_state(states: Iterable[str]) -> str | None:
    """One state for many tasks: active if any is active, else the worst end (FAILED, OUT_OF_MEMORY, LOST,
    CANCELLED), else SUCCEEDED."""
    states = set(states)
    if not states:
        return None
    if len(states) == 1:
        return next(iter(states))
    for s in (*_ACTIVE_ORDER, "FAILED", "OUT_OF_MEMORY", "LOST", "CANCELLED"):
        if s in states:
            return s
    return "SUCCEEDED"  # a mix of SUCCEEDED and SKIPPED: every result is there


class Task:
    """One recorded job of the catalog (one member of a sweep)."""

    def __init__(self, ws: Repo, job_id: str):
        self.ws = ws
        self.id = query.resolve_job(ws, job_id)

    def __repr__(self) -> str:
        return f"Task({self.id!r}, {self.name!r}, {self.status})"

    @property
    def record(self) -> dict:
        """The catalog row (JSON columns decoded)."""
        return cj.get_job(self.ws.catalog, self.id)

    @property
    def name(self) -> str:
        """The spec name."""
        return self.record["name"]

    @property
    def params(self) -> dict:
        """This member's parameters."""
        return self.record["params"]

    @property
    def status(self) -> str:
        """The current state (PENDING ... LOST, OUT_OF_MEMORY), from the catalog."""
        query.refresh_liveness(self.ws)
        return self.record["state"]

    @property
    def exit_code(self) -> int | None:
        """The exit code of the last attempt, once known."""
        return self.record["exit_code"]

    def events(self) -> list[dict]:
        """State transitions with their times."""
        return cj.job_events(self.ws.catalog, self.id)

    def done(self) -> bool:
        """Whether the task reached a final state."""
        return self.status in FINAL_STATES

    def stdout(self) -> str:
        """What the task wrote on stdout so far."""
        return query.read_log(self.ws, self.id)

    def stderr(self) -> str:
        """What the task wrote on stderr so far."""
        return query.read_log(self.ws, self.id, stderr=True)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the task ends; returns its state (the engine's WaitTimedOut after ``timeout`` s)."""
        _engine().wait(self.ws, [self.id], timeout)
        return self.status

    def cancel(self) -> None:
        """Stop the task if it has not ended."""
        _engine().cancel(self.ws, [self.id])

    def outputs(self) -> dict[str, str]:
        """Output path -> file id in the commit that captured this task's declared outputs."""
        rec = self.record
        if not rec.get("output_commit"):
            return {}
        files = manifest(self.ws.catalog, rec["output_commit"])
        return {p: m.file_id for p, m in sorted(files.items()) if _under_any(p, rec["outputs"])}


class _TaskGroup:
    """Status, waiting and logs over a list of tasks (shared by Job and Workflow)."""

    ws: Repo | None = None

    @property
    def tasks(self) -> list[Task]:
        """The tasks this group covers (defined by Job and Workflow)."""
        raise NotImplementedError

    @property
    def status(self) -> str | None:
        """One state for all tasks (see :func:`combined_state`); None before submission."""
        tasks = self.tasks
        if not tasks:
            return None
        query.refresh_liveness(self.ws)
        rows = [cj.get_job(self.ws.catalog, t.id) for t in tasks]
        return combined_state(r["state"] for r in rows if r)

    def done(self) -> bool:
        """Whether every task reached a final state."""
        return bool(self.tasks) and all(t.done() for t in self.tasks)

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until every task ends; returns the combined state (WaitTimedOut after ``timeout`` s)."""
        if self.tasks:
            _engine().wait(self.ws, [t.id for t in self.tasks], timeout)
        return self.status

    def cancel(self) -> None:
        """Stop every task that has not ended."""
        if self.tasks:
            _engine().cancel(self.ws, [t.id for t in self.tasks])

    def stdout(self) -> str:
        """Stdout of the only task, or of every task with a header line each."""
        return self._logs(False)

    def stderr(self) -> str:
        """Stderr of the only task, or of every task with a header line each."""
        return self._logs(True)

    def _logs(self, stderr: bool) -> str:
        tasks = self.tasks
        if len(tasks) == 1:
            return tasks[0].stderr() if stderr else tasks[0].stdout()
        parts = []
        for t in tasks:
            parts.append(f"==> {t.id} {t.name} {t.params} <==\n")
            parts.append(t.stderr() if stderr else t.stdout())
        return "".join(parts)

    def outputs(self) -> dict[str, str]:
        """Output path -> file id over every task that succeeded."""
        out: dict[str, str] = {}
        for t in self.tasks:
            out.update(t.outputs())
        return out


class Job(_TaskGroup):
    """A job spec built in Python (or loaded), which becomes tasks once submitted."""

    def __init__(self, name: str, command: str, *, resources: Resources | None = None,
                 policies: JobPolicies | None = None, env: dict | None = None, workdir: str | None = None,
                 inputs: list[str] | None = None, outputs: list[str] | None = None,
                 params: dict | list | None = None, depends_on: list["Job | str"] | None = None,
                 backend: str = "local", notify: Notify | None = None, container: Container | None = None,
                 labels: dict | None = None, artifacts: list[str] | None = None):
        deps = [d.spec.name if isinstance(d, Job) else str(d) for d in (depends_on or [])]
        spec = JobSpec(name=name, command=command, resources=resources or Resources(),
                       policies=policies or JobPolicies(), env=dict(env or {}), workdir=workdir,
                       inputs=list(inputs or []), outputs=list(outputs or []), params=params or {},
                       depends_on=deps, backend=backend, notify=notify, container=container,
                       labels=dict(labels or {}), artifacts=list(artifacts or []))
        self._init(spec)
        self.upstream = [d for d in (depends_on or []) if isinstance(d, Job)]

    def _init(self, spec: JobSpec) -> None:
        self.upstream: list[Job] = []  # dependencies given as Job objects (not looked up in jobs/)
        self.spec = validate(spec, folder_config(spec.path))  # no workspace at hand: the current folder's
        self.ws = None
        self.workflow_id: str | None = None
        self._task_ids: list[str] = []

    @classmethod
    def from_spec(cls, spec: JobSpec) -> "Job":
        """Wrap an existing :class:`JobSpec`."""
        job = cls.__new__(cls)
        job._init(spec)
        return job

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        """Build from the same mapping a YAML spec holds (``memory: 4GB`` and all)."""
        return cls.from_spec(from_dict(data, default_name=data.get("name")))

    @classmethod
    def load(cls, ws: Repo, name_or_path: str) -> "Job":
        """A spec of the workspace: a name found in ``jobs/`` or a YAML path."""
        job = cls.from_spec(find_spec(ws, name_or_path))
        job.ws = ws
        return job

    def __repr__(self) -> str:
        return f"Job({self.spec.name!r}, tasks={len(self._task_ids)})"

    def expand(self, ws: Repo | None = None, params: dict | None = None) -> list:
        """The :class:`~workspace.jobs.expand.ExpandedJob` list a submission would run (a dry run)."""
        from workspace.jobs.expand import expand

        return expand(self._ws(ws), [self.spec], params or {})

    def submit(self, ws: Repo | None = None, *, params: dict | None = None, wait: bool = False, force: bool = False) -> "Job":
        """Expand and submit this job (and the specs it depends on); returns self, now with tasks."""
        Workflow(self._ws(ws), [self]).submit(params=params, wait=wait, force=force)
        return self

    @property
    def tasks(self) -> list[Task]:
        """One :class:`Task` per expanded member (empty before submission)."""
        return [Task(self.ws, i) for i in self._task_ids]

    def _ws(self, ws: Repo | None) -> Repo:
        self.ws = ws or self.ws
        if self.ws is None:
            raise InvalidSpec(f"{self.spec.where}: no workspace given (pass ws= or use Job.load(ws, ...))")
        return self.ws


class Workflow(_TaskGroup):
    """One submission of one or more jobs (and what they depend on): a ``ws run``."""

    def __init__(self, ws: Repo, jobs: list[Job] | None = None, workflow_id: str | None = None):
        self.ws = ws
        self.jobs = list(jobs or [])
        self.id = workflow_id

    @classmethod
    def load(cls, ws: Repo, workflow_id: str = "latest") -> "Workflow":
        """A recorded workflow by id, unique prefix or ``latest``."""
        return cls(ws, workflow_id=query.resolve_workflow(ws, workflow_id))

    def __repr__(self) -> str:
        return f"Workflow({self.id!r})"

    def submit(self, *, params: dict | None = None, wait: bool = False, force: bool = False,
               backend: str | None = None) -> "Workflow":
        """Expand every job's sweep, order the DAG and submit; returns self with its id set."""
        from workspace.jobs.expand import expand

        if self.id is not None:
            raise InvalidSpec(f"workflow {self.id} was already submitted; use rerun()")
        jobs = _with_upstream(self.jobs)
        expanded = expand(self.ws, [j.spec for j in jobs], params or {}, backend=backend)
        self.id = _engine().submit(self.ws, expanded, wait=wait, force=force)
        for job in jobs:  # each Job object now knows its tasks
            job.ws, job.workflow_id = self.ws, self.id
            job._task_ids = [r["id"] for r in cj.list_jobs(self.ws.catalog, name=job.spec.name, workflow=self.id)]
        return self

    @property
    def tasks(self) -> list[Task]:
        """Every recorded job of this workflow (empty before submission)."""
        if self.id is None:
            return []
        return [Task(self.ws, r["id"]) for r in cj.list_jobs(self.ws.catalog, workflow=self.id)]

    def rerun(self, wait: bool = False) -> "Workflow":
        """Run the failed, out-of-memory, cancelled and lost tasks again; returns the new workflow."""
        if self.id is None:
            raise InvalidSpec("workflow was never submitted")
        new_id = _engine().rerun_failed(self.ws, self.id, wait=wait)
        return Workflow(self.ws, workflow_id=new_id)


class JobsAPI:
    """``ws.jobs``: the jobs of one workspace (what the ``ws jobs`` commands call)."""

    def __init__(self, ws: Repo):
        self.ws = ws

    def list(self, state: str | None = None, name: str | None = None, workflow: str | None = None,
             labels: list[str] | dict | None = None) -> list[dict]:
        """Recorded jobs, oldest first (catalog only); ``labels`` (``k=v`` strings or a dict) must all match."""
        return query.list_jobs(self.ws, state, name, workflow, labels)

    def list_json(self, state: str | None = None, name: str | None = None, workflow: str | None = None,
                  labels: list[str] | dict | None = None) -> str:
        """The job list as JSON text, built inside SQLite for speed."""
        return query.list_jobs_json(self.ws, state, name, workflow, labels)

    def show(self, job_id: str) -> dict:
        """One job with events, durations, workflow, logs and output commit."""
        return query.show_job(self.ws, job_id)

    def get(self, job_id: str) -> Task:
        """A :class:`Task` handle on a recorded job."""
        return Task(self.ws, job_id)

    def workflow(self, workflow_id: str = "latest") -> Workflow:
        """A recorded workflow."""
        return Workflow.load(self.ws, workflow_id)

    def spec(self, name_or_path: str) -> Job:
        """A spec of the workspace as a :class:`Job`."""
        return Job.load(self.ws, name_or_path)

    def logs(self, job_id: str, stderr: bool = False) -> str:
        """A job's stdout (or stderr) so far."""
        return query.read_log(self.ws, job_id, stderr)

    def follow(self, job_id: str, stderr: bool = False):
        """Yield a job's log as it grows until the job ends."""
        return query.follow_log(self.ws, job_id, stderr)

    def log_end(self, job_id: str, tail_lines: int = 10) -> dict:
        """How a job ended: state, exit code, reason, its log files and the last lines of its stderr."""
        return query.log_end(self.ws, job_id, tail_lines)

    def prune(self, before: str) -> list[dict]:
        """Forget finished jobs older than ``before`` (a date or an age like ``30d``)."""
        return query.prune(self.ws, before)

    def validate(self, spec: str | None = None, cwd=None) -> list[dict]:
        """Check one spec (raising) or every spec in ``jobs/`` (reporting each)."""
        return query.validate_specs(self.ws, spec, cwd)

    def expand(self, names: list[str], params: dict | None = None, backend: str | None = None) -> list:
        """The jobs ``ws run`` would submit for these specs (names or paths)."""
        from workspace.jobs.expand import expand

        return expand(self.ws, [find_spec(self.ws, n) for n in names], params or {}, backend=backend)

    # -- running (what ``ws jobs cancel|wait|rerun|refresh|supervise`` call) --
    def cancel(self, job_ids: list[str] | None = None, all_jobs: bool = False, reason: str | None = None) -> list[str]:
        """Cancel jobs (ids, prefixes or workflow ids), or every active job; returns the ids cancelled.

        ``reason`` is recorded on each as ``cancelled by user: REASON``.
        """
        return _engine().cancel(self.ws, job_ids or [], all_jobs=all_jobs, reason=reason)

    def delete(self, job_ids: list[str], keep_outputs: bool = True) -> list[dict]:
        """Forget finished jobs (record, events, logs); refuses active ones. Output commits stay."""
        return _engine().delete(self.ws, job_ids, keep_outputs=keep_outputs)

    def wait(self, job_ids: list[str], timeout: float | None = None) -> list[dict]:
        """Block until the jobs are final; returns their rows (WaitTimedOut after ``timeout`` s)."""
        return _engine().wait(self.ws, job_ids, timeout)

    def rerun_failed(self, workflow_id: str | None = None, wait: bool = False) -> str:
        """A new workflow re-running the failed, cancelled, lost and out-of-memory jobs; returns its id."""
        return _engine().rerun_failed(self.ws, workflow_id, wait=wait)

    def refresh(self) -> list[dict]:
        """Ask the backends about unfinished and lost jobs; returns ``{id, old, new}`` per change."""
        return _engine().refresh(self.ws)

    def refresh_report(self) -> dict:
        """``ws jobs refresh``: the changes, plus per backend whether it answered, was skipped or failed."""
        return _engine().refresh_report(self.ws)

    def fetch(self, job_id: str) -> dict:
        """``ws jobs fetch``: bring a job's outputs and logs home from its backend, committing a SUCCEEDED
        job's outputs with provenance if that never happened. ``{id, state, fetched, output_commit, problem}``."""
        from workspace.jobs.outputs import fetch_job

        return fetch_job(self.ws, job_id)

    def supervise(self, workflow_id: str, adopt: bool = False) -> str:
        """Run a workflow's supervisor in this process until it ends; returns its final state."""
        from workspace.jobs.supervisor import supervise

        return supervise(self.ws, workflow_id, adopt=adopt)


def _engine():
    """The execution side (workspace.jobs.engine), imported only when something runs."""
    from workspace.jobs import engine

    return engine


def _with_upstream(jobs: list[Job]) -> list[Job]:
    """The jobs plus every Job object they depend on (specs named by string are found in jobs/)."""
    out: list[Job] = []
    todo = list(jobs)
    while todo:
        job = todo.pop(0)
        if all(job is not seen for seen in out):
            out.append(job)
            todo.extend(job.upstream)
    return out


def _under_any(path: str, prefixes: list[str]) -> bool:
    for pre in prefixes:
        pre = pre.rstrip("/")
        if path == pre or path.startswith(pre + "/"):
            return True
    return False
