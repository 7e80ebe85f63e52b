"""Spec files: finding a spec by name or path in ``jobs/``, and reading one (YAML).

PyYAML is imported only inside :func:`load_spec`.
"""

from __future__ import annotations

import os
from pathlib import Path

from workspace.jobs.fields import from_dict
from workspace.jobs.spec import InvalidSpec, JobSpec, SpecNotFound, validate
from workspace.repo import Repo

SPEC_DIR = "jobs"


def load_spec(path: str | os.PathLike, display: str | None = None, config: dict | None = None) -> JobSpec:
    """Read and validate one YAML spec file (``display``: how messages name it; ``config``: the workspace's,
    whose configured backends the spec may name)."""
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
    except RecursionError:  # PyYAML composes nodes recursively: refuse what Python's stack cannot hold
        raise InvalidSpec(f"{shown}: not a usable spec: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = ""
        if "{" in text and "[" in text:  # `outputs: [out/{sample}/]` is a YAML flow mapping, not a template
            hint = "; templates inside [...] or {...} must be quoted: [\"out/{sample}/\"]"
        raise InvalidSpec(f"{shown}{where}: not valid YAML: {problem}{hint}") from None
    try:
        spec = from_dict(data, shown, default_name=p.stem)
        return validate(spec, config)
    except RecursionError:  # a value nested just below the parser's limit, walked by the field checks
        raise InvalidSpec(f"{shown}: not a usable spec: nested too deeply") from None


def spec_files(root: str | os.PathLike) -> list[Path]:
    """Every ``jobs/*.yaml`` and ``jobs/*.yml`` of a workspace, sorted."""
    folder = Path(root) / SPEC_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def find_spec(repo: Repo, name_or_path: str, cwd: str | os.PathLike | None = None) -> JobSpec:
    """The spec a user names: a path to a YAML file, or a spec name found in ``jobs/``."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    candidate = Path(name_or_path)
    if not candidate.is_absolute():
        candidate = base / candidate
    if candidate.is_file():
        return load_spec(candidate, _display_path(repo, candidate), repo.config)
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        raise SpecNotFound(f"no spec file '{name_or_path}'")
    root = Path(repo.root)
    for ext in (".yaml", ".yml"):  # the common case: the file is named after the spec
        p = root / SPEC_DIR / f"{name_or_path}{ext}"
        if p.is_file():
            spec = load_spec(p, _display_path(repo, p), repo.config)
            if spec.name == name_or_path:
                return spec
    for p in spec_files(root):
        spec = load_spec(p, _display_path(repo, p), repo.config)
        if spec.name == name_or_path:
            return spec
    raise SpecNotFound(f"no spec named '{name_or_path}' in {SPEC_DIR}/ (looked for {SPEC_DIR}/{name_or_path}.yaml)")


def _display_path(repo: Repo, p: Path) -> str:
    """Workspace-relative path when the file is inside the workspace (nicer messages, stable keys)."""
    try:
        return str(Path(os.path.abspath(p)).relative_to(repo.root))
    except ValueError:
        return str(p)
