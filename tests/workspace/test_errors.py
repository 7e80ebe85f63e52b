"""The error hierarchy: every error class is in one of the three trees, documented, and mapped by the CLI."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path


import catalog
import sync
import workspace
from catalog.errors import CatalogError
from sync.errors import SyncError
from tests.conftest import data_packs, write
from workspace.cli.errors import error_exit_code
from workspace.errors import DamagedObjectError, WorkspaceError

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
BASES = (WorkspaceError, CatalogError, SyncError)
# run inside AWS Batch containers on the standard library alone: their errors end the job, never reach a caller
CONTAINER_SIDE = {"sync.compute.batch_entry", "sync.compute.batch_s3"}


def _import_everything() -> None:
    for pkg in (workspace, catalog, sync):
        for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not mod.name.endswith("__main__"):  # running it would start the CLI
                importlib.import_module(mod.name)


def _subclasses(cls) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def all_error_classes() -> list[type]:
    """Every class of the three hierarchies, after importing every module that could define one."""
    _import_everything()
    return sorted({c for base in BASES for c in _subclasses(base)}, key=lambda c: c.__name__)


def documented_codes() -> dict[str, int]:
    """Class name -> exit code from the class table of docs/errors.md."""
    rows = re.findall(r"^\| `(\w+)` \| `?\w+`? \| (\d+) \|", DOC.read_text(), re.MULTILINE)
    return {name: int(code) for name, code in rows}


def test_every_error_class_is_documented_with_its_exit_code():
    documented = documented_codes()
    wrong = [f"{c.__module__}.{c.__name__} (exit {c.exit_code}, docs say {documented.get(c.__name__)})"
             for c in all_error_classes() if documented.get(c.__name__) != c.exit_code]
    assert not wrong, "not in docs/errors.md with the right exit code: " + ", ".join(wrong)


def test_every_exception_of_ours_is_in_the_hierarchy():
    _import_everything()
    outside = []
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] not in ("workspace", "catalog", "sync") or name in CONTAINER_SIDE:
            continue
        for obj in vars(mod).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name
                    and not issubclass(obj, BASES)):
                outside.append(f"{name}.{obj.__name__}")
    assert not outside, f"exceptions outside WorkspaceError/CatalogError/SyncError: {outside}"


def test_the_error_boundary_maps_every_class_to_its_code():
    for cls in all_error_classes():
        assert error_exit_code(cls.__new__(cls)) == cls.exit_code, cls
    assert error_exit_code(ValueError("a bug")) is None  # not ours: the traceback shows


def test_damaged_store_objects_are_damaged_object_errors():
    from workspace.objects.packs import PackError
    from workspace.objects.store import DamagedObject

    assert issubclass(DamagedObject, DamagedObjectError) and issubclass(PackError, DamagedObjectError)
    assert error_exit_code(DamagedObject("chunk x is damaged")) == 6
    assert error_exit_code(PackError("not a ws pack")) == 6


def test_push_from_a_store_missing_a_pack_exits_6(ws, tmp_path, run_ws):
    """A local pack gone from disk is damage (exit 6), not a remote failure (exit 10)."""
    write(ws.root, "a.bin", b"a" * 200_000)
    write(ws.root, "b.bin", b"b" * 200_000)
    ws.commit("both in one pack")
    (ws.root / "b.bin").unlink()
    ws.commit("only a: the release needs part of the pack")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.close()
    for pack in (ws.root / ".ws/objects/packs").rglob("*.pack"):
        pack.unlink()
    proc = run_ws(ws.root, "push", "origin")
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.startswith("ws: error: ") and "missing" in proc.stderr


def test_every_exit_code_in_use_has_a_row_in_the_code_table():
    table = DOC.read_text().split("## Every error class")[0]
    codes = {c.exit_code for c in all_error_classes()}
    missing = [code for code in sorted(codes) if not re.search(rf"^\| {code} \|", table, re.MULTILINE)]
    assert not missing, f"exit codes missing from the table of docs/errors.md: {missing}"


def test_fsck_fails_on_a_damaged_entry_header(ws, run_ws):
    """A pack whose entry header is damaged (footer intact) is damage: exit 6, not 'ok'."""
    from workspace.objects import packs

    write(ws.root, "a.bin", bytes(range(256)) * 1200)
    write(ws.root, "b.bin", bytes(reversed(range(256))) * 1200)
    ws.commit("two chunks in one pack")
    ws.close()
    [pack] = data_packs(ws.store)
    second = packs.read_index(pack)[1]
    with open(pack, "r+b") as f:
        f.seek(second.offset - packs.ENTRY.size)
        f.write(b"XX")  # the entry's magic: the walk stops here
    proc = run_ws(ws.root, "fsck")
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "problem:" in proc.stderr


def test_a_bare_full_disk_or_read_only_file_system_is_one_line_not_a_traceback():
    """The CLI's net for a write no layer named: ENOSPC/EDQUOT exit 13, EROFS exit 12."""
    import errno

    from workspace.cli.errors import error_message

    full = OSError(errno.ENOSPC, "No space left on device", "/w/x")
    assert error_exit_code(full) == 13 and "no space left" in error_message(full)
    assert error_exit_code(OSError(errno.EDQUOT, "Disk quota exceeded", "/w/x")) == 13
    assert error_exit_code(OSError(errno.EROFS, "Read-only file system", "/w/x")) == 12
    assert error_exit_code(OSError(errno.EIO, "Input/output error")) is None  # still a traceback: unexpected
