"""Parameter sweeps, one job's parameters at a time, and the cap on the jobs of one run.

A spec's ``params`` is a mapping of lists (the jobs are their product) or a
list of records (one job each). :func:`sweep` yields the parameter sets
lazily, so a sweep never exists as a list; :func:`sweep_size` counts them from
the sizes of the lists, which is how ``[jobs] max_jobs_per_run`` is checked
(:func:`check_job_count`) before anything is expanded.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator

from workspace.jobs.spec import InvalidSpec, JobSpec


def _signature(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _unique(values) -> list:
    """``values`` without repeats (compared as canonical JSON, so 1 and 1.0 and True stay apart), in order."""
    seen: set[str] = set()
    out = []
    for v in values:
        sig = _signature(v)
        if sig not in seen:
            seen.add(sig)
            out.append(v)
    return out


def _axes(spec: JobSpec, overrides: dict) -> dict[str, list]:
    """A mapping-of-lists spec's parameter lists, overrides applied, repeats dropped.

    Dropping repeats per list drops exactly the repeated combinations of their
    product, in the same order, without ever holding the product.
    """
    return {k: _unique([overrides[k]] if k in overrides else (v if isinstance(v, (list, tuple)) else [v]))
            for k, v in spec.params.items()}


def _records(spec: JobSpec, overrides: dict) -> Iterator[dict]:
    """A list-of-records spec's records, overrides applied, repeats dropped (the records are in the spec)."""
    seen: set[str] = set()
    for rec in spec.params:
        combo = {**rec, **{k: v for k, v in overrides.items() if k in rec}}
        sig = _signature(combo)
        if sig not in seen:
            seen.add(sig)
            yield combo


def sweep(spec: JobSpec, overrides: dict | None = None) -> Iterator[dict]:
    """The parameter sets of a spec, one at a time: the product of its lists, or its records.

    ``overrides`` set values. Repeated sets are dropped; a spec without
    parameters has one empty set. Nothing is built up front: a sweep of a
    billion jobs yields its first set at once (:func:`sweep_size` counts it).
    """
    overrides = dict(overrides or {})
    if isinstance(spec.params, list):
        combos = _records(spec, overrides)
    else:
        axes = _axes(spec, overrides)
        names = list(axes)
        combos = (dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names)))
    empty = True
    for combo in combos:
        empty = False
        yield combo
    if empty:
        yield {}


def sweep_size(spec: JobSpec, overrides: dict | None = None) -> int:
    """How many parameter sets :func:`sweep` yields, computed from the list sizes (nothing expanded)."""
    overrides = dict(overrides or {})
    if isinstance(spec.params, list):
        return max(1, sum(1 for _ in _records(spec, overrides)))
    return max(1, math.prod(len(v) for v in _axes(spec, overrides).values()))


# -- the cap on jobs per run ----------------------------------------------------------------------
DEFAULT_MAX_JOBS_PER_RUN = 100_000


class TooManyJobs(InvalidSpec):
    """A run whose sweeps expand to more jobs than ``[jobs] max_jobs_per_run`` allows (exit 9)."""


def max_jobs_per_run(config: dict) -> int:
    """``[jobs] max_jobs_per_run`` of ``.ws/config.toml`` (default 100,000); InvalidConfig if not a count."""
    from workspace.errors import InvalidConfig

    section = config.get("jobs") if isinstance(config.get("jobs"), dict) else {}
    value = section.get("max_jobs_per_run", DEFAULT_MAX_JOBS_PER_RUN)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfig(f".ws/config.toml: [jobs] max_jobs_per_run must be a whole number >= 1, got {value!r}")
    return value


def check_job_count(config: dict, specs: list[JobSpec], overrides: dict) -> int:
    """The number of jobs the specs of one run expand to; TooManyJobs (one line) above the cap.

    Counted from the sizes of the parameter lists, so a sweep of a million
    jobs is refused at once, before any of them is built.
    """
    limit = max_jobs_per_run(config)
    sizes = {s.name: sweep_size(s, overrides) for s in specs}
    total = sum(sizes.values())
    if total > limit:
        biggest = max(specs, key=lambda s: sizes[s.name])
        whole = "" if total == sizes[biggest.name] else f" and the run (its {len(specs)} specs) to {total:,} jobs"
        raise TooManyJobs(
            f"{biggest.where}: field 'params': expands to {sizes[biggest.name]:,} jobs{whole}, more than "
            f"[jobs] max_jobs_per_run = {limit:,} allows per run; split the sweep, or raise the setting "
            "in .ws/config.toml")
    return total
