"""Job specs: the data types, loading YAML files and validating them.

A spec file (``jobs/NAME.yaml``) describes one job or a sweep of jobs. This
module is imported by ``sync`` (the compute backends) too, so it stays small and
imports PyYAML only inside :func:`load_spec`.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workspace.errors import UnknownRef, WorkspaceError

SPEC_DIR = "jobs"
STATES = ("PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST", "OUT_OF_MEMORY")
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST", "OUT_OF_MEMORY")
NOTIFY_EVENTS = ("started", "succeeded", "failed", "finished", "cancelled", "lost")

TOP_FIELDS = ("name", "description", "command", "resources", "env", "workdir", "inputs", "outputs",
              "params", "policies", "depends_on", "backend", "notify")
RESOURCE_FIELDS = ("cpus", "memory", "walltime", "gpus")
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
    """What one job asks for: cpus, memory in MiB, wall time in seconds, gpus."""

    cpus: int = 1
    memory_mb: int | None = None
    walltime_s: int | None = None
    gpus: int = 0


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


def render(template: str, params: dict) -> str:
    """Fill a template with a job's parameters."""
    return template.format(**params)


def param_names(params: dict | list) -> set[str]:
    """Every parameter name a spec's ``params`` defines."""
    if isinstance(params, dict):
        return set(params)
    names: set[str] = set()
    for rec in params:
        names.update(rec)
    return names


# -- loading ----------------------------------------------------------------------
def load_spec(path: str | os.PathLike, display: str | None = None) -> JobSpec:
    """Read and validate one YAML spec file (``display``: how messages name it)."""
    import yaml

    p = Path(path)
    shown = display or str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecNotFound(f"{shown}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpec(f"{shown}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = ""
        if "{" in text and "[" in text:  # `outputs: [out/{sample}/]` is a YAML flow mapping, not a template
            hint = "; templates inside [...] or {...} must be quoted: [\"out/{sample}/\"]"
        raise InvalidSpec(f"{shown}{where}: not valid YAML: {problem}{hint}") from None
    from workspace.jobs.fields import from_dict

    spec = from_dict(data, shown, default_name=p.stem)
    return validate(spec)


# -- validation -------------------------------------------------------------------
def backend_names() -> list[str]:
    """Backends a spec may name: the compute registry's."""
    from sync.compute import registry

    return registry.names()


def validate(spec: JobSpec, backends: list[str] | None = None) -> JobSpec:
    """Check a spec on its own (name, backend, template fields, params); returns it.

    Checks that need the workspace (inputs, depends_on, cycles) are made by
    :func:`workspace.jobs.expand.check_workspace`.
    """
    where = spec.where
    if not _NAME_RE.match(spec.name):
        raise InvalidSpec(f"{where}: field 'name': '{spec.name}' must be letters, digits, '-', '_' or '.'")
    known = backends if backends is not None else backend_names()
    if spec.backend not in known:
        raise InvalidSpec(f"{where}: field 'backend': unknown backend '{spec.backend}' (known: {', '.join(known)})")
    if spec.name in spec.depends_on:
        raise InvalidSpec(f"{where}: field 'depends_on': a spec cannot depend on itself ('{spec.name}')")
    if isinstance(spec.params, list):
        _check_records(spec)
    names = param_names(spec.params)
    _check_template(spec.command, names, where, "command")
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


def _check_template(template: str, names: set[str], where: str, fld: str) -> None:
    try:
        used = template_fields(template)
    except ValueError as exc:
        raise InvalidSpec(f"{where}: field '{fld}': bad template: {exc} (write '{{{{' for a literal brace)") from None
    for name in sorted(used):
        if name == "" or name.isdigit():
            raise InvalidSpec(f"{where}: field '{fld}': positional placeholder '{{{name}}}' is not allowed; "
                              "name a parameter")
        if name not in names:
            raise InvalidSpec(f"{where}: field '{fld}': unknown template field '{{{name}}}' "
                              f"(parameters: {', '.join(sorted(names)) or 'none'})")


# -- finding specs -------------------------------------------------------------------
def spec_files(root: str | os.PathLike) -> list[Path]:
    """Every ``jobs/*.yaml`` and ``jobs/*.yml`` of a workspace, sorted."""
    folder = Path(root) / SPEC_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def find_spec(ws, name_or_path: str, cwd: str | os.PathLike | None = None) -> JobSpec:
    """The spec a user names: a path to a YAML file, or a spec name found in ``jobs/``."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    candidate = Path(name_or_path)
    if not candidate.is_absolute():
        candidate = base / candidate
    if candidate.is_file():
        return load_spec(candidate, _display_path(ws, candidate))
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        raise SpecNotFound(f"no spec file '{name_or_path}'")
    root = Path(ws.root)
    for ext in (".yaml", ".yml"):  # the common case: the file is named after the spec
        p = root / SPEC_DIR / f"{name_or_path}{ext}"
        if p.is_file():
            spec = load_spec(p, _display_path(ws, p))
            if spec.name == name_or_path:
                return spec
    for p in spec_files(root):
        spec = load_spec(p, _display_path(ws, p))
        if spec.name == name_or_path:
            return spec
    raise SpecNotFound(f"no spec named '{name_or_path}' in {SPEC_DIR}/ (looked for {SPEC_DIR}/{name_or_path}.yaml)")


def _display_path(ws, p: Path) -> str:
    """Workspace-relative path when the file is inside the workspace (nicer messages, stable keys)."""
    try:
        return str(Path(os.path.abspath(p)).relative_to(ws.root))
    except ValueError:
        return str(p)


def __getattr__(name: str):
    """``from_dict``, ``parse_memory`` and ``parse_duration`` live in :mod:`workspace.jobs.fields`
    (which imports this module), so they are looked up there on first use."""
    if name in ("from_dict", "parse_memory", "parse_duration"):
        from workspace.jobs import fields

        return getattr(fields, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
