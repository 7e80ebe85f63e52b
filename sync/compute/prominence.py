"""The PROMINENCE backend: jobs on a PROMINENCE service through its REST API (``/v1/jobs``, ``/v1/workflows``).

A job attempt becomes a PROMINENCE job (``POST /v1/jobs``) whose one task runs
the ws command with ``/bin/sh -c`` in the job's container; a batch
(:meth:`ProminenceBackend.submit_many`: a sweep, a DAG) becomes one workflow
(``POST /v1/workflows``) with a ``zip`` factory per sweep and its
``depends_on`` as dependencies (:mod:`sync.compute.prominence_sweep`).

Backend ids: ``<job id>`` for a job, ``<workflow id>/<job name>`` for a job of a
workflow and ``<workflow id>/<job name>/<index>`` for an instance of a factory,
as PROMINENCE names them (``<workflow name>/<job name>/<index>``). PROMINENCE
creates a workflow's jobs as it goes; until it has, an instance has no job id,
and its status comes from the workflow's.

Status asks for every job at once (``GET /v1/jobs?id=1,2,...&detail=true``),
at most once per ``poll_interval`` seconds (answers in between come from the
last one; final states are never asked again). Instances of a workflow are
resolved to their job ids once (``GET /v1/jobs?workflow=true&id=W``) and then
asked with the others.

``find`` asks PROMINENCE alone, so it works from a fresh instance: jobs carry
the labels ``wsjob=<ws job id>`` and ``wsattempt=<attempt>`` (listed with
``constraint=wsjob=...``), workflows a label per spec name, and their
factories the hidden parameters ``wsjob`` and ``wsattempt``.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from sync.compute.base import CANCELLED, LOST, QUEUED, BackendStatus, ComputeBackend, SubmitRequest
from sync.compute.prominence_api import ProminenceAPI, keyring_token
from sync.compute.prominence_jobs import (ATTEMPT_LABEL, JOB_LABEL, Defaults, check, check_resources, job_json,
                                          safe_name, to_status)
from sync.compute.prominence_outputs import match_outputs, place, place_dir, write_text
from sync.compute.prominence_sweep import all_members, member_of_workflow, name_label, plan_workflow
from sync.errors import BackendError

DEFAULT_POLL_INTERVAL_S = 5.0
IDS_PER_REQUEST = 200  # ids in one list request (a URL stays well under 8 KB)
FINAL_WORKFLOW = {"completed", "failed", "deleted", "killed"}


def _flag(value) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


class ProminenceBackend(ComputeBackend):
    """Jobs on a PROMINENCE service. Options (strings from a config file are converted):

    ``url`` the API (``https://host/prominence/v1``; ``PROMINENCE_URL`` when
    unset); ``token`` or ``token_provider`` (else the environment and keyring,
    see :mod:`sync.compute.prominence_api`); ``backend_name`` (the configured
    name: keyring user ``backend:<name>``); ``poll_interval`` (s); container
    ``default_image`` and ``default_runtime``; ``default_memory_gb``,
    ``default_disk_gb``, ``default_walltime_min``; ``workspace_root`` (the
    folder a job's home stands for); ``leave_in_queue``; ``timeout`` (s) and
    ``verify`` (TLS) for requests.
    """

    name = "prominence"

    def __init__(self, url: str | None = None, token: str | None = None,
                 token_provider: Callable[[], str] | None = None, backend_name: str = "prominence",
                 poll_interval: float = DEFAULT_POLL_INTERVAL_S, default_image: str | None = None,
                 default_runtime: str = "singularity", default_memory_gb: int = 1,
                 default_disk_gb: int | None = None, default_walltime_min: int | None = None,
                 workspace_root: str | os.PathLike | None = None, leave_in_queue: bool = False,
                 timeout: float = 30.0, verify: bool | str = True, session=None):
        provider = (lambda: token) if token else (token_provider or keyring_token(backend_name))
        if isinstance(verify, str) and verify.lower() in ("true", "false", "1", "0", "yes", "no"):
            verify = _flag(verify)
        self.api = ProminenceAPI(url or os.environ.get("PROMINENCE_URL"), provider, backend_name,
                                 float(timeout), verify, session)
        self.defaults = Defaults(image=default_image, runtime=default_runtime, memory_gb=int(default_memory_gb),
                                 disk_gb=int(default_disk_gb) if default_disk_gb else None,
                                 walltime_min=int(default_walltime_min) if default_walltime_min else None,
                                 workspace_root=os.fspath(workspace_root) if workspace_root else None,
                                 leave_in_queue=_flag(leave_in_queue))
        self.poll_interval_s = float(poll_interval)
        self._last_poll: float | None = None
        self._cache: dict[str, BackendStatus] = {}
        self._resolved: dict[tuple[str, str], str] = {}  # (workflow id, member) -> job id

    # -- checks ------------------------------------------------------------------
    def check(self) -> list[tuple[str, bool, str]]:
        """The service answers and accepts the token: one ``GET /v1/jobs`` (the active jobs, usually few)."""
        from sync.compute.prominence_api import ProminenceAuthError

        if not self.api.url:
            return [("service", False, f"backend '{self.api.backend_name}' has no url option (nor PROMINENCE_URL)")]
        try:
            jobs = self._list("/jobs", {})
        except ProminenceAuthError as exc:
            if "rejected" not in str(exc):  # no token at all: nothing was asked
                return [("token", False, str(exc))]
            return [("service", True, f"PROMINENCE at {self.api.url} answers"), ("token", False, str(exc))]
        except BackendError as exc:
            return [("service", False, str(exc))]
        return [("service", True, f"PROMINENCE at {self.api.url} answers"),
                ("token", True, f"the token is accepted ({len(jobs)} active job(s) listed)")]

    def check_resources(self, cpus: int = 1, memory_mb: int | None = None, gpus: int = 0) -> None:
        """Refuse gpus: PROMINENCE's job description has no such resource."""
        check_resources(cpus, gpus)

    def check_request(self, request: SubmitRequest) -> None:
        """Refuse (exit 9, naming the spec field) what PROMINENCE cannot honour; see prominence_jobs.check."""
        check(request, self.defaults)

    # -- submitting --------------------------------------------------------------
    def submit(self, request: SubmitRequest) -> str:
        """``POST /v1/jobs`` with the job description; the job id."""
        self.check_request(request)
        answer = self.api.call("POST", "/jobs", body=job_json(request, self.defaults))
        return self._new_id(answer, "job")

    def submit_many(self, requests: list[SubmitRequest]) -> list[str]:
        """One workflow for a sweep (zip factory) or a DAG (dependencies); single jobs when neither applies."""
        for r in requests:
            self.check_request(r)
        first = requests[0] if requests else None
        plan = None
        if len(requests) > 1:
            wf_name = f"ws-{safe_name(first.name)}-{first.job_id}-{first.attempt}"
            plan = plan_workflow(requests, lambda r, n: job_json(r, self.defaults, n), wf_name)
        if plan is None:
            return [self.submit(r) for r in requests]
        if self.defaults.leave_in_queue:
            plan.workflow["policies"] = {"leaveInQueue": True}
        wf_id = self._new_id(self.api.call("POST", "/workflows", body=plan.workflow), "workflow")
        return [f"{wf_id}/{m}" for m in plan.members]

    @staticmethod
    def _new_id(answer, what: str) -> str:
        if not isinstance(answer, dict) or answer.get("id") in (None, ""):
            raise BackendError(f"PROMINENCE created a {what} but answered without its id: {str(answer)[:200]}")
        return str(answer["id"])

    def find(self, request: SubmitRequest) -> str | None:
        """The id of attempt ``request.attempt``: a job labelled with it, else an instance in a workflow of the spec."""
        jobs = self._list("/jobs", {"constraint": f"{JOB_LABEL}={request.job_id}", "all": "true", "detail": "true"})
        mine = [j for j in jobs if "/" not in str(j.get("name") or "")  # "wf/job": a workflow's job, not ours
                and str((j.get("labels") or {}).get(ATTEMPT_LABEL)) == str(request.attempt)
                and (j.get("labels") or {}).get(JOB_LABEL) == request.job_id]
        if mine:
            return str(max(mine, key=lambda j: _order(j.get("id")))["id"])
        key, value = name_label(request.name)
        workflows = self._list("/workflows", {"constraint": f"{key}={value}", "all": "true", "detail": "true"})
        for wf in sorted(workflows, key=lambda w: _order(w.get("id")), reverse=True):
            member = member_of_workflow(wf, request.job_id, request.attempt)
            if member:
                return f"{wf['id']}/{member}"
        return None

    # -- status ------------------------------------------------------------------
    def status(self, backend_ids: list[str]) -> dict[str, BackendStatus]:
        """One list request for all unfinished ids, at most once per poll_interval (see the module doc)."""
        out = {b: self._cache[b] for b in backend_ids if b in self._cache and self._cache[b].final}
        todo = [b for b in dict.fromkeys(backend_ids) if b not in out]
        now = time.monotonic()
        fresh = self._last_poll is not None and now - self._last_poll < self.poll_interval_s
        if todo and (not fresh or any(b not in self._cache for b in todo)):
            self._last_poll = now
            self._cache.update(self._poll(todo))
        out.update({b: self._cache[b] for b in todo})
        return {b: out[b] for b in backend_ids}

    def _poll(self, ids: list[str]) -> dict[str, BackendStatus]:
        jobs: dict[str, list[str]] = {}  # job id -> backend ids
        waiting: dict[str, list[tuple[str, str]]] = {}  # workflow id -> (backend id, member) not yet resolved
        for bid in ids:
            head, member = _split(bid)
            real = self._resolved.get((head, member)) if member else head
            if real:
                jobs.setdefault(real, []).append(bid)
            else:
                waiting.setdefault(head, []).append((bid, member))
        out: dict[str, BackendStatus] = {}
        listed = self._jobs_by_id(list(jobs))
        for real, bids in jobs.items():
            st = to_status(listed[real]) if real in listed else BackendStatus(LOST, reason="PROMINENCE does not "
                                                                                         f"know job {real}")
            out.update({b: st for b in bids})
        unresolved = {}
        for wf_id, members in waiting.items():
            created = self._workflow_jobs(wf_id)
            for bid, member in members:
                if member in created:
                    out[bid] = to_status(created[member])
                else:
                    unresolved.setdefault(wf_id, []).append(bid)
        if unresolved:
            out.update(self._not_created(unresolved))
        return out

    def _jobs_by_id(self, ids: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for i in range(0, len(ids), IDS_PER_REQUEST):
            chunk = ids[i:i + IDS_PER_REQUEST]
            for job in self._list("/jobs", {"id": ",".join(chunk), "detail": "true"}):
                found[str(job.get("id"))] = job
        return found

    def _workflow_jobs(self, wf_id: str) -> dict[str, dict]:
        """The jobs PROMINENCE created so far for a workflow, by member reference (resolving their ids)."""
        out = {}
        for job in self._list("/jobs", {"workflow": "true", "id": wf_id, "detail": "true"}):
            parts = str(job.get("name") or "").split("/", 1)  # "<workflow name>/<job name>[/<index>]"
            if len(parts) == 2 and job.get("id") is not None:
                out[parts[1]] = job
                self._resolved[(wf_id, parts[1])] = str(job["id"])
        return out

    def _not_created(self, waiting: dict[str, list[str]]) -> dict[str, BackendStatus]:
        """Instances with no job yet: queued while their workflow runs, cancelled once it ended without them."""
        workflows = {str(w.get("id")): w for w in self._list("/workflows", {"id": ",".join(waiting)})}
        out = {}
        for wf_id, bids in waiting.items():
            wf = workflows.get(wf_id)
            state = str((wf or {}).get("status") or "")
            if wf is None:
                st = BackendStatus(LOST, reason=f"PROMINENCE does not know workflow {wf_id}")
            elif state in FINAL_WORKFLOW:
                st = BackendStatus(CANCELLED, reason=f"never started: workflow {wf_id} ended {state}"
                                   + (f" ({wf['statusReason']})" if wf.get("statusReason") else ""))
            else:
                st = BackendStatus(QUEUED, reason=f"not created yet by workflow {wf_id} ({state or 'pending'})")
            out.update({b: st for b in bids})
        return out

    def _list(self, path: str, params: dict) -> list[dict]:
        answer = self.api.call("GET", path, params=params)
        if not isinstance(answer, list):
            raise BackendError(f"PROMINENCE answered GET {path} with {type(answer).__name__}, not a list")
        return [a for a in answer if isinstance(a, dict)]

    # -- cancel, logs, outputs ------------------------------------------------------
    def cancel(self, backend_ids: list[str]) -> None:
        """``DELETE /v1/jobs/<id>`` for each job; a workflow whose every instance is cancelled is deleted whole."""
        by_wf: dict[str, list[str]] = {}
        for bid in backend_ids:
            self._cache.pop(bid, None)
            head, member = _split(bid)
            if member:
                by_wf.setdefault(head, []).append(member)
            else:
                self._delete_job(head)
        for wf_id, members in by_wf.items():
            self._cancel_members(wf_id, members)

    def _delete_job(self, job_id: str) -> None:
        try:
            self.api.call("DELETE", f"/jobs/{job_id}", missing_ok=True)
        except BackendError:
            if not self._job_final(job_id):  # refusing to delete a finished job is no failure of ours
                raise

    def _job_final(self, job_id: str) -> bool:
        job = self._jobs_by_id([job_id]).get(job_id)
        return job is None or to_status(job).final

    def _cancel_members(self, wf_id: str, members: list[str]) -> None:
        """Delete the jobs of these instances; instances PROMINENCE has not created yet need the whole workflow."""
        if any((wf_id, m) not in self._resolved for m in members):
            self._workflow_jobs(wf_id)  # created meanwhile?
        left = [m for m in members if (wf_id, m) not in self._resolved]
        if left:
            wf = _first(self.api.call("GET", f"/workflows/{wf_id}", missing_ok=True))
            if wf and str(wf.get("status")) not in FINAL_WORKFLOW:  # (ended: those never start)
                every = all_members(wf) if wf.get("jobs") else []
                if every and set(every) <= set(members):
                    self.api.call("DELETE", f"/workflows/{wf_id}", missing_ok=True)
                    return
        for member in members:
            if (wf_id, member) in self._resolved:
                self._delete_job(self._resolved[(wf_id, member)])
        if left and wf and str(wf.get("status")) not in FINAL_WORKFLOW:
            raise BackendError(f"cannot cancel {', '.join(f'{wf_id}/{m}' for m in left)} yet: PROMINENCE has "
                               "not created those jobs of the workflow; cancel all of its jobs, or try again later")

    def logs(self, backend_id: str) -> tuple[str, str]:
        """(stdout, stderr) as text from ``/v1/jobs/<id>/stdout`` and ``/stderr`` ("" while there is none)."""
        job_id = self._job_id(backend_id)
        if job_id is None:
            return "", ""
        return tuple(self._text(f"/jobs/{job_id}/{stream}") for stream in ("stdout", "stderr"))

    def _text(self, path: str) -> str:
        answer = self.api.call("GET", path, missing_ok=True)
        return answer if isinstance(answer, str) else ""

    def _job_id(self, backend_id: str) -> str | None:
        head, member = _split(backend_id)
        if not member:
            return head
        if (head, member) not in self._resolved:
            self._workflow_jobs(head)
        return self._resolved.get((head, member))

    def fetch_outputs(self, backend_id: str, request: SubmitRequest, dest: str) -> list[str]:
        """Download the job's output files and folders into ``dest``, and its stdout/stderr into ``request.log_dir``."""
        job_id = self._job_id(backend_id)
        if job_id is None:
            return []
        job = _first(self.api.call("GET", f"/jobs/{job_id}", missing_ok=True)) or {}
        if request.log_dir:
            out, err = self.logs(backend_id)
            write_text(os.path.join(request.log_dir, "stdout"), out)
            write_text(os.path.join(request.log_dir, "stderr"), err)
        written = []
        for rel, url in match_outputs(request.output_files, job.get("outputFiles") or []):
            if url:
                place(self.api.download, url, dest, rel)
                written.append(rel)
        scratch = request.log_dir or dest
        for rel, url in match_outputs(request.output_dirs, job.get("outputDirs") or []):
            if url:
                written += place_dir(self.api.download, url, dest, rel, scratch)
        return written

    def close(self) -> None:
        """Close the HTTP connections."""
        self.api.close()


def _split(backend_id: str) -> tuple[str, str | None]:
    head, _, member = str(backend_id).partition("/")
    return head, member or None


def _first(answer):
    """A job or workflow from ``GET /v1/jobs/<id>``: PROMINENCE answers a one-item list (or the object)."""
    if isinstance(answer, list):
        return answer[0] if answer and isinstance(answer[0], dict) else None
    return answer if isinstance(answer, dict) else None


def _order(value) -> tuple:
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)

