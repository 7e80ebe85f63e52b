"""A SubmitRequest as an AWS Batch job definition and submission, and a Batch job as a BackendStatus.

Names and units follow the AWS Batch API (RegisterJobDefinition, SubmitJob,
DescribeJobs): vCPUs and memory in MiB as ``resourceRequirements``, a timeout
in whole seconds of at least 60, a retry strategy of 1 to 10 attempts. What
Batch cannot honour is refused by :func:`check` with
:class:`~sync.compute.base.UnsatisfiableRequest` (exit 9) naming the spec
field, never dropped. docs/backends.md ("AWS Batch") has the full mapping.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
import os
import posixpath
import re
import shlex
import zlib
from dataclasses import dataclass
from functools import lru_cache

from sync.compute.base import (CANCELLED, FAILED, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, BackendStatus,
                               SubmitRequest, UnsatisfiableRequest)

NAME_MAX = 128  # job and job definition names: letters, digits, - and _, first (and, for moto, last) alphanumeric
QUEUED_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
CANCEL_REASON = "ws: cancelled by user"  # given to cancel_job/terminate_job: FAILED with it means CANCELLED
MIN_TIMEOUT_S = 60  # Batch refuses attemptDurationSeconds below 60
MAX_ATTEMPTS = 10  # retryStrategy.attempts: 1..10
ENTRY_EXITS = {121: "the ws entrypoint could not stage the inputs in",
               122: "the ws entrypoint could not stage the outputs out",
               123: "the ws entrypoint could not read its job manifest"}
MANIFEST_PARAM = "wsmanifest"  # the job definition's command ends with Ref::wsmanifest
FINGERPRINT_PARAM = "wsdef"  # a default parameter naming what the definition holds (reuse test)
TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")
TAG_VALUE = re.compile(r"^[\w.:/=+\-@ ]{0,256}$")


@dataclass
class Defaults:
    """Backend options the mapping needs (see :class:`sync.compute.batch.BatchBackend`)."""

    image: str | None = None
    memory_mb: int = 2048  # Batch needs a memory value; 2048 MiB is the console's default
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    log_group: str | None = None  # None: Batch's default, /aws/batch/job
    s3_region: str = "us-east-1"
    s3_endpoint: str | None = None  # an S3-compatible endpoint the container must use (tests: moto)
    job_root: str | None = None  # where the entrypoint puts the job's files in the container
    entrypoint: str = "embedded"  # or a command line, e.g. "python3 -m sync.compute.batch_entry"
    workspace_root: str | None = None
    fair_share: bool = False  # the queue has a scheduling policy: priorities go to schedulingPriorityOverride


# -- names ------------------------------------------------------------------------------
def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text).strip("_-") or "job"


def job_name(request: SubmitRequest) -> str:
    """``ws-<spec name>-<job id>-<attempt>``: within Batch's rules, and what :meth:`find` looks for."""
    tail = f"-{_name_part(request.job_id)}-{int(request.attempt)}"
    return ("ws-" + _name_part(request.name))[:NAME_MAX - len(tail)].rstrip("_-") + tail


def parse_job_name(name: str) -> tuple[str, int] | None:
    """(job id, attempt) from a name :func:`job_name` made; None for anything else."""
    m = re.match(r"^ws-.*-([A-Za-z0-9_]+)-(\d+)$", name or "")
    return (m.group(1), int(m.group(2))) if m else None


def definition_name(request: SubmitRequest) -> str:
    """``ws-<spec name>``: one job definition name per spec, one revision per distinct content."""
    return ("ws-" + _name_part(request.name))[:NAME_MAX].rstrip("_-")


# -- refusing what cannot be honoured -------------------------------------------------------
def check(request: SubmitRequest, d: Defaults) -> None:
    """Raise UnsatisfiableRequest (exit 9, naming the spec field) for anything AWS Batch cannot honour."""
    check_resources(request.cpus, request.gpus)
    if not (request.image or d.image):
        raise UnsatisfiableRequest("AWS Batch runs every job in a container: set container.image, or the "
                                   "backend's default_image option", field="container.image")
    if (request.runtime or "docker") != "docker":
        raise UnsatisfiableRequest(f"AWS Batch runs Docker (OCI) images, not '{request.runtime}'",
                                   field="container.runtime")
    unsupported = [("resources.nodes", request.nodes > 1, "multi-node parallel jobs are not supported"),
                   ("resources.disk", request.disk_mb, "a job's disk comes from its compute environment"),
                   ("artifacts", request.artifacts, "inputs reach a job through the staging remote"),
                   ("notify.on", request.notifications, "use the spec's notify.command or notify.url"),
                   ("policies.max_queue", request.max_queue_s, "the supervisor enforces it, Batch cannot")]
    for name, value, why in unsupported:
        if value:
            raise UnsatisfiableRequest(f"the batch backend cannot honour '{name}': {why}", field=name)
    if request.priority is not None and not d.fair_share:
        raise UnsatisfiableRequest("AWS Batch takes a job priority only on a fair-share queue (the backend's "
                                   "fair_share option)", field="policies.priority")
    if not 0 <= request.retries < MAX_ATTEMPTS:
        raise UnsatisfiableRequest(f"AWS Batch makes at most {MAX_ATTEMPTS} attempts (retries asked: "
                                   f"{request.retries})", field="retries")
    for key in request.env:
        if key.upper().startswith("AWS_BATCH"):
            raise UnsatisfiableRequest(f"environment variable {key}: AWS Batch reserves names starting with "
                                       "AWS_BATCH", field="env")
    _check_labels(request.labels)
    for path in [*request.output_files, *request.output_dirs, *request.input_files]:
        relative_path(path, "inputs" if path in request.input_files else "outputs")
    task_workdir(request, d)


def check_resources(cpus: int, gpus: int) -> None:
    """At least one vCPU; gpus are a resource requirement like the others."""
    if cpus < 1:
        raise UnsatisfiableRequest("AWS Batch needs at least 1 vCPU", resource="cpus")
    if gpus < 0:
        raise UnsatisfiableRequest("gpus cannot be negative", resource="gpus")


def _check_labels(labels: dict[str, str]) -> None:
    if len(labels) > 50:
        raise UnsatisfiableRequest("AWS Batch takes at most 50 tags (labels) per job", field="labels")
    for key, value in labels.items():
        if key.lower().startswith("aws:") or not TAG_KEY.match(str(key)) or not TAG_VALUE.match(str(value)):
            raise UnsatisfiableRequest(f"label {key}={value!r}: AWS tags take up to 128 (key) and 256 (value) "
                                       "letters, digits, spaces and _ . : / = + - @, and no 'aws:' prefix",
                                       field="labels")


def relative_path(path: str, fld: str = "outputs") -> str:
    """A declared path as a clean relative path (trailing ``/`` dropped); refuses absolute and ``..`` paths."""
    clean = posixpath.normpath(path.rstrip("/")) if path.rstrip("/") else ""
    if not clean or clean == "." or clean.startswith(("/", "../")) or clean == ".." or clean.split("/")[0] == ".ws":
        raise UnsatisfiableRequest(f"'{path}' ({fld}) is not a path inside the workspace", field=fld)
    return clean


def task_workdir(request: SubmitRequest, d: Defaults) -> str:
    """The command's folder relative to the job's root ('' at the root); refuses one outside the workspace."""
    if d.workspace_root is None:
        if request.workdir and os.path.isabs(request.workdir):
            raise UnsatisfiableRequest("the batch backend needs its workspace_root option to place an absolute "
                                       "workdir", field="workdir")
        return relative_path(request.workdir, "workdir") if request.workdir not in ("", ".", None) else ""
    root = os.path.abspath(d.workspace_root)
    wd = os.path.abspath(os.path.join(root, request.workdir or "."))
    if wd == root:
        return ""
    if not wd.startswith(root + os.sep):
        raise UnsatisfiableRequest(f"workdir {request.workdir} is outside the workspace; on AWS Batch a job "
                                   "starts in its own folder, which stands for the workspace root", field="workdir")
    return os.path.relpath(wd, root).replace(os.sep, "/")


# -- the job definition and the submission -------------------------------------------------
def definition(request: SubmitRequest, d: Defaults) -> dict:
    """RegisterJobDefinition's arguments for this request, with a fingerprint of them as a default parameter."""
    resources = [{"type": "VCPU", "value": str(request.cpus)},
                 {"type": "MEMORY", "value": str(int(request.memory_mb or d.memory_mb))}]
    if request.gpus:
        resources.append({"type": "GPU", "value": str(request.gpus)})
    env = {"WS_S3_REGION": d.s3_region, "WS_S3_ENDPOINT": d.s3_endpoint, "WS_JOB_ROOT": d.job_root}
    props: dict = {"image": request.image or d.image, "command": entry_command(d.entrypoint),
                   "resourceRequirements": resources,
                   "environment": [{"name": k, "value": v} for k, v in sorted(env.items()) if v]}
    if d.job_role_arn:
        props["jobRoleArn"] = d.job_role_arn
    if d.execution_role_arn:
        props["executionRoleArn"] = d.execution_role_arn
    if d.log_group:
        props["logConfiguration"] = {"logDriver": "awslogs", "options": {"awslogs-group": d.log_group}}
    body: dict = {"jobDefinitionName": definition_name(request), "type": "container", "containerProperties": props}
    if request.retries:
        body["retryStrategy"] = {"attempts": request.retries + 1}
    if request.walltime_s:
        body["timeout"] = {"attemptDurationSeconds": max(MIN_TIMEOUT_S, math.ceil(request.walltime_s))}
    body["parameters"] = {FINGERPRINT_PARAM: fingerprint(body)}
    return body


def fingerprint(body: dict) -> str:
    """What a job definition holds, as 32 hex digits (its revisions are compared by it)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def submission(request: SubmitRequest, d: Defaults, queue: str, definition_arn: str, manifest_url: str,
               depends_on: list[str] = ()) -> dict:
    """SubmitJob's arguments: the name, queue, definition, the manifest parameter and the job's environment."""
    env = {**request.env, "WS_JOB_ID": request.job_id, "WS_JOB_ATTEMPT": str(request.attempt)}
    args: dict = {"jobName": job_name(request), "jobQueue": queue, "jobDefinition": definition_arn,
                  "parameters": {MANIFEST_PARAM: manifest_url},
                  "containerOverrides": {"environment": [{"name": k, "value": str(v)} for k, v in sorted(env.items())]}}
    if request.labels:
        args["tags"] = {str(k): str(v) for k, v in request.labels.items()}
    if depends_on:
        args["dependsOn"] = [{"jobId": j} for j in depends_on]
    if request.priority is not None and d.fair_share:
        args["schedulingPriorityOverride"] = int(request.priority)
    return args


def entry_command(entrypoint: str = "embedded") -> list[str]:
    """The container command: the entrypoint, then the manifest's URL (``Ref::wsmanifest``, filled at submit)."""
    if entrypoint == "embedded":
        return ["python3", "-c", bootstrap(), f"Ref::{MANIFEST_PARAM}"]
    return [*shlex.split(entrypoint), f"Ref::{MANIFEST_PARAM}"]


@lru_cache(maxsize=1)
def bootstrap() -> str:
    """``python3 -c`` code carrying the entrypoint and its S3 client (compressed), so the image needs no ws.

    Both modules, without docstrings and comments, go into one zlib stream
    (base85): about 9 KB, which every DescribeJobs answer repeats per job.
    """
    from sync.compute import batch_entry, batch_s3

    blob = zlib.compress(b"\0".join(_stripped(m.__file__) for m in (batch_s3, batch_entry)), 9)
    return ("import base64,sys,types,zlib\n"
            "def _l(n,s):\n"
            " m=types.ModuleType(n);sys.modules[n]=m;exec(compile(s,n,'exec'),m.__dict__);return m\n"
            "a,b=zlib.decompress(base64.b85decode('" + base64.b85encode(blob).decode() + "')).split(b'\\0')\n"
            "_l('ws_batch_s3',a)\n"
            "sys.exit(_l('ws_batch_entry',b).main(sys.argv[1:]))\n")


def _stripped(path: str) -> bytes:
    """A module's source without docstrings and comments (what runs is the same)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree).encode()


# -- what Batch says about a job -----------------------------------------------------------------
def to_status(job: dict) -> BackendStatus:
    """Our state for a DescribeJobs entry, with a one-line reason."""
    state = str(job.get("status") or "")
    reason = job.get("statusReason") or None
    attempts = job.get("attempts") or []
    last = (attempts[-1].get("container") if attempts and isinstance(attempts[-1], dict) else None) or {}
    container = job.get("container") or {}
    code = container.get("exitCode", last.get("exitCode"))
    detail = container.get("reason") or last.get("reason") or None
    started, stopped = _ns(job.get("startedAt")), _ns(job.get("stoppedAt"))
    if state in QUEUED_STATES:
        return BackendStatus(QUEUED, reason=f"{state}: {reason}" if reason else state)
    if state == "RUNNING":
        return BackendStatus(RUNNING, started_ns=started)
    final = {"exit_code": code, "started_ns": started, "finished_ns": stopped or started}
    if state == "SUCCEEDED":
        return BackendStatus(SUCCEEDED, **{**final, "exit_code": 0 if code is None else code})
    if state == "FAILED":
        state, why = _failure(reason, detail, code)
        return BackendStatus(state, reason=why, **final)
    # a status this code does not know (a newer API): not final, so the supervisor keeps asking
    return BackendStatus(QUEUED, reason=f"AWS Batch status '{state}'" + (f": {reason}" if reason else ""))


def _failure(reason: str | None, detail: str | None, code: int | None) -> tuple[str, str]:
    if reason and reason.startswith(CANCEL_REASON):
        return CANCELLED, "cancelled by user"
    if detail and "OutOfMemory" in detail:
        return OUT_OF_MEMORY, f"out of memory: {detail}"
    if reason and "timeout" in reason.lower():
        return FAILED, f"timed out: {reason}"
    if code in ENTRY_EXITS:
        return FAILED, f"exit code {code}: {ENTRY_EXITS[code]} (see the job's log)"
    if code is not None:
        return FAILED, f"exit code {code}" + (f": {detail}" if detail else "")
    return FAILED, reason or detail or "failed"


def _ns(ms) -> int | None:
    return int(ms) * 1_000_000 if isinstance(ms, (int, float)) and ms > 0 else None
