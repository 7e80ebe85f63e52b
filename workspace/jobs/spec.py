"""The job spec model: its data types, states, templates, and the checks a spec passes on its own.

A spec file (``jobs/NAME.yaml``) describes one job or a sweep of jobs. Parsing a
spec's fields is :mod:`workspace.jobs.fields`; finding and reading spec files is
:mod:`workspace.jobs.specfile`. This module is the model only, imported by
everything else in jobs, and imports nothing of them.
"""

from __future__ import annotations

import functools
import re
import shlex
import string
from dataclasses import asdict, dataclass, field

from workspace.errors import UnknownRef, WorkspaceError

STATES = ("PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST", "OUT_OF_MEMORY")
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST", "OUT_OF_MEMORY")
NOTIFY_EVENTS = ("started", "succeeded", "failed", "finished", "cancelled", "lost")

TOP_FIELDS = ("name", "description", "command", "resources", "env", "workdir", "inputs", "outputs",
              "params", "policies", "depends_on", "backend", "notify", "container", "labels", "artifacts")
RESOURCE_FIELDS = ("cpus", "memory", "walltime", "gpus", "nodes", "disk")
CONTAINER_FIELDS = ("image", "runtime")
RUNTIMES = ("docker", "singularity")
POLICY_FIELDS = ("retries", "timeout", "priority", "max_queue", "ignore_failures", "backoff")
NOTIFY_FIELDS = ("on", "command", "url")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class InvalidSpec(WorkspaceError):
    """A job spec that cannot run: the message names the file, the field and the problem."""

    exit_code = 9


class MissingInput(InvalidSpec):
    """An input glob that matches nothing, or a file that cannot be read."""


class SpecNotFound(UnknownRef):
    """No spec file by that name or path."""


class UnknownJob(UnknownRef):
    """No recorded job (or workflow) with that id, or an ambiguous id prefix."""


# Files a backend writes into a job's log_dir (the local backend uses these names)
LOG_FILES = {"stdout": ("stdout", "stdout.log"), "stderr": ("stderr", "stderr.log")}


@dataclass
class Resources:
    """What one job asks for: cpus, memory in MiB, wall time in seconds, gpus, nodes, scratch disk in MiB."""

    cpus: int = 1
    memory_mb: int | None = None
    walltime_s: int | None = None
    gpus: int = 0
    nodes: int = 1
    disk_mb: int | None = None


@dataclass
class Container:
    """The container a job runs in: an image, and the runtime that runs it (None: the backend's default)."""

    image: str
    runtime: str | None = None


@dataclass
class JobPolicies:
    """How a job is run: retries (with backoff), timeout, priority, max time queued."""

    retries: int = 0
    timeout_s: float | None = None
    priority: int = 0
    max_queue_s: float | None = None
    ignore_failures: bool = False  # failed sweep members do not block dependents
    backoff_s: float = 1.0


@dataclass
class Notify:
    """Who is told when a job or workflow ends: a shell command and/or a URL (POSTed JSON)."""

    on: list[str] = field(default_factory=lambda: ["finished"])
    command: str | None = None
    url: str | None = None


@dataclass
class JobSpec:
    """One spec: a command template plus everything needed to expand and run it."""

    name: str
    command: str
    resources: Resources = field(default_factory=Resources)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    params: dict[str, list] | list[dict] = field(default_factory=dict)
    policies: JobPolicies = field(default_factory=JobPolicies)
    depends_on: list[str] = field(default_factory=list)
    backend: str = "local"
    notify: Notify | None = None
    path: str | None = None
    description: str | None = None
    container: Container | None = None
    labels: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON-able form (also what keys are computed from)."""
        return asdict(self)

    @property
    def where(self) -> str:
        """How messages name this spec: its file, or its name for specs built in Python."""
        return self.path or f"spec '{self.name}'"


# -- templates -------------------------------------------------------------------
def template_fields(template: str) -> set[str]:
    """The base names of the ``{field}`` placeholders of a str.format template."""
    names = set()
    for _, fname, _, _ in string.Formatter().parse(template):
        if fname is None:
            continue
        base = re.split(r"[.\[]", fname, maxsplit=1)[0]
        names.add(base)
    return names


RAW = "raw"  # ``{name:raw}``: a command placeholder filled without shell quoting


def render(template: str, params: dict) -> str:
    """Fill a path or env template with a job's parameters, as is (no shell reads these)."""
    return template.format(**params)


class _ShellFormatter(string.Formatter):
    """str.format for ``/bin/sh -c`` lines: each value shell-quoted after its format spec; ``:raw`` not.

    ``changed`` tells whether quoting altered any value, i.e. whether the line
    differs from what plain str.format gives (what ws rendered before quoting).
    """

    def __init__(self) -> None:
        self.changed = False

    def format_field(self, value, format_spec: str) -> str:
        if format_spec == RAW:
            return format(value)
        text = format(value, format_spec)
        quoted = shlex.quote(text)
        if quoted != text:
            self.changed = True
        return quoted


_CONVERSIONS = {None: lambda v: v, "s": str, "r": repr, "a": ascii}


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> tuple | None:
    """A template's (literal, name, conversion, format spec) parts, or None when a field is not a plain
    name with a plain spec (``{a.b}``, ``{a[0]}``, ``{x:{w}}``: those go through string.Formatter)."""
    parts = []
    for literal, fname, spec, conv in string.Formatter().parse(template):
        if fname is not None and (not fname.isidentifier() or "{" in (spec or "") or conv not in _CONVERSIONS):
            return None
        parts.append((literal, fname, _CONVERSIONS[conv] if fname is not None else None, spec or ""))
    return tuple(parts)


def render_command(template: str, params: dict) -> tuple[str, bool]:
    """Fill a command template: values shell-quoted (``shlex.quote``), ``{name:raw}`` as is.

    Returns the line and whether quoting changed it (compared with plain
    str.format), which :func:`workspace.jobs.expand.job_key` needs: a job whose
    line is unchanged keeps the key it had before values were quoted.
    """
    parts = _compiled(template)
    if parts is None:
        formatter = _ShellFormatter()
        return formatter.vformat(template, (), params), formatter.changed
    out, changed = [], False  # the same as _ShellFormatter, without its per-call overhead (big sweeps)
    for literal, fname, convert, spec in parts:
        out.append(literal)
        if fname is None:
            continue
        value = convert(params[fname])
        if spec == RAW:
            out.append(format(value))
            continue
        text = format(value, spec)
        quoted = shlex.quote(text)
        changed = changed or quoted != text
        out.append(quoted)
    return "".join(out), changed


def param_names(params: dict | list) -> set[str]:
    """Every parameter name a spec's ``params`` defines."""
    if isinstance(params, dict):
        return set(params)
    names: set[str] = set()
    for rec in params:
        names.update(rec)
    return names


# -- validation -------------------------------------------------------------------
def folder_config(path: str | None = None) -> dict:
    """The ``.ws/config.toml`` of the workspace holding ``path`` (else the current folder), ``{}`` if none.

    Only for a spec made where no workspace is at hand (``Job(...)`` of the Python
    API); callers holding a Repo pass its (cached) ``repo.config`` instead.
    """
    import os
    import tomllib

    folder = os.path.abspath(os.path.dirname(path) if path else os.getcwd())
    while True:
        config = os.path.join(folder, ".ws", "config.toml")
        if os.path.isfile(config):
            try:
                with open(config, "rb") as f:
                    return tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError):
                return {}
        parent = os.path.dirname(folder)
        if parent == folder:
            return {}
        folder = parent


def unknown_backend_message(name: str, known: list[str], configured: list[str]) -> str:
    """One line naming the unknown backend, the configured ones and the types."""
    hint = f"configured: {', '.join(configured)}" if configured else "none configured"
    return (f"unknown backend '{name}' (known: {', '.join(known)}); {hint} "
            "('ws backend list'; add one with 'ws backend add NAME TYPE')")


def validate(spec: JobSpec, config: dict | None = None) -> JobSpec:
    """Check a spec on its own (name, backend, template fields, params); returns it.

    ``config`` is the workspace's configuration: its ``[backend.NAME]`` tables are
    the configured backends a spec may name besides the bare types (none without it).

    Checks that need the workspace (inputs, depends_on, cycles) are made by
    :func:`workspace.jobs.expand.check_workspace`.
    """
    where = spec.where
    if not _NAME_RE.match(spec.name):
        raise InvalidSpec(f"{where}: field 'name': '{spec.name}' must be letters, digits, '-', '_' or '.'")
    from workspace.jobs.backends import configured, names

    known = names(config or {})
    if spec.backend not in known:
        mine = [b.name for b in configured(config or {})]
        raise InvalidSpec(f"{where}: field 'backend': {unknown_backend_message(spec.backend, known, mine)}")
    if spec.name in spec.depends_on:
        raise InvalidSpec(f"{where}: field 'depends_on': a spec cannot depend on itself ('{spec.name}')")
    if isinstance(spec.params, list):
        _check_records(spec)
    names = param_names(spec.params)
    _check_template(spec.command, names, where, "command", shell=True)
    for i, out in enumerate(spec.outputs):
        _check_template(out, names, where, f"outputs[{i}]")
    for i, inp in enumerate(spec.inputs):
        _check_template(inp, names, where, f"inputs[{i}]")
    for k, v in spec.env.items():
        _check_template(v, names, where, f"env.{k}")
    if spec.workdir:
        _check_template(spec.workdir, names, where, "workdir")
    return spec


def _check_records(spec: JobSpec) -> None:
    keys = [set(r) for r in spec.params]
    if keys and any(k != keys[0] for k in keys):
        raise InvalidSpec(f"{spec.where}: field 'params': every record must name the same parameters "
                          f"({', '.join(sorted(keys[0]))})")


def _check_template(template: str, names: set[str], where: str, fld: str, shell: bool = False) -> None:
    try:
        used = template_fields(template)
    except ValueError as exc:
        raise InvalidSpec(f"{where}: field '{fld}': bad template: {exc} (write '{{{{' for a literal brace)") from None
    _check_raw(template, where, fld, shell)
    for name in sorted(used):
        if name == "" or name.isdigit():
            raise InvalidSpec(f"{where}: field '{fld}': positional placeholder '{{{name}}}' is not allowed; "
                              "name a parameter")
        if name not in names:
            raise InvalidSpec(f"{where}: field '{fld}': unknown template field '{{{name}}}' "
                              f"(parameters: {', '.join(sorted(names)) or 'none'})")


def _check_raw(template: str, where: str, fld: str, shell: bool) -> None:
    """``{name:raw}`` stands alone, and only in ``command`` (the one field a shell reads)."""
    for _, fname, spec, _ in string.Formatter().parse(template):
        if fname is None or RAW not in (spec or ""):
            continue
        if not shell:
            raise InvalidSpec(f"{where}: field '{fld}': '{{{fname}:{spec}}}': ':raw' is for 'command' only "
                              "(this field is not read by a shell, so values are never quoted here)")
        if spec != RAW:
            raise InvalidSpec(f"{where}: field '{fld}': '{{{fname}:{spec}}}': write '{{{fname}:raw}}' alone "
                              "('raw' takes no other format spec)")
