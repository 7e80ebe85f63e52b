"""Rules of the code's shape that import-linter cannot see (its contracts are in pyproject.toml).

No module uses another module's private (``_underscored``) names: neither
``from x import _name`` nor ``x._name`` on an imported module. A helper two
modules need is public, in the module that owns it. And ``ws status`` imports
none of the slow libraries (docs/architecture.md).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import write

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workspace", "catalog", "sync")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (resolving relative imports)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_module(root: Path, dotted: str) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def private_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Every use, in one source file, of a private name of another of our modules."""
    module = _module_name(path, root)
    where = path.relative_to(root)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> one of our modules it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    local = alias.asname or alias.name.split(".")[0]
                    modules[local] = alias.name if alias.asname else local
                    found += [f"{where}:{node.lineno}: import {alias.name}"
                              for part in alias.name.split(".") if _is_private(part)]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, path.name == "__init__.py")
            if not _ours(source) or source == module:
                continue
            for alias in node.names:
                if _is_private(alias.name) or any(_is_private(p) for p in source.split(".")):
                    found.append(f"{where}:{node.lineno}: from {source} import {alias.name}")
                elif _is_module(root, f"{source}.{alias.name}"):  # a submodule, not a class or function
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and _is_private(node.attr)):
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr} "
                         f"(a private name of {modules[node.value.id]})")
    return found


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_module_uses_another_modules_private_names():
    found = [use for path in source_files() for use in private_uses(path)]
    assert not found, "private names used from another module (make them public where they live):\n" + \
        "\n".join(found)


def test_the_check_sees_private_imports(tmp_path):
    """The rule itself: each form of reaching into another module is reported."""
    pkg = tmp_path / "workspace"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "other.py").write_text("")
    (pkg / "tree").mkdir()
    (pkg / "tree" / "__init__.py").write_text("")
    (pkg / "tree" / "checkout.py").write_text("")
    src = pkg / "user.py"
    src.write_text("from workspace.tree.checkout import _dirty_error\n"
                   "from workspace.tree import checkout\n"
                   "from . import other\n"
                   "from workspace.tree.scan import FileStat\n"
                   "checkout._remove(1)\nother._helper()\nchecked = checkout.restore\nFileStat._make(())\n")
    uses = private_uses(src, tmp_path)
    assert [u.split(": ", 1)[1] for u in uses] == [
        "from workspace.tree.checkout import _dirty_error",
        "checkout._remove (a private name of workspace.tree.checkout)",
        "other._helper (a private name of workspace.other)",
    ]


SLOW = ("typer", "sqlmodel", "sqlalchemy", "fsspec", "boto3", "yaml", "keyring", "pyfastcdc", "zstandard",
        # issue 12: a clean status parses ws's plain config without tomllib, hashes nothing (hashlib
        # loads OpenSSL; folder digests use _blake2 directly) and builds no dataclass (inspect)
        "tomllib", "hashlib", "_hashlib", "dataclasses", "inspect", "shutil", "rich",
        # ...prints no JSON, reads no commit row, kills no helper
        "json", "signal", "watchdog")


def test_ws_status_imports_no_slow_library(ws, tmp_path):
    """The console script's ``ws status``, with a commit, a release and a remote (so every row is computed)."""
    write(ws.root, "a.txt", "a\n")
    past = time.time_ns() - 60 * 10**9  # not racy: status must not re-hash it (which would import hashlib)
    os.utime(ws.root / "a.txt", ns=(past, past))
    ws.commit("one")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.close()
    # compile() too: its first call in a process sets up the ast module (~10 M instructions); a
    # typing.ForwardRef (a string annotation in a NamedTuple class, a TypeVar bound) calls it
    code = ("import atexit, builtins, sys\n"
            "compiled = []\n"
            "real_compile = builtins.compile\n"
            # str sources only: importing a module without its .pyc compiles its bytes (not what is checked)
            "builtins.compile = lambda *a, **k: (isinstance(a[0], str) and compiled.append(a[0])) "
            "or real_compile(*a, **k)\n"
            "def report():\n"
            f"    found = [m for m in {SLOW!r} if m in sys.modules] + [f'compile({{c!r}})' for c in compiled]\n"
            "    print(repr(found), file=sys.stderr)\n"
            "atexit.register(report)\n"
            "sys.argv = ['ws', 'status']\n"
            "from workspace.cli.entry import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ws.root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 release not pushed" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"
