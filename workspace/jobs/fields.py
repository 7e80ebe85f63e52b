"""Reading a spec's fields from parsed YAML: units (memory, durations) and one checker per field.

Every error names the file, the field (``resources.memory``, ``params.k``)
and the problem. The data types live in :mod:`workspace.jobs.spec`.
"""

from __future__ import annotations

import re
from typing import Any

from sync.urls import has_userinfo, redact
from workspace.jobs.spec import (CONTAINER_FIELDS, NOTIFY_EVENTS, NOTIFY_FIELDS, POLICY_FIELDS, RESOURCE_FIELDS,
                                 RUNTIMES, TOP_FIELDS, Container, InvalidSpec, JobPolicies, JobSpec, Notify,
                                 Resources)

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
        container=_container(data.get("container"), where),
        labels=_labels(data.get("labels"), where),
        artifacts=_artifacts(data.get("artifacts"), where),
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
    if "nodes" in d:
        r.nodes = _int(d["nodes"], where, "resources.nodes", 1)
    if d.get("disk") is not None:
        r.disk_mb = _convert(parse_memory, d["disk"], where, "resources.disk")
    return r


def _container(value: Any, where: str) -> Container | None:
    """``container: {image: ..., runtime: docker|singularity}`` (a bare string is the image)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"image": value}
    d = _mapping(value, where, "container", CONTAINER_FIELDS)
    if "image" not in d:
        raise InvalidSpec(f"{where}: field 'container.image': missing (e.g. python:3.12-slim)")
    image = _str(d["image"], where, "container.image")
    if any(c.isspace() for c in image):
        raise InvalidSpec(f"{where}: field 'container.image': '{image}' must not contain spaces")
    runtime = _opt_str(d.get("runtime"), where, "container.runtime")
    if runtime is not None and runtime not in RUNTIMES:
        raise InvalidSpec(f"{where}: field 'container.runtime': unknown runtime '{runtime}' "
                          f"(known: {', '.join(RUNTIMES)})")
    return Container(image=image, runtime=runtime)


LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _labels(value: Any, where: str) -> dict[str, str]:
    """``labels: {key: value}``: keys of letters, digits, ``_ . -``; values plain strings (numbers allowed)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidSpec(f"{where}: field 'labels': expected a mapping of key: value, got {_kind(value)}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not LABEL_KEY.match(k):
            raise InvalidSpec(f"{where}: field 'labels.{k}': keys are letters, digits, '_', '.' or '-' "
                              "(at most 63, starting with a letter or digit)")
        if isinstance(v, (dict, list)) or v is None:
            raise InvalidSpec(f"{where}: field 'labels.{k}': expected a string, got {_kind(v)}")
        text = str(v).lower() if isinstance(v, bool) else str(v)
        if not text or len(text) > 256 or any(c in text for c in "\n\r\t"):
            raise InvalidSpec(f"{where}: field 'labels.{k}': values are 1 to 256 characters on one line")
        out[k] = text
    return out


_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def _artifacts(value: Any, where: str) -> list[str]:
    """``artifacts: [URL, ...]``: fsspec URLs (https://, s3://, ...) without credentials in them."""
    urls = _str_list(value, where, "artifacts")
    for i, url in enumerate(urls):
        if not _URL_RE.match(url):
            raise InvalidSpec(f"{where}: field 'artifacts[{i}]': '{url}' is not a URL (e.g. https://host/file.tgz)")
        if has_userinfo(url):
            raise InvalidSpec(f"{where}: field 'artifacts[{i}]': must not hold credentials ({redact(url)}); "
                              "use a presigned URL")
    return urls


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
    if n.url and has_userinfo(n.url):  # a spec is committed, its URL recorded under .ws/ and in messages
        raise InvalidSpec(f"{where}: field 'notify.url': must not hold credentials ({redact(n.url)}); "
                          "use notify.command with the secret from the environment (curl -u \"$HOOK_AUTH\" ...)")
    return n
