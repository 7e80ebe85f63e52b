"""Ad-hoc runs: ``ws run -- COMMAND ARGS...`` as a spec built in memory, and ``--save`` to ``jobs/NAME.yaml``.

An ad-hoc run is not a second way of running things: :func:`build` turns the
command line and its options into the same mapping a spec file holds, parses
and validates it with :func:`workspace.jobs.fields.from_dict` (the same checks
and messages as a file), and the engine expands and submits the resulting
JobSpec like any other. So its jobs get the same keys, catalog rows, logs,
provenance and output commits; ``--save NAME`` writes that mapping as YAML,
and ``ws run NAME`` then runs exactly what the ad-hoc run would have.
"""

from __future__ import annotations

import os
import re
import shlex
import string
from pathlib import Path

from workspace.errors import InvalidArgument, WorkspaceError
from workspace.jobs.spec import RESOURCE_FIELDS, JobSpec, validate
from workspace.repo import Repo

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class SpecExists(WorkspaceError):
    """``ws run --save NAME`` where ``jobs/NAME.yaml`` already exists (``--force`` replaces it)."""

    exit_code = 8


def command_line(argv: list[str]) -> str:
    """The command template for ``argv``: one argument is a shell line as written (pipes, ``&&``...);
    several are words, each shell-quoted around its ``{param}`` placeholders (filled, quoted, per job)."""
    if not argv:
        raise InvalidArgument("ws run --: give the command to run after '--'")
    if len(argv) == 1:
        return argv[0]
    return " ".join(_word(a) for a in argv)


def _word(arg: str) -> str:
    if arg == "":
        return "''"
    try:
        parts = list(string.Formatter().parse(arg))
    except ValueError as exc:
        raise InvalidArgument(f"ws run --: argument '{arg}': bad template: {exc} (write '{{{{' for a literal brace)"
                              ) from None
    out = []
    for literal, fname, spec, conv in parts:
        if literal:
            out.append(shlex.quote(literal).replace("{", "{{").replace("}", "}}"))
        if fname is not None:
            out.append("{" + fname + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def default_name(argv: list[str]) -> str:
    """A spec name from the command: its program's base name, made of allowed characters ('run' if none)."""
    first = shlex.split(argv[0])[0] if argv and argv[0].strip() else ""
    name = _NAME_CHARS.sub("-", os.path.basename(first)).strip("-.")
    return name[:100] if name and name[0].isalnum() else "run"


def parse_resources(text: str | None) -> dict:
    """``--resources cpus=2,memory=4G,walltime=1h,gpus=1`` as a spec's ``resources`` mapping."""
    from workspace.jobs.sweeps import scalar

    if not text:
        return {}
    out: dict = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise InvalidArgument(f"--resources '{text}': expected KEY=VALUE,... (e.g. cpus=2,memory=4G)")
        if key not in RESOURCE_FIELDS:
            raise InvalidArgument(f"--resources: unknown resource '{key}' (known: {', '.join(RESOURCE_FIELDS)})")
        out[key] = scalar(value.strip())
    return out


def build(argv: list[str], *, name: str | None = None, inputs: list[str] | None = None,
          outputs: list[str] | None = None, resources: str | None = None, backend: str | None = None,
          params: list[str] | None = None, param_file: str | None = None,
          config: dict | None = None) -> tuple[dict, JobSpec]:
    """The spec of an ad-hoc run: ``(mapping as a spec file holds it, validated JobSpec)``; ``config``, the
    workspace's, says which configured backends ``backend`` may name.

    ``params`` (``--param KEY=V1,V2``) become the spec's parameter lists (the
    jobs are their product); with ``param_file`` each of its records is run
    with each combination of the ``params`` values (a ``params`` name the
    records have replaces their value).
    """
    from workspace.jobs.expand import parse_overrides
    from workspace.jobs.fields import from_dict
    from workspace.jobs.sweeps import read_param_file

    data: dict = {"name": name or default_name(argv), "command": command_line(argv)}
    if inputs:
        data["inputs"] = list(inputs)
    if outputs:
        data["outputs"] = list(outputs)
    res = parse_resources(resources)
    if res:
        data["resources"] = res
    if backend:
        data["backend"] = backend
    axes = parse_overrides(params or [])
    if param_file is not None:
        records = read_param_file(param_file)
        data["params"] = [{**rec} for rec in records]
        if axes:  # each record with each given value
            data["params"] = [{**rec, **dict(zip(axes, combo))} for rec in records
                              for combo in _product(list(axes.values()))]
    elif axes:
        data["params"] = axes
    spec = validate(from_dict(data, "ws run --", default_name=data["name"]), config)
    spec.path = None  # no file: provenance and rows name no spec file
    return data, spec


def _product(lists: list[list]) -> list[tuple]:
    import itertools

    return list(itertools.product(*lists))


def save(repo: Repo, name: str, data: dict, force: bool = False) -> str:
    """Write ``data`` as ``jobs/NAME.yaml`` (atomically; SpecExists unless ``force``); returns the relative path.

    The text is parsed back as a spec file is before it replaces anything, so
    what is saved is a valid spec that ``ws run NAME`` runs.
    """
    import yaml

    from workspace.jobs.fields import from_dict
    from workspace.jobs.specfile import SPEC_DIR
    from workspace.objects.durable import write_atomic

    data = {**data, "name": name}
    folder = Path(repo.root) / SPEC_DIR
    path = folder / f"{name}.yaml"
    rel = f"{SPEC_DIR}/{name}.yaml"
    if not force and (path.exists() or (folder / f"{name}.yml").exists()):
        raise SpecExists(f"{rel} already exists; use --force to replace it (or choose another name)")
    text = ("# written by 'ws run --save'; run it with: ws run " + name + "\n"
            + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))
    validate(from_dict(yaml.safe_load(text), rel, default_name=name), repo.config)  # what ws run NAME will read
    write_atomic(path, text.encode("utf-8"))
    return rel
