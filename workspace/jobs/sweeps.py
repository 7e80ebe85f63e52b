"""Parameter sweeps, one job's parameters at a time, and the cap on the jobs of one run.

A spec's ``params`` is a mapping of lists (the jobs are their product) or a
list of records (one job each). :func:`sweep` yields the parameter sets
lazily, so a sweep never exists as a list; :func:`sweep_size` counts them from
the sizes of the lists, which is how ``[jobs] max_jobs_per_run`` is checked
(:func:`check_job_count`) before anything is expanded.

Overrides (``ws run --param KEY=v1,v2``) map a parameter to a list of values
(a scalar counts as a one-item list): in a mapping-of-lists spec they replace
that parameter's list, so the jobs are the product of the given values with
the spec's other lists; in a list-of-records spec each record naming the
parameter gives one job per given value. :func:`parse_param_values` reads a
``--param`` (CSV quoting, so a value may hold a comma) and
:func:`read_param_file` a ``--param-file`` (CSV with a header row, or JSON Lines).
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


def _values(value) -> list:
    """An override as a list of values: a list or tuple as is, anything else as a one-item list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _axes(spec: JobSpec, overrides: dict) -> dict[str, list]:
    """A mapping-of-lists spec's parameter lists, overrides applied, repeats dropped.

    Dropping repeats per list drops exactly the repeated combinations of their
    product, in the same order, without ever holding the product.
    """
    return {k: _unique(_values(overrides[k]) if k in overrides else (v if isinstance(v, (list, tuple)) else [v]))
            for k, v in spec.params.items()}


def _records(spec: JobSpec, overrides: dict) -> Iterator[dict]:
    """A list-of-records spec's records, overrides applied, repeats dropped (the records are in the spec)."""
    seen: set[str] = set()
    for rec in spec.params:
        names = [k for k in overrides if k in rec]
        for values in itertools.product(*(_unique(_values(overrides[k])) for k in names)):
            combo = {**rec, **dict(zip(names, values))}
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


# -- parameters from the command line ----------------------------------------------------------
def scalar(text: str):
    """A command-line value read like a YAML scalar (``3`` a number, ``true`` a boolean), else the text."""
    import yaml

    if text == "":
        return ""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return parsed if isinstance(parsed, (str, int, float, bool)) else text


def parse_param_values(pair: str) -> tuple[str, list]:
    """``KEY=v1,v2,"v,3"`` (one ``--param``) as ``(KEY, [values])``: split as one CSV row, each value a scalar.

    A value holding a comma is quoted as in CSV: ``--param 'msg="a,b",c'`` gives
    ``["a,b", "c"]``. Repeated values count once.
    """
    import csv

    from workspace.errors import InvalidArgument

    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidArgument(f"--param '{pair}': expected KEY=VALUE or KEY=V1,V2,...")
    try:
        rows = list(csv.reader([text], strict=True)) if text else [[""]]
    except csv.Error as exc:
        raise InvalidArgument(f"--param '{pair}': bad CSV quoting: {exc}") from None
    if len(rows) != 1:
        raise InvalidArgument(f"--param '{pair}': one line of comma-separated values expected")
    return key, _unique(scalar(v) for v in rows[0])


def read_param_file(path: str) -> list[dict]:
    """``--param-file``: parameter records from a CSV file (header row = names) or JSON Lines (``.jsonl``).

    CSV values are read like ``--param`` values (``3`` is a number); JSON
    values are kept as they are and must be strings, numbers or booleans.
    Every record must name the same parameters; an empty file is an error.
    """
    import csv

    from workspace.errors import InvalidArgument

    shown = f"--param-file {path}"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.endswith((".jsonl", ".ndjson")):
                records = []
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError as exc:
                        raise InvalidArgument(f"{shown}: line {n}: not JSON: {exc}") from None
                    if not isinstance(rec, dict) or not rec:
                        raise InvalidArgument(f"{shown}: line {n}: expected a JSON object of name: value")
                    bad = [k for k, v in rec.items() if isinstance(v, (dict, list)) or v is None]
                    if bad:
                        raise InvalidArgument(f"{shown}: line {n}: value of '{bad[0]}' must be a string, number "
                                              "or boolean")
                    records.append(rec)
            elif path.endswith(".csv"):
                try:
                    rows = list(csv.reader(f, strict=True))
                except csv.Error as exc:
                    raise InvalidArgument(f"{shown}: bad CSV: {exc}") from None
                rows = [r for r in rows if r]
                if not rows:
                    raise InvalidArgument(f"{shown}: empty (expected a header row naming the parameters)")
                header = [h.strip() for h in rows[0]]
                if not all(header) or len(set(header)) != len(header):
                    raise InvalidArgument(f"{shown}: the header row must name each parameter once")
                records = []
                for n, row in enumerate(rows[1:], 2):
                    if len(row) != len(header):
                        raise InvalidArgument(f"{shown}: line {n}: {len(row)} value(s) for {len(header)} "
                                              "parameter(s)")
                    records.append({h: scalar(v) for h, v in zip(header, row)})
            else:
                raise InvalidArgument(f"{shown}: expected a .csv or .jsonl file")
    except FileNotFoundError:
        raise InvalidArgument(f"{shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{shown}: cannot read: {exc}") from None
    if not records:
        raise InvalidArgument(f"{shown}: no records")
    names = set(records[0])
    for i, rec in enumerate(records):
        if set(rec) != names:
            raise InvalidArgument(f"{shown}: record {i + 1} names {', '.join(sorted(rec))}, the first "
                                  f"{', '.join(sorted(names))}: every record must name the same parameters")
    return records


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
