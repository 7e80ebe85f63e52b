"""``ws squash BRANCH [--keep N]``: rewrite a branch's old history into one commit (Pachyderm's squash).

The branch's first-parent chain is cut after its ``keep`` newest commits: the
commit below them (and everything older on the chain) becomes one new root
commit holding that commit's tree, and the ``keep`` newest commits are written
again on top of it (same trees, messages, authors, times and provenance; new
ids, since their parents changed; a merge keeps its other parents). The new
commit objects go into a pack first, then the branch's ref file moves, then
the catalog indexes them; then the replaced commits that nothing else reaches
(another branch, HEAD, a release, a job record) are pruned as ``ws gc --prune``
would, whatever their age, with the chunks only they held.
"""

from __future__ import annotations

import time

from catalog import history
from catalog.history import CommitRecord
from workspace.errors import InvalidArgument, UnknownRef
from workspace.history import reffiles
from workspace.lock import pack_guard
from workspace.maintenance.gc import reach, collect, plan_prune, prune_roots
from workspace.objects import history as objects
from workspace.objects.packs import KIND_COMMIT
from workspace.repo import Repo
from workspace.reports import GcReport


def _chain(cat, tip: str) -> list[CommitRecord]:
    out = []
    cid: str | None = tip
    while cid:
        rec = history.get_commit(cat, cid)
        if rec is None:
            break
        out.append(rec)
        cid = rec.parents[0] if rec.parents else None
    return out


def squash(repo: Repo, branch: str, keep: int = 0, dry_run: bool = False,
           extra_roots: set[str] | frozenset = frozenset()) -> tuple[GcReport, dict]:
    """Squash ``branch``; returns (what was or would be freed, ``{branch, commits_squashed, commits_kept, old_tip, new_tip}``)."""
    if keep < 0:
        raise InvalidArgument(f"--keep {keep}: give a number of commits >= 0")
    cat = repo.catalog
    with pack_guard(repo.layout.pack_lock, exclusive=True), repo.lock():
        tip = history.get_ref(cat, branch)
        if tip is None:
            raise UnknownRef(f"unknown branch '{branch}'")
        chain = _chain(cat, tip)
        kept, squashed = chain[:keep], chain[keep:]
        info = {"branch": branch, "old_tip": tip, "new_tip": tip, "commits_squashed": len(squashed),
                "commits_kept": len(kept)}
        if len(squashed) <= 1:  # nothing to squash: at most one commit below the kept ones
            info["commits_squashed"] = 0
            return GcReport(dry_run=dry_run), info
        replaced = {c.id for c in chain}
        new = _rewrite(squashed, kept, branch)
        if dry_run:
            roots = prune_roots(repo, extra_roots) - {tip} | {p for c in kept for p in c.parents[1:]}
            roots |= {r for name, r in history.list_refs(cat) if name != branch}
            commits = history.all_commits(cat)
            alive = reach({c.id: c.parents for c in commits}, roots | {c.id for c in commits
                                                                         if c.id not in replaced})
            dropped = [c.id for c in commits if c.id not in alive]
            report = collect(repo, dropped, dry_run=True, extra_trees={c.tree_id for c in new})
            info["new_tip"] = new[-1].id
            return report, info
        _record(repo, branch, new)
        # only replaced commits go, and only those nothing else reaches (an unreachable commit that is not
        # one of them keeps its ancestors too, so no kept commit ever loses a parent)
        report = collect(repo, plan_prune(repo, None, extra_roots, only=replaced))
        info["new_tip"] = new[-1].id
        return report, info


def _rewrite(squashed: list[CommitRecord], kept: list[CommitRecord], branch: str) -> list[CommitRecord]:
    """The new commits, oldest first: the squash commit, then the kept ones on top of it."""
    base = squashed[0]
    lines = [c.message.splitlines()[0] if c.message else "" for c in squashed]
    message = (f"squashed {len(squashed)} commits of {branch} (up to {base.id[:12]})\n\n"
               + "\n".join(f"- {ln}" for ln in lines[:50]) + ("\n- ..." if len(lines) > 50 else ""))
    out = [_make(base.tree_id, [], branch, message, base.author, base.time_ns, None)]
    for c in reversed(kept):
        out.append(_make(c.tree_id, [out[-1].id] + c.parents[1:], c.branch, c.message, c.author, c.time_ns,
                         c.provenance))
    return out


def _make(tree_id, parents, branch, message, author, time_ns, provenance) -> CommitRecord:
    body = objects.encode_commit(objects.CommitObject(tree_id, parents, branch, message, author, time_ns,
                                                      provenance))
    return CommitRecord(objects.object_id(body), tree_id, parents, branch, message, author, time_ns, provenance)


def _record(repo: Repo, branch: str, new: list[CommitRecord]) -> None:
    """Packs first (sealed), then the branch's ref file, then one catalog transaction."""
    with repo.store.writer() as writer:
        for c in new:
            writer.add_object(KIND_COMMIT, objects.encode_commit(objects.CommitObject(
                c.tree_id, c.parents, c.branch, c.message, c.author, c.time_ns, c.provenance)))
        writer.seal()
        reffiles.write_ref(repo.layout, branch, new[-1].id)
        now = time.time_ns()
        with repo.catalog.write():
            writer.record(now)
            for c in new:
                history.add_commit(repo.catalog, c)
            history.set_ref(repo.catalog, branch, new[-1].id, now)
