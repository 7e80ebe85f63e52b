"""The PROMINENCE job and workflow schema, written from PROMINENCE's documents (not from ws's client).

Sources (prominence-eosc/docs at 4f5ad23): ``rest-api.md`` (the REST API:
request body fields, their types and units), ``json-output.md`` (job
description files), ``labels.md`` (label keys and values), ``policies.md``,
``inputs.md`` (input files: base64, 1 MB each), ``factories.md`` and
``dags.md`` (workflows). Where ``rest-api.md`` and the service's own request
validation (prominence-eosc/prominence ``prominence/validate.py``, which is what
answers 400) disagree, the service wins, and the rule says so:

- ``labels`` is an object of name: value strings (the page says an array of
  ``name=value`` strings; the service refuses anything but an object);
- ``artifacts`` are objects with a ``url`` (the page says strings);
- a task's working directory is ``workdir`` (the page says ``workDir``) and
  its ``runtime`` is required (the page says it defaults to singularity);
- ``resources`` needs cpus (or a cpus range) and memory (or memory per cpu);
- ``policies.maximumRetries`` is 1..5, ``maximumTimeInQueue`` -1, 0 or up to
  44640 minutes, ``priority`` a non-negative integer.

:func:`validate_job` and :func:`validate_workflow` raise :class:`Invalid` with
the first problem, as the service answers 400 with one ``error``.
"""

from __future__ import annotations

import base64
import binascii
import re

JOB_FIELDS = {"name", "labels", "tasks", "resources", "policies", "notifications", "inputs", "artifacts",
              "outputFiles", "outputDirs", "storage"}
RESOURCE_FIELDS = {"nodes", "cpus", "cpusRange", "cpusOptions", "totalCpusRange", "memory", "memoryPerCpu",
                   "disk", "walltime"}
TASK_FIELDS = {"image", "runtime", "cmd", "env", "workdir", "type", "procsPerNode", "app", "imagePullCredential",
               "imageSha256", "stdout"}
TASK_TYPES = {"basic", "sidecar", "openmpi", "mpich", "intelmpi"}
POLICY_FIELDS = {"maximumRetries", "maximumTaskRetries", "maximumTimeInQueue", "maximumIdleTimePerResource",
                 "leaveInQueue", "placement", "priority", "autoScalingType", "ignoreTaskFailures",
                 "reportJobSuccessOnTaskFailure", "runSerialTasksOnAllNodes", "preemptible"}
WORKFLOW_FIELDS = {"name", "labels", "jobs", "dependencies", "factories", "policies", "notifications"}
WORKFLOW_POLICY_FIELDS = {"maximumRetries", "maximumReruns", "leaveInQueue", "placement"}
NAME = re.compile(r"^[A-Za-z0-9\-_\s/.]+$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9]+$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9_\-./]+$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # what "$name" / "${name}" substitution can name
MAX_INPUT_BYTES = 1 << 20


class Invalid(ValueError):
    """A description the service refuses (400, with this message as its ``error``)."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number


def _int(value, where: str, lo: int | None = None, hi: int | None = None) -> None:
    if not _is_int(value):
        raise Invalid(f"{where} must be an integer (got {value!r})")
    if lo is not None and value < lo:
        raise Invalid(f"{where} must be at least {lo} (got {value})")
    if hi is not None and value > hi:
        raise Invalid(f"{where} must be at most {hi} (got {value})")


def _keys(obj, allowed: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise Invalid(f"{where} must be an object")
    extra = sorted(set(obj) - allowed)
    if extra:
        raise Invalid(f'invalid item "{extra[0]}" in {where}')


def _bool(obj: dict, key: str, where: str) -> None:
    if key in obj and not isinstance(obj[key], bool):
        raise Invalid(f"{where}.{key} must be either true or false")


def _str_list(value, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(f"{where} must be a list of strings")


def _name(value, where: str) -> None:
    if not isinstance(value, str) or len(value) > 512 or (value and not NAME.match(value)):
        raise Invalid(f"invalid {where} name {value!r}")


def validate_labels(labels, where: str) -> None:
    """labels.md: an object; keys alphanumeric, values also - _ . /, each under 64 characters."""
    if not isinstance(labels, dict):
        raise Invalid(f"labels of the {where} must be defined as an object")
    for key, value in labels.items():
        if not LABEL_KEY.match(key) or len(key) >= 64:
            raise Invalid(f'label name "{key}" is invalid')
        if not isinstance(value, str) or not LABEL_VALUE.match(value) or len(value) >= 64:
            raise Invalid(f'label value "{value}" is invalid')


def validate_notifications(value, event: str) -> None:
    """A list of {event, type}: both required; the only event is ``event``, the only type ``email``."""
    if not isinstance(value, list):
        raise Invalid("notifications must be a list")
    for note in value:
        _keys(note, {"event", "type"}, "notification")
        if note.get("event") != event:
            raise Invalid(f"invalid notification event {note.get('event')!r} (only {event})")
        if note.get("type") != "email":
            raise Invalid(f"invalid notification type {note.get('type')!r} (only email)")


def validate_resources(res) -> None:
    """Integers >= 1: nodes, cpus (per node), memory and disk in GB, walltime in minutes; or the ranges."""
    _keys(res, RESOURCE_FIELDS, "resources")
    for key in ("nodes", "cpus", "memory", "memoryPerCpu", "disk", "walltime"):
        if key in res:
            _int(res[key], f"resources.{key}", lo=1)
    for key in ("cpusRange", "cpusOptions", "totalCpusRange"):
        if key in res:
            pair = res[key]
            if not isinstance(pair, list) or len(pair) != 2 or not all(_is_int(v) and v >= 1 for v in pair):
                raise Invalid(f"resources.{key} must be a list of two integers >= 1")
            if key != "cpusOptions" and pair[0] > pair[1]:
                raise Invalid(f"resources.{key} must be [minimum, maximum]")
    if sum(k in res for k in ("cpus", "cpusRange", "cpusOptions")) != 1:
        raise Invalid("exactly one of cpus, cpusRange, cpusOptions must be defined")
    if sum(k in res for k in ("memory", "memoryPerCpu")) != 1:
        raise Invalid("one of memory or memoryPerCpu (in GB) must be defined")


def validate_task(task, cpus) -> bool:
    """One task; True when it is a standard (not sidecar) task."""
    _keys(task, TASK_FIELDS, "task")
    if not isinstance(task.get("image"), str) or not task["image"]:
        raise Invalid("each task must specify a container image")
    if task.get("runtime") not in ("singularity", "udocker"):
        raise Invalid("the container runtime must be either singularity or udocker")
    for key in ("cmd", "workdir", "app"):
        if key in task and not isinstance(task[key], str):
            raise Invalid(f"task {key} must be a string")
    env = task.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise Invalid("environment variables must be defined as an object of strings")
    kind = task.get("type", "basic")
    if kind not in TASK_TYPES:
        raise Invalid(f"invalid task type {kind!r}")
    if "procsPerNode" in task:
        _int(task["procsPerNode"], "procsPerNode", lo=1, hi=cpus if _is_int(cpus) else None)
    return kind != "sidecar"


def validate_policies(pol) -> None:
    _keys(pol, POLICY_FIELDS, "policies")
    for key in ("maximumRetries", "maximumTaskRetries"):
        if key in pol:
            _int(pol[key], f"policies.{key}", lo=1, hi=5)
    if "maximumTimeInQueue" in pol:
        _int(pol["maximumTimeInQueue"], "policies.maximumTimeInQueue", lo=-1, hi=44640)
    if "maximumIdleTimePerResource" in pol:
        _int(pol["maximumIdleTimePerResource"], "policies.maximumIdleTimePerResource", lo=1, hi=44640)
    if "priority" in pol:
        _int(pol["priority"], "policies.priority", lo=0)
    for key in ("leaveInQueue", "ignoreTaskFailures", "reportJobSuccessOnTaskFailure", "runSerialTasksOnAllNodes",
                "preemptible"):
        _bool(pol, key, "policies")
    if pol.get("autoScalingType", "none") not in (None, "none", "dedicated", "shared"):
        raise Invalid("autoScalingType, if defined, must be none, dedicated or shared")


def validate_job(job) -> None:
    """A job description (``POST /v1/jobs``, or a job of a workflow)."""
    _keys(job, JOB_FIELDS, "job description")
    if "name" in job:
        _name(job["name"], "job")
    if "resources" not in job:
        raise Invalid("a job must contain resources")
    validate_resources(job["resources"])
    tasks = job.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise Invalid("a job must contain a list of tasks")
    if not any([validate_task(t, job["resources"].get("cpus")) for t in tasks]):
        raise Invalid("a job cannot contain only sidecar tasks")
    if "labels" in job:
        validate_labels(job["labels"], "job")
    for key in ("outputFiles", "outputDirs"):
        if key in job:
            _str_list(job[key], key)
    _validate_artifacts(job.get("artifacts", []))
    _validate_inputs(job.get("inputs", []))
    if "policies" in job:
        validate_policies(job["policies"])
    if "notifications" in job:
        validate_notifications(job["notifications"], "jobFinished")


def _validate_artifacts(artifacts) -> None:
    if not isinstance(artifacts, list):
        raise Invalid("artifacts must be a list")
    for art in artifacts:
        _keys(art, {"url", "mountpoint", "executable"}, "artifact")
        if not isinstance(art.get("url"), str) or not art["url"]:
            raise Invalid("an artifact must contain a URL")
        _bool(art, "executable", "artifact")
        mount = art.get("mountpoint")
        if mount is not None and (not isinstance(mount, str) or ":" not in mount
                                  or not mount.split(":", 1)[1].startswith("/")):
            raise Invalid("an artifact mountpoint must be <name>:<absolute path>")


def _validate_inputs(inputs) -> None:
    if not isinstance(inputs, list):
        raise Invalid("inputs must be a list")
    for item in inputs:
        _keys(item, {"filename", "content", "executable"}, "input")
        if not isinstance(item.get("filename"), str) or not item["filename"]:
            raise Invalid("each input must contain a filename")
        try:
            data = base64.b64decode(item.get("content"), validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise Invalid("each input must contain base64 encoded content") from None
        if len(data) > MAX_INPUT_BYTES:
            raise Invalid(f"input {item['filename']} is larger than 1 MB")


def validate_workflow(wf) -> None:
    """A workflow description (``POST /v1/workflows``)."""
    _keys(wf, WORKFLOW_FIELDS, "workflow description")
    if "name" in wf:
        _name(wf["name"], "workflow")
    jobs = wf.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise Invalid("a workflow must contain jobs")
    names: list[str] = []
    for job in jobs:
        validate_job(job)
        name = job.get("name")
        if not name:
            raise Invalid("all jobs of a workflow must have names")
        if name in names:
            raise Invalid(f'all jobs must have unique names: "{name}" is used more than once')
        names.append(name)
    _validate_dependencies(wf.get("dependencies", {}), names)
    _validate_factories(wf.get("factories", []), names)
    if "policies" in wf:
        pol = wf["policies"]
        _keys(pol, WORKFLOW_POLICY_FIELDS, "workflow policies")
        for key in ("maximumRetries", "maximumReruns"):
            if key in pol:
                _int(pol[key], f"policies.{key}", lo=1, hi=10)
        _bool(pol, "leaveInQueue", "policies")
    if "labels" in wf:
        validate_labels(wf["labels"], "workflow")
    if "notifications" in wf:
        validate_notifications(wf["notifications"], "workflowFinished")


def _validate_dependencies(deps, names: list[str]) -> None:
    """dags.md: parent -> [children], all of them jobs of the workflow, and no cycle."""
    if not isinstance(deps, dict):
        raise Invalid("dependencies must be an object of parent: [children]")
    for parent, children in deps.items():
        if parent not in names:
            raise Invalid(f'parent job "{parent}" is not defined')
        if not isinstance(children, list):
            raise Invalid("children of a parent job must be a list")
        for child in children:
            if child not in names:
                raise Invalid(f'child job "{child}" is not defined')
    seen, done = set(), set()

    def visit(node, path):
        if node in done:
            return
        if node in seen:
            raise Invalid(f"dependencies form a cycle: {' -> '.join(path + [node])}")
        seen.add(node)
        for child in deps.get(node, []):
            visit(child, path + [node])
        done.add(node)

    for name in names:
        visit(name, [])


def _validate_factories(factories, names: list[str]) -> None:
    """factories.md: parameterSweep (start, end, step or number), zip (lists of equal length), repeat (number)."""
    if not isinstance(factories, list):
        raise Invalid("factories must be a list")
    used: set[str] = set()
    for factory in factories:
        if not isinstance(factory, dict) or "type" not in factory or "name" not in factory:
            raise Invalid("a factory must have a type and a name")
        jobs = factory.get("jobs")
        if not isinstance(jobs, list) or not jobs:
            raise Invalid("a factory must list the jobs it applies to")
        for job in jobs:
            if job not in names:
                raise Invalid(f"factory {factory['name']} references a job {job} which is not defined")
            if job in used:
                raise Invalid(f"job {job} is in more than one factory")
            used.add(job)
        kind = factory["type"]
        if kind == "repeat":
            _keys(factory, {"type", "name", "jobs", "number"}, "factory")
            _int(factory.get("number"), "the number of repeats", lo=1)
        elif kind in ("zip", "parameterSweep"):
            _keys(factory, {"type", "name", "jobs", "parameters"}, "factory")
            _validate_parameters(kind, factory.get("parameters"))
        else:
            raise Invalid(f"invalid factory type {kind!r}")


def _validate_parameters(kind: str, params) -> None:
    if not isinstance(params, list) or not params:
        raise Invalid(f"a factory of type {kind} must have a list of parameters")
    names = set()
    lengths = set()
    for param in params:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str) or not PARAM_NAME.match(param["name"]):
            raise Invalid("each parameter must have a name (letters, digits, _)")
        if param["name"] in names:
            raise Invalid("each parameter must have a unique name")
        names.add(param["name"])
        if kind == "zip":
            _keys(param, {"name", "values"}, "parameter")
            values = param.get("values")
            if not isinstance(values, list) or not values or not all(
                    isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
                raise Invalid("the values of a zip parameter must be a list of strings or numbers")
            lengths.add(len(values))
        else:
            _keys(param, {"name", "start", "end", "step", "number"}, "parameter")
            for key in ("start", "end"):
                if not isinstance(param.get(key), (int, float)) or isinstance(param.get(key), bool):
                    raise Invalid(f"a parameter must contain a numeric {key}")
            if ("step" in param) == ("number" in param):
                raise Invalid("a parameter must contain either a step size or a number of steps")
            if "step" in param and not (isinstance(param["step"], (int, float)) and param["step"] > 0):
                raise Invalid("the step of a parameter must be a number > 0")
            if "number" in param:
                _int(param["number"], "the number of steps", lo=1)
    if len(lengths) > 1:
        raise Invalid("all zip parameters must have lists of values of the same length")
