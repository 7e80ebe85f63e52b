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
from typing import Any

from workspace.errors import UnknownRef, WorkspaceError

SPEC_DIR = "jobs"
STATES = ("PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST")
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "LOST")
NOTIFY_EVENTS = ("started", "succeeded", "failed", "finished", "cancelled", "lost")
# used until the compute registry (sync.compute.registry) exists
_FALLBACK_BACKENDS = ("local", "slurm", "batch", "prominence")

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


# -- units ----------------------------------------------------------------------
_MEM_UNITS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_MEM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_DUR_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_memory(value: Any) -> int:
    """Memory as MiB: ``4GB`` -> 4096, ``512MB`` -> 512, ``1.5G`` -> 1536; a bare number is MiB.

    Units are binary (like Slurm's ``--mem``): 1 GB here is 1024 MiB.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a memory size: {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"memory must be positive, got {value!r}")
        return int(value)
    m = _MEM_RE.match(str(value))
    if not m:
        raise ValueError(f"not a memory size: {value!r} (use e.g. 512MB, 4GB, 1.5G)")
    mb = float(m.group(1)) * _MEM_UNITS[m.group(2).upper()]
    if mb <= 0:
        raise ValueError(f"memory must be positive, got {value!r}")
    return max(1, int(round(mb)))


def parse_duration(value: Any) -> float:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d``, ``HH:MM:SS``, ``MM:SS`` or a number."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if ":" in text:
        parts = text.split(":")
        if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
            secs = 0.0
            for p in parts:
                secs = secs * 60 + int(p)
            return secs
        raise ValueError(f"not a duration: {value!r} (use HH:MM:SS)")
    m = _DUR_RE.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 30m, 2h, 1h30m, HH:MM:SS)")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


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
    spec = from_dict(data, shown, default_name=p.stem)
    return validate(spec)


def from_dict(data: Any, where: str = "<spec>", default_name: str | None = None) -> JobSpec:
    """Build a :class:`JobSpec` from parsed YAML, refusing unknown fields and bad values."""
    if not isinstance(data, dict):
        raise InvalidSpec(f"{where}: a spec must be a mapping of fields, got {type(data).__name__}")
    unknown = [k for k in data if k not in TOP_FIELDS]
    if unknown:
        raise InvalidSpec(f"{where}: field '{unknown[0]}': unknown field (known: {', '.join(TOP_FIELDS)})")
    name = data.get("name", default_name)
    if "command" not in data:
        raise InvalidSpec(f"{where}: field 'command': missing (the command line to run)")
    spec = JobSpec(
        name=_str(name, where, "name"),
        command=_str(data["command"], where, "command"),
        resources=_resources(data.get("resources"), where),
        env=_env(data.get("env"), where),
        workdir=_opt_str(data.get("workdir"), where, "workdir"),
        inputs=_str_list(data.get("inputs"), where, "inputs"),
        outputs=_str_list(data.get("outputs"), where, "outputs"),
        params=_params(data.get("params"), where),
        policies=_policies(data.get("policies"), where),
        depends_on=_str_list(data.get("depends_on"), where, "depends_on"),
        backend=_str(data.get("backend", "local"), where, "backend"),
        notify=_notify(data.get("notify"), where),
        path=where if where != "<spec>" else None,
        description=_opt_str(data.get("description"), where, "description"),
    )
    return spec


def _str(value: Any, where: str, name: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise InvalidSpec(f"{where}: field '{name}': expected a string, got {_kind(value)}")
    text = str(value)
    if not text.strip():
        raise InvalidSpec(f"{where}: field '{name}': must not be empty")
    return text


def _opt_str(value: Any, where: str, name: str) -> str | None:
    return None if value is None else _str(value, where, name)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _str_list(value: Any, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidSpec(f"{where}: field '{name}': expected a list of strings, got {_kind(value)}")
    return [_str(v, where, f"{name}[{i}]") for i, v in enumerate(value)]


def _mapping(value: Any, where: str, name: str, allowed: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidSpec(f"{where}: field '{name}': expected a mapping, got {_kind(value)}")
    for k in value:
        if k not in allowed:
            raise InvalidSpec(f"{where}: field '{name}.{k}': unknown field (known: {', '.join(allowed)})")
    return value


def _convert(fn, value: Any, where: str, name: str):
    try:
        return fn(value)
    except (ValueError, TypeError) as exc:
        raise InvalidSpec(f"{where}: field '{name}': {exc}") from None


def _int(value: Any, where: str, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSpec(f"{where}: field '{name}': expected a whole number >= {minimum}, got {value!r}")
    return value


def _resources(value: Any, where: str) -> Resources:
    d = _mapping(value, where, "resources", RESOURCE_FIELDS)
    r = Resources()
    if "cpus" in d:
        r.cpus = _int(d["cpus"], where, "resources.cpus", 1)
    if "gpus" in d:
        r.gpus = _int(d["gpus"], where, "resources.gpus", 0)
    if d.get("memory") is not None:
        r.memory_mb = _convert(parse_memory, d["memory"], where, "resources.memory")
    if d.get("walltime") is not None:
        r.walltime_s = int(_convert(parse_duration, d["walltime"], where, "resources.walltime"))
    return r


def _policies(value: Any, where: str) -> JobPolicies:
    d = _mapping(value, where, "policies", POLICY_FIELDS)
    p = JobPolicies()
    if "retries" in d:
        p.retries = _int(d["retries"], where, "policies.retries", 0)
    if "priority" in d:
        p.priority = _int(d["priority"], where, "policies.priority", -(10**9))
    if d.get("timeout") is not None:
        p.timeout_s = _convert(parse_duration, d["timeout"], where, "policies.timeout")
    if d.get("max_queue") is not None:
        p.max_queue_s = _convert(parse_duration, d["max_queue"], where, "policies.max_queue")
    if d.get("backoff") is not None:
        p.backoff_s = _convert(parse_duration, d["backoff"], where, "policies.backoff")
    if "ignore_failures" in d:
        if not isinstance(d["ignore_failures"], bool):
            raise InvalidSpec(f"{where}: field 'policies.ignore_failures': expected true or false")
        p.ignore_failures = d["ignore_failures"]
    return p


def _env(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidSpec(f"{where}: field 'env': expected a mapping of NAME: value, got {_kind(value)}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            raise InvalidSpec(f"{where}: field 'env.{k}': not a valid environment variable name")
        if isinstance(v, (dict, list)) or v is None:
            raise InvalidSpec(f"{where}: field 'env.{k}': expected a string, got {_kind(v)}")
        out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _scalar_list(values: Any, where: str, name: str) -> list:
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise InvalidSpec(f"{where}: field '{name}': must list at least one value")
    for v in values:
        if isinstance(v, (dict, list)) or v is None:
            raise InvalidSpec(f"{where}: field '{name}': values must be strings or numbers, got {_kind(v)}")
    return values


def _params(value: Any, where: str) -> dict[str, list] | list[dict]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): _scalar_list(v, where, f"params.{k}") for k, v in value.items()}
    if isinstance(value, list):
        recs = []
        for i, rec in enumerate(value):
            if not isinstance(rec, dict) or not rec:
                raise InvalidSpec(f"{where}: field 'params[{i}]': expected a mapping of name: value")
            for k, v in rec.items():
                _scalar_list([v], where, f"params[{i}].{k}")
            recs.append({str(k): v for k, v in rec.items()})
        return recs
    raise InvalidSpec(f"{where}: field 'params': expected a mapping of lists or a list of records, got {_kind(value)}")


def _notify(value: Any, where: str) -> Notify | None:
    if value is None:
        return None
    if isinstance(value, dict) and True in value:  # YAML 1.1 reads a bare `on:` key as true
        value = {("on" if k is True else k): v for k, v in value.items()}
    d = _mapping(value, where, "notify", NOTIFY_FIELDS)
    on = _str_list(d.get("on", ["finished"]), where, "notify.on")
    for ev in on:
        if ev not in NOTIFY_EVENTS:
            raise InvalidSpec(f"{where}: field 'notify.on': unknown event '{ev}' (known: {', '.join(NOTIFY_EVENTS)})")
    n = Notify(on=on, command=_opt_str(d.get("command"), where, "notify.command"),
               url=_opt_str(d.get("url"), where, "notify.url"))
    if not n.command and not n.url:
        raise InvalidSpec(f"{where}: field 'notify': needs a 'command' or a 'url'")
    if n.url and not re.match(r"^https?://", n.url):
        raise InvalidSpec(f"{where}: field 'notify.url': must start with http:// or https://")
    return n


# -- validation -------------------------------------------------------------------
def backend_names() -> list[str]:
    """Backends a spec may name: the compute registry's, or the built-in list before it exists."""
    try:
        from sync.compute import registry
    except ImportError:
        return list(_FALLBACK_BACKENDS)
    try:
        names = list(registry.names())
    except Exception:  # a half-built registry must not make every spec invalid
        return list(_FALLBACK_BACKENDS)
    return names or list(_FALLBACK_BACKENDS)


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
