"""HEAD, branches, and turning a user's ref expression into a commit id.

Accepted: full commit ids and unique prefixes (4+ hex digits), ``HEAD``,
branch names, each optionally followed by ``~N`` or ``^`` (first parent).
"""

from __future__ import annotations

import re
import time

from catalog import history
from catalog.db import Catalog
from workspace.errors import AmbiguousRef, InvalidArgument, UnknownRef
from workspace.history import reffiles
# HEAD's catalog key and the first branch are defined where a new repository writes them
from workspace.repo import DEFAULT_BRANCH, HEAD_KEY, Repo

_BRANCH_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<!/)(?<!\.lock)$")
_SUFFIX_RE = re.compile(r"(~\d*|\^)+$")


def check_branch_name(name: str) -> None:
    """Refuse names that would be confusing as refs."""
    if not _BRANCH_RE.match(name) or name == HEAD_KEY or re.fullmatch(r"[0-9a-f]{4,64}", name):
        raise InvalidArgument(f"invalid branch name {name!r}: use letters, digits, '.', '_', '-', '/' "
                              "and not something that looks like a commit id")


def read_head(cat: Catalog) -> tuple[str | None, str | None]:
    """(branch or None when detached, commit id or None before the first commit)."""
    value = history.get_meta(cat, HEAD_KEY) or f"ref:{DEFAULT_BRANCH}"
    if value.startswith("ref:"):
        branch = value[4:]
        return branch, history.get_ref(cat, branch)
    return None, value


def set_head_branch(repo: Repo, branch: str) -> None:
    """Attach HEAD to a branch: ``.ws/HEAD`` first, then the catalog's index of it."""
    reffiles.write_head(repo.layout, branch)
    history.set_meta(repo.catalog, HEAD_KEY, f"ref:{branch}")


def set_head_detached(repo: Repo, commit_id: str) -> None:
    """Point HEAD at a commit directly: ``.ws/HEAD`` first, then the catalog."""
    reffiles.write_head(repo.layout, None, commit_id)
    history.set_meta(repo.catalog, HEAD_KEY, commit_id)


def set_branch(repo: Repo, name: str, commit_id: str) -> None:
    """Point a branch at a commit: its file under ``.ws/refs/heads/`` first, then the catalog."""
    reffiles.write_ref(repo.layout, name, commit_id)
    history.set_ref(repo.catalog, name, commit_id, time.time_ns())


def resolve(cat: Catalog, expr: str) -> str:
    """The commit id an expression names; UnknownRef/AmbiguousRef otherwise."""
    expr = expr.strip()
    if not expr:
        raise UnknownRef("empty ref")
    m = _SUFFIX_RE.search(expr)
    base, suffix = (expr[: m.start()], m.group(0)) if m else (expr, "")
    commit_id = _resolve_base(cat, base or HEAD_KEY, expr)
    for step in re.findall(r"~\d*|\^", suffix):
        n = 1 if step in ("^", "~") else int(step[1:])
        for _ in range(n):
            rec = history.get_commit(cat, commit_id)
            if rec is None or not rec.parents:
                raise UnknownRef(f"unknown ref '{expr}': history is not that long")
            commit_id = rec.parents[0]
    return commit_id


def _resolve_base(cat: Catalog, base: str, expr: str) -> str:
    if base == HEAD_KEY or base == "@":
        _, commit_id = read_head(cat)
        if commit_id is None:
            raise UnknownRef("HEAD has no commits yet")
        return commit_id
    commit_id = history.get_ref(cat, base)
    if commit_id is not None:
        return commit_id
    if re.fullmatch(r"[0-9a-fA-F]{4,64}", base):
        found = history.commits_with_prefix(cat, base.lower())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AmbiguousRef(f"ref '{expr}' is ambiguous: more than one commit starts with {base}")
    raise UnknownRef(f"unknown ref '{expr}': not a branch, HEAD or commit id")


def is_ref(cat: Catalog, expr: str) -> bool:
    """Whether ``expr`` names a commit (ambiguous prefixes and unknown names do not)."""
    try:
        resolve(cat, expr)
    except UnknownRef:
        return False
    return True


# -- branches ---------------------------------------------------------------------
def branches(cat: Catalog) -> list[tuple[str, str, bool]]:
    """Every branch as (name, commit id, is current)."""
    current, _ = read_head(cat)
    return [(name, cid, name == current) for name, cid in history.list_refs(cat)]


def create_branch(repo: Repo, name: str, ref: str = "HEAD") -> str:
    """Make a branch at ``ref``; returns its commit id."""
    with repo.lock():
        check_new_branch(repo, name)
        commit_id = resolve(repo.catalog, ref)
        set_branch(repo, name, commit_id)
    return commit_id


def check_new_branch(repo: Repo, name: str) -> None:
    """Refuse a name that is invalid, taken, or collides with another branch's file (``a`` vs ``a/b``)."""
    check_branch_name(name)
    if history.get_ref(repo.catalog, name) is not None:
        raise InvalidArgument(f"branch '{name}' already exists")
    reffiles.check_free(repo.layout, name)


def delete_branch(repo: Repo, name: str) -> None:
    """Remove a branch (not the current one): its file, then its catalog row."""
    cat = repo.catalog
    with repo.lock():
        current, _ = read_head(cat)
        if name == current:
            raise InvalidArgument(f"cannot delete the current branch '{name}'")
        if history.get_ref(cat, name) is None:
            raise UnknownRef(f"unknown branch '{name}'")
        reffiles.delete_ref(repo.layout, name)
        history.delete_ref(cat, name)
