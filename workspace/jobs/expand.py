"""Expanding specs into jobs: the spec DAG, input ids and job keys, one job at a time.

The parameter sets come from :mod:`workspace.jobs.sweeps` (lazily, under the
cap ``[jobs] max_jobs_per_run``). Each expanded job gets a key: SHA-256 of
the canonical JSON of the spec's content (minus params), this job's params,
the content ids of its input files, and the keys of the spec's upstream jobs,
so that changing one input re-runs only the jobs that read it (directly or
through a dependency).

An input file that an upstream spec of the run writes (it lies at or under one
of that spec's rendered outputs) is identified in the key by the upstream
keys alone, never by the bytes found on disk when the run is expanded: those
are the previous run's output (or nothing yet), so hashing them made a
dependent's key change between the run that rebuilt its upstream and the
next one, which then ran it once more. The upstream key names the computation
that makes the file, so the key is the same before and after it ran and runs
settle: the second run with nothing changed runs nothing (``input_ids`` still
lists every file read, for callers that want to see them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from workspace import pathspecs
from workspace.errors import PathOutsideWorkspace
from workspace.layout import WS_DIR
from workspace.jobs.spec import (InvalidSpec, JobPolicies, JobSpec, MissingInput, Resources, SpecNotFound, render,
                                 render_command)
from workspace.jobs.specfile import find_spec
from workspace.jobs.sweeps import check_job_count, sweep
from workspace.repo import Repo
from workspace.tree.scan import working_ids

# spec fields that change what a job computes; policies, backend, notify do not
KEY_FIELDS = ("name", "command", "env", "workdir", "inputs", "outputs")
# hashed only when set, so that the keys of specs without them stay what they were
OPTIONAL_KEY_FIELDS = ("container", "labels", "artifacts")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class ExpandedJob:
    """One concrete job of a sweep, ready to submit."""

    spec_name: str
    key: str
    params: dict
    command: str
    outputs: list[str]
    inputs: list[str]
    input_ids: dict[str, str]
    resources: Resources
    policies: JobPolicies
    env: dict[str, str]
    workdir: str | None
    backend: str
    depends_on: list[str] = field(default_factory=list)  # spec names
    spec_path: str | None = None
    notify: object | None = None
    spec: JobSpec | None = field(default=None, repr=False)
    depended_on: bool = True  # a spec of the run depends on this one's: its job ids are kept for theirs
    key_input_ids: dict[str, str] | None = field(default=None, repr=False)  # the input ids the key hashes
    container: dict | None = None  # {"image", "runtime"}
    labels: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able form for ``ws run --dry-run --json``."""
        from dataclasses import asdict

        d = asdict(self)
        d.pop("spec", None)
        return d


# -- the spec DAG ------------------------------------------------------------------
def collect_specs(repo: Repo, specs: list[JobSpec]) -> list[JobSpec]:
    """The given specs plus every spec they depend on (found by name), in dependency order.

    Raises InvalidSpec naming the cycle when depends_on loops, and naming the
    spec and field when a dependency does not exist.
    """
    by_name: dict[str, JobSpec] = {s.name: s for s in specs}
    todo = list(specs)
    while todo:
        spec = todo.pop()
        for dep in spec.depends_on:
            if dep in by_name:
                continue
            try:
                by_name[dep] = find_spec(repo, dep, cwd=repo.root)
            except SpecNotFound:
                raise InvalidSpec(f"{spec.where}: field 'depends_on': no spec named '{dep}' in jobs/") from None
            todo.append(by_name[dep])
    return [by_name[n] for n in topo_order(by_name)]


def topo_order(by_name: dict[str, JobSpec]) -> list[str]:
    """Spec names with dependencies first; a cycle raises InvalidSpec naming it (a -> b -> a)."""
    order: list[str] = []
    done: set[str] = set()
    for start in sorted(by_name):
        _visit(start, by_name, done, [], order)
    return order


def _visit(name: str, by_name: dict[str, JobSpec], done: set[str], stack: list[str], order: list[str]) -> None:
    if name in done:
        return
    if name in stack:
        cycle = stack[stack.index(name):] + [name]
        where = by_name[name].where
        raise InvalidSpec(f"{where}: field 'depends_on': cycle {' -> '.join(cycle)}")
    stack.append(name)
    for dep in by_name[name].depends_on:
        _visit(dep, by_name, done, stack, order)
    stack.pop()
    done.add(name)
    order.append(name)


def parse_overrides(pairs: list[str]) -> dict:
    """``--param`` strings as ``{KEY: [values]}``: ``KEY=VALUE`` or ``KEY=V1,V2,...`` (CSV quoting for commas).

    Values read like YAML scalars (``1`` -> int). A key given twice is an error.
    """
    from workspace.errors import InvalidArgument
    from workspace.jobs.sweeps import parse_param_values

    out: dict = {}
    for pair in pairs:
        key, values = parse_param_values(pair)
        if key in out:
            raise InvalidArgument(f"--param {key}: given twice; list its values once: {key}=V1,V2,...")
        out[key] = values
    return out


# -- inputs ----------------------------------------------------------------------------
def _plain_relative(pattern: str) -> str | None:
    """What ``Layout.rel(pattern, cwd=root)`` gives for a relative path that stays inside and off ``.ws/``,
    without pathlib (a sweep checks every job's paths); None for anything else (the full check decides)."""
    if not pattern or os.path.isabs(pattern):
        return None
    norm = os.path.normpath(pattern)
    if norm == "." or norm == ".." or norm.startswith("../") or norm == WS_DIR or norm.startswith(WS_DIR + "/"):
        return None
    try:
        norm.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return norm


def _check_inside(repo: Repo, pattern: str, where: str, fld: str) -> str:
    """The pattern as a workspace-relative path; escapes raise PathOutsideWorkspace (exit 5)."""
    fast = _plain_relative(pattern)
    if fast is not None:
        return fast
    try:
        rel = repo.layout.rel(pattern, cwd=repo.root)
    except PathOutsideWorkspace as exc:
        raise PathOutsideWorkspace(f"{where}: field '{fld}': {exc}") from None
    if not rel:
        raise InvalidSpec(f"{where}: field '{fld}': '{pattern}' names the whole workspace; name files or folders")
    return rel


def _check_workdir(repo: Repo, workdir: str, spec: JobSpec) -> None:
    """A job's workdir must be a folder inside the workspace (the root itself is fine)."""
    try:
        repo.layout.rel(workdir, cwd=repo.root)
    except PathOutsideWorkspace as exc:
        raise PathOutsideWorkspace(f"{spec.where}: field 'workdir': {exc}") from None


def _static_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard ('' when it starts with one)."""
    return pathspecs.static_prefix(pattern) if _GLOB_CHARS.search(pattern) else pattern


def output_prefix(output: str) -> str:
    """The folder part of a declared output before any wildcard or template field (what inputs compare with)."""
    return _static_prefix(re.sub(r"\{[^}]*\}", "*", output)).rstrip("/")


def _produced_upstream(pattern: str, upstream_prefixes: set[str]) -> bool:
    """Whether an upstream spec's declared outputs (their :func:`output_prefix`) may create files this glob reads."""
    in_prefix = _static_prefix(pattern).rstrip("/")
    for out_prefix in upstream_prefixes:
        if not out_prefix or not in_prefix or out_prefix.startswith(in_prefix) or in_prefix.startswith(out_prefix):
            return True
    return False


def resolve_inputs(repo: Repo, spec: JobSpec, patterns: list[str], upstream_prefixes: set[str],
                   cache: dict | None = None) -> dict[str, str]:
    """Input path -> content id for a job's (rendered) input globs, read through the stat cache.

    A glob matching nothing is an error unless an upstream spec will produce it;
    unreadable files are errors; patterns escaping the workspace exit 5.
    """
    rels = [_check_inside(repo, p, spec.where, f"inputs[{i}]") for i, p in enumerate(patterns)]
    if not rels:
        return {}
    prefixes = sorted({_static_prefix(r) for r in rels})
    cache_key = tuple(prefixes)
    if cache is not None and cache_key in cache:
        ids = cache[cache_key]
    else:
        ids = _working_ids(repo, spec, prefixes)
        if cache is not None:
            cache[cache_key] = ids
    out: dict[str, str] = {}
    for i, rel in enumerate(rels):
        matcher = pathspecs.compile([rel])  # git's wildmatch, as ws ls and ws status (docs/guide.md)
        hits = {p: fid for p, fid in ids.items() if matcher.matches(p)}
        if not hits and not _produced_upstream(rel, upstream_prefixes):
            raise MissingInput(f"{spec.where}: field 'inputs[{i}]': '{patterns[i]}' matches no file in the workspace")
        out.update(hits)
    return dict(sorted(out.items()))


def _working_ids(repo: Repo, spec: JobSpec, prefixes: list[str]) -> dict[str, str]:
    try:
        ids, _ = working_ids(repo, under=prefixes)
    except PermissionError as exc:
        name = os.path.relpath(exc.filename, repo.root) if exc.filename else "?"
        raise MissingInput(f"{spec.where}: field 'inputs': cannot read '{name}': permission denied") from None
    return ids


# -- keys and expansion ----------------------------------------------------------------------
def spec_fingerprint(spec: JobSpec) -> dict:
    """The part of a spec that decides what its jobs compute (what keys hash)."""
    # not spec.to_dict(): asdict deep-copies params, which made a sweep of n jobs cost O(n^2)
    fp = {k: getattr(spec, k) for k in KEY_FIELDS}
    for k in OPTIONAL_KEY_FIELDS:
        value = getattr(spec, k, None)
        if value:
            fp[k] = {"image": value.image, "runtime": value.runtime} if k == "container" else value
    r = spec.resources
    if r.nodes != 1 or r.disk_mb:
        fp["resources"] = {"nodes": r.nodes, "disk_mb": r.disk_mb}
    return fp


def job_key(spec: JobSpec, params: dict, input_ids: dict[str, str], upstream_keys: list[str],
            quoted_command: str | None = None) -> str:
    """SHA-256 of the canonical JSON of spec content, params, input ids and upstream keys.

    ``quoted_command``: the job's command line when shell quoting made it
    differ from plain str.format (what ws ran before it quoted values). Only
    then is it hashed too, so every other job keeps the key it had and stays
    SKIPPED on the next run, while a job whose line changed runs again.
    """
    return _key(_canonical(spec_fingerprint(spec)), _canonical(sorted(upstream_keys)), params, input_ids,
                quoted_command)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _key(spec_json: str, upstream_json: str, params: dict, input_ids: dict[str, str],
         quoted_command: str | None) -> str:
    """:func:`job_key` from the parts a sweep shares already in canonical JSON (made once per spec).

    The text is exactly ``json.dumps`` of the whole document with sorted keys
    (inputs, params, quoted_command, spec, upstream), so keys do not depend on
    which of the two functions made them.
    """
    text = ('{"inputs":' + _canonical(input_ids) + ',"params":' + _canonical(params)
            + ("" if quoted_command is None else ',"quoted_command":' + _canonical(quoted_command))
            + ',"spec":' + spec_json + ',"upstream":' + upstream_json + "}")
    return hashlib.sha256(text.encode()).hexdigest()


def _render(template: str, params: dict, spec: JobSpec, fld: str, shell: bool = False):
    """A filled template; for the command (``shell``) the line and whether quoting changed it."""
    try:
        return render_command(template, params) if shell else render(template, params)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise InvalidSpec(f"{spec.where}: field '{fld}': cannot fill template: {exc}") from None


class Produced:
    """The paths upstream jobs of a run write (their rendered outputs): exact paths and folders, and globs."""

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.globs: set[str] = set()

    def add(self, output: str) -> None:
        norm = os.path.normpath(output.rstrip("/")) if output.strip("/") else ""
        if not norm or norm == ".":
            return
        (self.globs if _GLOB_CHARS.search(norm) else self.exact).add(norm)

    def update(self, other: "Produced") -> None:
        self.exact |= other.exact
        self.globs |= other.globs

    def __contains__(self, path: str) -> bool:
        """Whether an upstream job writes ``path`` (the path itself, or a folder above it)."""
        if self.exact:
            probe = path
            while probe:
                if probe in self.exact:
                    return True
                probe = probe.rpartition("/")[0]
        return any(_matches(path, g) for g in self.globs)


def key_inputs(input_ids: dict[str, str], produced: Produced | None) -> dict[str, str]:
    """The input ids a job key hashes: those of files no upstream job of the run writes."""
    if not produced or not (produced.exact or produced.globs):
        return input_ids
    return {p: fid for p, fid in input_ids.items() if p not in produced}


def expand_spec(repo: Repo, spec: JobSpec, overrides: dict, upstream_keys: list[str], upstream_prefixes: set[str],
                cache: dict | None = None, produced: Produced | None = None) -> Iterator[ExpandedJob]:
    """The jobs of one spec (one per parameter set), one at a time.

    ``produced``: what the spec's upstream jobs write; those input files are
    left out of the key (the upstream keys stand for them).
    """
    spec_json, upstream_json = _canonical(spec_fingerprint(spec)), _canonical(sorted(upstream_keys))
    container = {"image": spec.container.image, "runtime": spec.container.runtime} if spec.container else None
    for params in sweep(spec, overrides):
        inputs = [_render(p, params, spec, f"inputs[{i}]") for i, p in enumerate(spec.inputs)]
        outputs = [_render(p, params, spec, f"outputs[{i}]") for i, p in enumerate(spec.outputs)]
        for i, out in enumerate(outputs):
            _check_inside(repo, out, spec.where, f"outputs[{i}]")
        workdir = _render(spec.workdir, params, spec, "workdir") if spec.workdir else None
        if workdir:
            _check_workdir(repo, workdir, spec)
        input_ids = resolve_inputs(repo, spec, inputs, upstream_prefixes, cache)
        command, quoted = _render(spec.command, params, spec, "command", shell=True)
        hashed = key_inputs(input_ids, produced)
        yield ExpandedJob(
            spec_name=spec.name,
            key=_key(spec_json, upstream_json, params, hashed, command if quoted else None),
            params=params,
            command=command,
            outputs=outputs,
            inputs=inputs,
            input_ids=input_ids,
            resources=spec.resources,
            policies=spec.policies,
            env={k: _render(v, params, spec, f"env.{k}") for k, v in spec.env.items()},
            workdir=workdir,
            backend=spec.backend,
            depends_on=list(spec.depends_on),
            spec_path=spec.path,
            notify=spec.notify,
            spec=spec,
            key_input_ids=hashed,
            container=container,
            labels=spec.labels,
            artifacts=spec.artifacts,
        )


def iter_expand(repo: Repo, specs: list[JobSpec], overrides: dict | None = None,
                backend: str | None = None) -> Iterator[ExpandedJob]:
    """Every job of the given specs and of the specs they depend on, dependencies first, one at a time.

    Everything that can be checked without building jobs is checked before
    this returns (the DAG, ``--param`` names, resources, and the cap
    ``[jobs] max_jobs_per_run``, from the sizes of the parameter lists); the
    per-job checks (templates, paths, inputs) happen as the iterator is
    consumed. ``overrides`` (from ``--param``) set a parameter in every spec
    that declares it; naming a parameter no spec declares is an error.
    ``backend`` replaces each spec's backend.

    Memory does not grow with the size of a sweep: only the keys and output
    folders of specs that others depend on are kept (their dependents' keys
    need them).
    """
    from workspace.errors import InvalidArgument
    from workspace.jobs.spec import param_names, validate

    ordered = collect_specs(repo, list(specs))
    overrides = dict(overrides or {})
    declared = set().union(*(param_names(s.params) for s in ordered)) if ordered else set()
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise InvalidArgument(f"--param {unknown[0]}: no spec declares a parameter '{unknown[0]}'")
    if backend:  # copies: the caller's specs (a Python Job's) keep their own backend
        ordered = [validate(replace(s, backend=backend), repo.config) for s in ordered]
    for spec in ordered:
        check_backend(repo, spec)
    check_job_count(repo.config, ordered, overrides)
    return _expand_ordered(repo, ordered, overrides)


def _expand_ordered(repo: Repo, ordered: list[JobSpec], overrides: dict) -> Iterator[ExpandedJob]:
    by_name = {s.name: s for s in ordered}
    upstream = {s.name: _upstream(s, by_name) for s in ordered}
    needed = {name for ups in upstream.values() for name in ups}  # specs some other spec depends on
    keys: dict[str, list[str]] = {}
    prefixes: dict[str, set[str]] = {}
    produced: dict[str, Produced] = {}
    cache: dict = {}
    for spec in ordered:
        up_keys = [k for name in upstream[spec.name] for k in keys[name]]
        up_prefixes = set().union(*(prefixes[name] for name in upstream[spec.name]))
        up_produced = Produced()
        for name in upstream[spec.name]:
            up_produced.update(produced[name])
        if spec.name in needed:
            keys[spec.name], prefixes[spec.name], produced[spec.name] = [], set(), Produced()
        for job in expand_spec(repo, spec, overrides, up_keys, up_prefixes, cache, up_produced):
            if spec.name in needed:
                keys[spec.name].append(job.key)
                prefixes[spec.name].update(output_prefix(o) for o in job.outputs)
                for o in job.outputs:
                    produced[spec.name].add(o)
            else:
                job.depended_on = False
            yield job


def expand(repo: Repo, specs: list[JobSpec], overrides: dict | None = None, backend: str | None = None) -> list[ExpandedJob]:
    """Every job of the given specs and of the specs they depend on, dependencies first, as a list.

    The same as :func:`iter_expand` (whose checks and cap apply), for callers
    that want the jobs at hand; ``ws run``, ``ws run --dry-run`` and
    ``ws jobs validate`` stream them instead.
    """
    return list(iter_expand(repo, specs, overrides, backend))


def check_backend(repo: Repo, spec: JobSpec) -> None:
    """Refuse a spec its backend can never run: resources (the local one: more gpus than the machine has),
    and every field it cannot honour (a container on the local backend, ``resources.nodes`` > 1, artifacts...).

    Checked when jobs are expanded (``ws run``, ``ws jobs validate``, the Python
    API), not when a spec file is parsed: the answer depends on the machine and
    on the configured backend. Nothing is contacted. An unknown backend name is
    InvalidSpec naming the configured ones.
    """
    from sync.compute.base import SubmitRequest, UnsatisfiableRequest
    from sync.errors import UnknownBackend
    from workspace.jobs.backends import configured, open_backend

    try:
        backend = open_backend(repo, spec.backend, secrets=False)  # the checks need its options only
    except UnknownBackend:
        from workspace.jobs.spec import unknown_backend_message
        from workspace.jobs.backends import names

        raise InvalidSpec(f"{spec.where}: field 'backend': " + unknown_backend_message(
            spec.backend, names(repo.config), [b.name for b in configured(repo.config)])) from None
    r = spec.resources
    try:
        backend.check_resources(cpus=r.cpus, memory_mb=r.memory_mb, gpus=r.gpus)
        backend.check_request(SubmitRequest(
            job_id="000000000000", name=spec.name, command=spec.command, workdir=str(repo.root),
            log_dir=str(repo.layout.jobs_dir), cpus=r.cpus, memory_mb=r.memory_mb, walltime_s=r.walltime_s,
            gpus=r.gpus, nodes=r.nodes, disk_mb=r.disk_mb, labels=dict(spec.labels), artifacts=list(spec.artifacts),
            image=spec.container.image if spec.container else None,
            runtime=spec.container.runtime if spec.container else None))
    except UnsatisfiableRequest as exc:
        fld = exc.field or "resources"
        raise InvalidSpec(f"{spec.where}: field '{fld}': {exc}") from None
    finally:
        backend.close()


def _upstream(spec: JobSpec, by_name: dict[str, JobSpec]) -> list[str]:
    """Every spec ``spec`` depends on, directly or not."""
    seen: list[str] = []
    todo = list(spec.depends_on)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.append(name)
            todo.extend(by_name[name].depends_on)
    return sorted(seen)


def check_workspace(repo: Repo, spec: JobSpec) -> int:
    """Everything ``ws jobs validate`` checks that needs the workspace (deps, cycles, the cap, inputs,
    outputs); returns how many jobs the spec and its dependencies expand to. Jobs are checked one at a
    time and dropped, so memory stays flat however big the sweep."""
    return sum(1 for _ in iter_expand(repo, [spec]))
