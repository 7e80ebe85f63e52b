"""``ws watch --run SPEC``: run a spec again whenever its inputs change, like a Pachyderm pipeline.

A round is an ordinary ``ws run SPEC --wait``: job keys (spec, parameters,
input content) decide which sweep members run; the others are SKIPPED. So a
round after one input changed runs only the members that read it. Rounds are
started by the watcher's events in the folders the spec's inputs can be in
(outputs written elsewhere start nothing), once the tree has been quiet for
``settle`` seconds, so a file still being written is not taken half-done.
"""

from __future__ import annotations

import os
import re
import select
import time
from typing import Iterator

from workspace.errors import WorkspaceError
from workspace.jobs.engine import run_spec
from workspace.jobs.specfile import find_spec
from workspace.repo import Repo
from workspace.tree.watcher import Watcher

_GLOB = re.compile(r"[*?\[{]")


def input_folders(inputs: list[str]) -> list[str]:
    """The folders whose changes can change the spec's inputs: each input's part before any glob or template."""
    out = set()
    for pattern in inputs:
        m = _GLOB.search(pattern)
        fixed = pattern[: m.start()] if m else pattern
        out.add(fixed.rpartition("/")[0] if m or not fixed.endswith("/") else fixed.rstrip("/"))
    return sorted(out)


def watched_folders(repo: Repo, spec: str, cwd: str | None = None) -> list[str]:
    """The folders of the inputs of ``spec`` and of the specs it depends on, and of their spec files."""
    todo = [find_spec(repo, spec, cwd=cwd)]
    seen: set[str] = set()
    inputs: list[str] = []
    while todo:
        s = todo.pop()
        if s.name in seen:
            continue
        seen.add(s.name)
        inputs += s.inputs
        if s.path and not os.path.isabs(s.path):
            inputs.append(s.path)  # an edited spec has new keys: every member runs again
        todo += [find_spec(repo, d, cwd=cwd) for d in s.depends_on]
    return input_folders(inputs)


def _touches(dirty: list[tuple[str, bool]], folders: list[str]) -> bool:
    for d, subtree in dirty:
        for f in folders:
            if not f or d == f or d.startswith(f + "/") or (subtree and (not d or f.startswith(d + "/"))):
                return True
    return False


def _summary(n: int, res: dict, why: str) -> dict:
    jobs = res["jobs"]
    ran = [j for j in jobs if j.get("state") != "SKIPPED"]
    return {"round": n, "why": why, "workflow": res["workflow"], "state": res.get("state"),
            "ran": [{"name": j.get("name"), "params": j.get("params"), "state": j.get("state")} for j in ran],
            "skipped": len(jobs) - len(ran)}


def watch_run(repo: Repo, spec: str, params: list[str] | None = None, backend: str | None = None, *,
              settle: float = 0.3, rounds: int | None = None, cwd: str | None = None) -> Iterator[dict]:
    """Run ``spec`` now and after every change of its inputs; yields one summary per round.

    ``rounds`` stops after that many rounds (None: until interrupted).
    """
    folders = watched_folders(repo, spec, cwd)
    watcher = Watcher(repo.root)  # no barrier: rounds wait for events, never for a point in them
    try:
        n = 1
        yield _summary(n, run_spec(repo, spec, params, backend, wait=True, cwd=cwd), "start")
        while rounds is None or n < rounds:
            if not folders:
                return  # nothing to watch: a spec without inputs never changes
            epoch = watcher.epoch
            _wait_for(watcher, None)
            while _wait_for(watcher, settle):
                pass  # still changing: wait until quiet
            dirty = [(d, sub) for d, (_, sub) in watcher.dirty.items()] + [(d, True) for d in watcher.unwatched]
            watcher.dirty.clear()
            if watcher.epoch == epoch and not _touches(dirty, folders):
                continue  # (a new epoch means events were lost: run, the keys decide)
            n += 1
            try:
                yield _summary(n, run_spec(repo, spec, params, backend, wait=True, cwd=cwd), "inputs changed")
            except WorkspaceError as exc:  # an input deleted, a spec being edited: report, keep watching
                yield {"round": n, "why": "inputs changed", "workflow": None, "state": "ERROR", "ran": [],
                       "skipped": 0, "error": str(exc)}
    finally:
        watcher.close()


def _wait_for(watcher: Watcher, timeout: float | None) -> bool:
    """Block until events come (at most ``timeout`` seconds); handle them; whether any came."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([watcher.fd], [], [], left)
        if ready and watcher.read():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
