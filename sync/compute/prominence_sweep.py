"""Several SubmitRequests as one PROMINENCE workflow: sweeps as zip factories, ``depends_on`` as dependencies.

Members of a sweep (requests with the same ``name``) become one template job
and a ``zip`` factory when their job descriptions differ only where
PROMINENCE substitutes factory parameters (the task's ``cmd``, output file
and folder names; variables that differ between members are moved from
``env`` into ``cmd``), and only by the values of the sweep's parameters. The
template is derived from the first member and then *verified*: substituting
each member's parameters (``$name``/``${name}``, as PROMINENCE does) must give
exactly the description that member would have (env moved) as a single job.
Anything else, artifacts that differ included, falls back to one workflow job
per request (or, with no dependencies to express, to single jobs, which the
caller sends).

Every factory carries two hidden parameters, ``wsjob`` and ``wsattempt``, so
the instance for a ws job attempt can be found in the workflow description
(``find``), and every workflow carries a label per spec name
(:func:`name_label`) to list the workflows of a spec.

Member references (the part of a backend id after the workflow id) are
``<job name>`` for a workflow job and ``<job name>/<index>`` for the
index-th instance of a factory, as PROMINENCE names them.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re
import shlex
from dataclasses import dataclass
from string import Template
from typing import Callable

from sync.compute.base import SubmitRequest
from sync.compute.prominence_jobs import ATTEMPT_LABEL, JOB_LABEL, safe_name

ID_PARAM, ATTEMPT_PARAM = "wsjob", "wsattempt"
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # what $name / ${name} substitution can name
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.\-/+:@%,=]+$")  # values PROMINENCE passes through its job files unquoted


@dataclass
class WorkflowPlan:
    """The workflow description and, per request (in order), its member reference."""

    workflow: dict
    members: list[str]


def name_label(name: str) -> tuple[str, str]:
    """The label (key, value) a workflow carries for each spec name among its jobs.

    The key is ``ws``, the name's letters and digits, and 8 hex digits of its
    SHA-1 (names differing only in punctuation get different keys); PROMINENCE
    keys are alphanumeric and shorter than 64 characters.
    """
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return "ws" + re.sub(r"[^A-Za-z0-9]", "", name)[:50] + digest, safe_name(name)[:63]


def plan_workflow(requests: list[SubmitRequest], single: Callable[[SubmitRequest, str], dict],
                  wf_name: str) -> WorkflowPlan | None:
    """One workflow for ``requests``, or None when it would only hold independent single jobs.

    ``single(request, name)`` is the job description a request has on its own.
    """
    in_batch = {r.job_id for r in requests}
    groups: dict[str, list[SubmitRequest]] = {}
    for r in requests:
        groups.setdefault(r.name, []).append(r)
    factories = {name: _factory(members, single) for name, members in groups.items() if len(members) > 1}
    factories = {k: v for k, v in factories.items() if v is not None}
    job_of = _job_names(requests, factories)
    edges = _edges(requests, job_of, in_batch)
    if factories and not _edges_exact(requests, job_of, edges, in_batch):
        factories, job_of = {}, _job_names(requests, {})  # a member needs only part of a sweep: no factories
        edges = _edges(requests, job_of, in_batch)
    if not factories and not edges:
        return None
    jobs, factory_list, members = [], [], []
    for r in requests:
        tpl = factories.get(r.name)
        if tpl is None:
            jobs.append(single(r, job_of[r.job_id]))
            members.append(job_of[r.job_id])
        else:
            members.append(f"{job_of[r.job_id]}/{tpl[2].index(r.job_id)}")
    for name, (template, factory, _) in factories.items():
        jobs.append(template)
        factory_list.append(factory)
    workflow: dict = {"name": wf_name, "jobs": jobs,
                      "labels": dict(name_label(n) for n in groups)}
    if factory_list:
        workflow["factories"] = factory_list
    if edges:
        workflow["dependencies"] = {p: sorted(c) for p, c in edges.items()}
    return WorkflowPlan(workflow, members)


def _job_names(requests: list[SubmitRequest], factories: dict) -> dict[str, str]:
    """Workflow job name per ws job id: one per factory (named after its first member), else one each.

    Names end in a ws job id (12 hex digits), so that no name contains
    another (PROMINENCE matches dependency names as substrings).
    """
    out = {}
    for r in requests:
        tpl = factories.get(r.name)
        out[r.job_id] = tpl[0]["name"] if tpl else f"{safe_name(r.name)}-{r.job_id}"
    return out


def _edges(requests, job_of, in_batch) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for r in requests:
        for dep in r.depends_on:
            if dep in in_batch and job_of[dep] != job_of[r.job_id]:
                edges.setdefault(job_of[dep], set()).add(job_of[r.job_id])
    return edges


def _edges_exact(requests, job_of, edges, in_batch) -> bool:
    """Whether each request depends on exactly the requests of its workflow job's parents (no more, no less)."""
    members: dict[str, set[str]] = {}
    for r in requests:
        members.setdefault(job_of[r.job_id], set()).add(r.job_id)
    for r in requests:
        me = job_of[r.job_id]
        parents = [p for p, children in edges.items() if me in children]
        needed = set().union(*(members[p] for p in parents)) if parents else set()
        deps = {d for d in r.depends_on if d in in_batch}
        if deps != needed or r.job_id in deps or deps & members[me]:
            return False
    return True


# -- factories -------------------------------------------------------------------
def _factory(members: list[SubmitRequest], single) -> tuple[dict, dict, list[str]] | None:
    """(template job, zip factory, member job ids) for a sweep, or None when PROMINENCE cannot express it."""
    params = [_params(r) for r in members]
    if any(p is None for p in params) or any(set(p) != set(params[0]) for p in params):
        return None
    name = f"{safe_name(members[0].name)}-{members[0].job_id}"
    jobs = [single(r, name) for r in members]
    for job in jobs:  # the member's own identity labels: the factory's parameters carry it instead
        for key in (JOB_LABEL, ATTEMPT_LABEL):
            job.get("labels", {}).pop(key, None)
        if not job.get("labels", True):
            del job["labels"]
    if not _env_into_cmd(jobs, members):
        return None
    varying = [k for k in params[0] if k in (ID_PARAM, ATTEMPT_PARAM) or len({p[k] for p in params}) > 1]
    if any(not SAFE_VALUE.match(p[k]) for p in params for k in varying):
        return None
    zipped = {k: [p[k] for p in params] for k in varying}
    template = _template(jobs, zipped, [k for k in varying if len(set(zipped[k])) > 1])
    if template is None:
        return None
    factory = {"type": "zip", "name": f"{name}-sweep", "jobs": [name],
               "parameters": [{"name": k, "values": zipped[k]} for k in varying]}
    return template, factory, [r.job_id for r in members]


def _env_into_cmd(jobs: list[dict], members: list[SubmitRequest]) -> bool:
    """Move the variables whose values differ between members from the task's env into its command.

    PROMINENCE substitutes factory parameters in ``cmd`` (its factories page
    says in ``env`` too, but the service's job wrapper only does ``cmd`` and
    output names), so ``WS_JOB_ID`` and the like are set by the command:
    ``/bin/sh -c 'export WS_JOB_ID=${wsjob}; <command>'``. False when a name
    cannot be a shell variable.
    """
    envs = [job["tasks"][0].get("env") or {} for job in jobs]
    keys = sorted({k for env in envs for k in env if any(e.get(k) != env[k] for e in envs)})
    if not keys:
        return True
    if not all(IDENT.match(k) for k in keys):
        return False
    for job, env, r in zip(jobs, envs, members):
        exports = "".join(f"export {k}={shlex.quote(env.pop(k))}; " for k in keys if k in env)
        job["tasks"][0]["cmd"] = "/bin/sh -c " + shlex.quote(exports + r.command)
    return True


def _params(r: SubmitRequest) -> dict[str, str] | None:
    """A member's parameters as the strings ws renders, with its identity; None if they cannot be named."""
    if ID_PARAM in r.params or ATTEMPT_PARAM in r.params or not all(IDENT.match(str(k)) for k in r.params):
        return None
    out = {str(k): str(v) for k, v in r.params.items()}
    out[ID_PARAM], out[ATTEMPT_PARAM] = r.job_id, str(r.attempt)
    return out


def _sites(job: dict) -> list[tuple]:
    """Where PROMINENCE substitutes factory parameters in a job: each task's ``cmd``, output file and folder names.

    (Its factories page also names env and artifacts; its service does not
    substitute env, and substitutes artifact URLs only for its own storage.)
    """
    sites = [("tasks", i, "cmd") for i, t in enumerate(job.get("tasks") or []) if "cmd" in t]
    return sites + [(key, i) for key in ("outputFiles", "outputDirs") for i in range(len(job.get(key) or []))]


def _get(job: dict, site: tuple):
    node = job
    for step in site:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _set(job: dict, site: tuple, value) -> None:
    node = job
    for step in site[:-1]:
        node = node[step]
    node[site[-1]] = value


def _template(jobs: list[dict], zipped: dict[str, list[str]], varying: list[str]) -> dict | None:
    """The first job with its varying strings templated, if substituting gives back every member exactly.

    Where a string varies is learnt by comparing the first member with one
    member per varying parameter (one whose value differs): each stretch that
    differs must lie within an occurrence of a varying parameter's value.
    """
    probes = sorted({next(i for i, v in enumerate(zipped[k]) if v != zipped[k][0]) for k in varying})
    first = {k: v[0] for k, v in zipped.items()}
    template = copy.deepcopy(jobs[0])
    for site in _sites(template):
        derived = _derive(_get(template, site), [_get(jobs[i], site) for i in probes], first, varying)
        if derived is None:
            return None
        _set(template, site, derived)
    for i, job in enumerate(jobs):
        if _substitute(template, {k: v[i] for k, v in zipped.items()}) != job:
            return None
    return template


def _derive(text: str, others: list, values: dict[str, str], varying: list[str]) -> str | None:
    """``text`` (the first member's) with each stretch that differs in ``others`` turned into ``${name}``.

    None when a difference is not explained by a parameter's value.
    """
    if all(o == text for o in others):
        return text
    stretches = []
    for other in others:
        if not isinstance(other, str):
            return None
        ops = difflib.SequenceMatcher(None, text, other, autojunk=False).get_opcodes()
        stretches += [(i1, i2) for tag, i1, i2, _, _ in ops if tag != "equal"]
    spans: set[tuple[int, int, str]] = set()
    for lo, hi in stretches:
        span = _covering(text, lo, hi, values, varying)
        if span is None:
            return None
        spans.add(span)
    out, pos = [], 0
    for start, end, name in sorted(spans):
        if start < pos:
            return None  # two parameters claim overlapping text
        out += [text[pos:start], "${" + name + "}"]
        pos = end
    return "".join(out) + text[pos:]


def _covering(text: str, lo: int, hi: int, values: dict[str, str], varying: list[str]):
    """The shortest occurrence of a varying parameter's value in ``text`` that contains ``text[lo:hi]``."""
    best = None
    for name in varying:
        value = values[name]
        for m in re.finditer(re.escape(value), text):
            if m.start() <= lo and hi <= m.end() and (best is None or len(value) < best[1] - best[0]):
                best = (m.start(), m.end(), name)
    return best


def _substitute(job: dict, values: dict[str, str]) -> dict:
    """What PROMINENCE makes of a template job for one instance: ``$name`` substituted at its sites."""
    out = copy.deepcopy(job)
    for site in _sites(out):
        _set(out, site, Template(_get(out, site)).safe_substitute(values))
    return out


def member_of_workflow(workflow: dict, job_id: str, attempt: int) -> str | None:
    """The member reference of ws job ``job_id``'s attempt in a workflow description, if it is there."""
    for job in workflow.get("jobs") or []:
        labels = job.get("labels") or {}
        if labels.get(JOB_LABEL) == job_id and str(labels.get(ATTEMPT_LABEL)) == str(attempt):
            return str(job.get("name"))
    for factory in workflow.get("factories") or []:
        params = {p.get("name"): p.get("values") or [] for p in factory.get("parameters") or []}
        ids, attempts = params.get(ID_PARAM) or [], params.get(ATTEMPT_PARAM) or []
        for i, (jid, att) in enumerate(zip(ids, attempts)):
            if str(jid) == job_id and str(att) == str(attempt) and factory.get("jobs"):
                return f"{factory['jobs'][0]}/{i}"
    return None


def all_members(workflow: dict) -> list[str]:
    """Every member reference a workflow description defines (factory instances included)."""
    templated = {}
    for factory in workflow.get("factories") or []:
        values = [p.get("values") or [] for p in factory.get("parameters") or []]
        count = len(values[0]) if factory.get("type") == "zip" and values else None
        for name in factory.get("jobs") or []:
            templated[name] = count
    out = []
    for job in workflow.get("jobs") or []:
        name = str(job.get("name"))
        if name in templated and templated[name] is not None:
            out += [f"{name}/{i}" for i in range(templated[name])]
        elif name not in templated:
            out.append(name)
    return out
