"""The compute backend protocol: submit, find, status of many jobs in one call, cancel, logs.

A backend knows nothing about workspaces, specs or the catalog. The engine
(``workspace.jobs.engine``) turns an expanded job into a :class:`SubmitRequest`,
hands the jobs it starts in one turn to :meth:`ComputeBackend.submit_many`,
keeps the backend ids the backend returns, and asks for the status of all its
running jobs with one :meth:`ComputeBackend.status` call per poll.

Submission is idempotent: the supervisor records its intent (job id and
attempt) before :meth:`ComputeBackend.submit` and the backend id after it. A
supervisor killed in between leaves a started job the catalog has no id for;
:meth:`ComputeBackend.find` recovers the id from the job id and attempt alone,
because every backend names what it starts after them (local: a pid file the
job's own wrapper writes; Slurm and Batch: the job name).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sync.errors import BackendError

# States a backend may report. The engine maps them onto catalog job states.
QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
LOST = "LOST"  # the backend no longer knows the job and has no exit code for it
OUT_OF_MEMORY = "OUT_OF_MEMORY"  # killed for exceeding its memory limit (Slurm's name for it)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED, LOST, OUT_OF_MEMORY})


class BackendUnavailable(BackendError):
    """The backend could not be reached (its controller is down, a command timed out): nothing was decided.

    Unlike other backend errors this says nothing about the job: the
    supervisor keeps the job's last known state and tries again with backoff
    (a submit that met it leaves the job PENDING, its attempt not used up).
    """


class InvalidBackendOption(BackendError):
    """A backend option with a value the backend cannot use (a configuration problem: exit 9)."""

    exit_code = 9


class UnsatisfiableRequest(BackendError):
    """A job this backend can never run, e.g. more gpus than the machine has (exit 9, like an invalid spec).

    ``resource`` names the resource at fault (``gpus``, ``memory``, ...) so
    that spec validation can point at the field; ``field`` is the spec field
    for anything else (``labels``, ``container.image``, ...), and defaults to
    ``resources.<resource>``.
    """

    exit_code = 9

    def __init__(self, message: str, resource: str | None = None, field: str | None = None):
        super().__init__(message)
        self.resource = resource
        self.field = field or (f"resources.{resource}" if resource else None)


@dataclass
class SubmitRequest:
    """Everything a backend needs to start one job attempt.

    ``log_dir`` is a local folder the backend may use for stdout, stderr and
    its own bookkeeping; ``workdir`` is where the command starts.

    The fields after ``attempt`` matter to backends without the workspace's
    file system (PROMINENCE, AWS Batch); backends that cannot honour a value
    other than its default refuse it in :meth:`ComputeBackend.check_request`.
    Paths in ``input_files``, ``output_files`` and ``output_dirs`` are
    relative to the workspace root, as a spec's ``inputs`` and ``outputs``
    are; ``input_files`` are the files the inputs matched, with the content
    ids the job key was computed from (backends on the workspace's file
    system ignore them).
    """

    job_id: str
    name: str
    command: str
    workdir: str
    log_dir: str
    env: dict[str, str] = field(default_factory=dict)
    cpus: int = 1
    memory_mb: int | None = None
    walltime_s: float | None = None
    gpus: int = 0
    attempt: int = 1
    image: str | None = None  # container image; None: the backend's default (if it has one)
    runtime: str | None = None  # container runtime: docker, singularity, udocker; None: the backend's default
    labels: dict[str, str] = field(default_factory=dict)  # key=value tags the backend shows and filters on
    nodes: int = 1
    disk_mb: int | None = None  # scratch disk the job needs, MiB
    artifacts: list[str] = field(default_factory=list)  # URLs fetched into the job's folder before it runs
    input_files: dict[str, str] = field(default_factory=dict)  # files the job reads: path -> SHA-256 ("": unknown)
    output_files: list[str] = field(default_factory=list)  # declared output files, relative to the workspace root
    output_dirs: list[str] = field(default_factory=list)  # declared output folders, likewise
    params: dict[str, Any] = field(default_factory=dict)  # this job's sweep parameters (lets a backend rebuild a sweep)
    depends_on: list[str] = field(default_factory=list)  # job ids that must succeed first (within one submit_many)
    retries: int = 0  # retries the backend itself makes within this attempt (ws retries with new attempts)
    priority: int | None = None  # passed to a backend with its own queue priority
    max_queue_s: float | None = None  # the backend fails the job if it waits longer in its queue
    notifications: list[str] = field(default_factory=list)  # events the backend itself reports ("finished")


@dataclass
class BackendStatus:
    """What a backend knows about one job: a state and, once final, how it ended."""

    state: str
    exit_code: int | None = None
    started_ns: int | None = None
    finished_ns: int | None = None
    reason: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class ComputeBackend:
    """Base class of compute backends. Subclasses implement the four operations.

    Backends must be cheap to construct and must not contact anything in
    ``__init__``: ``ws jobs refresh`` builds one per backend name it finds.
    """

    name = "base"
    starts_at_once = False  # True when submit() starts the job (no queue): it is RUNNING right away
    enforces_walltime = False  # True when the backend itself stops a job at request.walltime_s (Slurm's --time)
    fetches_artifacts = False  # True when submit() fetches request.artifacts into the job's folder itself
    stages_inputs = False  # True when the backend reads request.input_files (no shared file system: AWS Batch)
    poll_interval_s = 0.0  # the least time between two status requests (its poll option; 0: ask at will)

    def submit(self, request: SubmitRequest) -> str:
        """Start (or queue) one job attempt; returns the backend's id for it.

        The backend must name what it starts after ``request.job_id`` and
        ``request.attempt`` so that :meth:`find` can locate it from them alone.
        """
        raise NotImplementedError

    def submit_many(self, requests: list[SubmitRequest]) -> list[str | BackendError]:
        """Submit a batch of attempts at once; one entry per request, in order: its backend id or the error.

        The supervisor hands every job it starts in one turn to this call, so
        that a backend with a batch form submits a sweep in one request (a
        Slurm array, a PROMINENCE workflow). A :class:`BackendError` refusing
        one request must not stop the others: it takes that request's place in
        the answer. A backend may instead raise a BackendError for the whole
        batch, but only when nothing of it was started. The default submits
        the requests one by one.
        """
        results: list[str | BackendError] = []
        for request in requests:
            try:
                results.append(self.submit(request))
            except BackendError as exc:
                results.append(exc)
        return results

    def find(self, request: SubmitRequest) -> str | None:
        """The backend id of the attempt ``request`` describes, if it was ever submitted, else None.

        Called by a new process (``ws jobs refresh``, ``ws jobs cancel``, a
        restarted supervisor) for an attempt whose submitter died before it
        recorded the id. It must answer from a fresh instance, for running and
        finished attempts alike, and never mistake another attempt of the same
        job for this one. None means "never started": the caller may submit it.
        """
        raise NotImplementedError

    def check_resources(self, cpus: int = 1, memory_mb: int | None = None, gpus: int = 0) -> None:
        """Refuse, before anything is recorded, resources this backend can never provide.

        Raises :class:`UnsatisfiableRequest`. Must be cheap and must not start
        anything; the default accepts everything (a cluster's scheduler decides).
        """

    def check_request(self, request: SubmitRequest) -> None:
        """Refuse a request this backend cannot honour (UnsatisfiableRequest, exit 9), before anything starts.

        The default checks the resources (:meth:`check_resources`) and refuses
        every field a backend on this machine's file system cannot honour:
        a container image, more than one node, artifacts to fetch, backend-side
        retries and notifications. Backends that support them override this.
        """
        self.check_resources(request.cpus, request.memory_mb, request.gpus)
        unsupported = [("container.image", request.image, "it runs commands directly, without a container runtime"),
                       ("container.runtime", request.runtime, "it runs commands directly, without a container runtime"),
                       ("resources.nodes", request.nodes > 1, "it runs each job on one machine"),
                       ("artifacts", request.artifacts and not self.fetches_artifacts,
                        "it does not fetch URLs before a job"),
                       ("retries", request.retries, "ws's own policies.retries apply"),
                       ("notify.on", request.notifications, "use notify.command or notify.url")]
        for name, value, why in unsupported:
            if value:
                raise UnsatisfiableRequest(f"the {self.name} backend cannot honour '{name}': {why} (use a backend "
                                           "that can, see 'ws backend list' and docs/backends.md)", field=name)

    def fetch_outputs(self, backend_id: str, request: SubmitRequest, dest: str) -> list[str]:
        """Bring a finished job's declared outputs into ``dest`` (the workspace root); the paths written.

        Also writes the job's stdout and stderr into ``request.log_dir`` (as
        ``stdout`` and ``stderr``, where ``ws jobs logs`` reads them) when the
        backend keeps them elsewhere. Called before the outputs are committed.
        Backends that run on the workspace's own file system (local, Slurm)
        have nothing to fetch.
        """
        return []

    def status(self, backend_ids: list[str]) -> dict[str, BackendStatus]:
        """The status of many jobs in one call; ids the backend does not know are LOST."""
        raise NotImplementedError

    def cancel(self, backend_ids: list[str]) -> None:
        """Stop these jobs; ids already finished are ignored."""
        raise NotImplementedError

    def logs(self, backend_id: str) -> tuple[str, str]:
        """(stdout, stderr) of a job: each a local file path or the text itself."""
        raise NotImplementedError

    def wait(self, backend_ids: list[str], timeout: float) -> None:
        """Block up to ``timeout`` seconds or until one of the jobs may have changed state.

        The default just waits; backends that can be woken (local child
        processes) return as soon as something finishes.
        """
        if timeout > 0:
            time.sleep(timeout)  # remote backends have no event to wait on: plain poll interval

    def check(self) -> list[tuple[str, bool, str]]:
        """What ``ws backend check`` reports: one (check, passed, detail) per thing that must work.

        Each check reaches the service for real (the controller, the queue or
        partition, the credentials) and is reported, not raised, so that every
        check gets its line. The default asks for the status of no job.
        """
        try:
            self.status([])
        except BackendError as exc:
            return [("status", False, str(exc))]
        return [("status", True, f"the {self.name} backend answers")]

    def close(self) -> None:
        """Release resources (connections, child handles)."""
