"""Mapping library errors to exit codes (docs/errors.md); shared by the Typer app and the fast paths."""

from __future__ import annotations

EXIT_INTERRUPTED = 130


def error_exit_code(exc: BaseException) -> int | None:
    """The exit code for one of our errors, or None for anything else (a bug: let it show)."""
    module = type(exc).__module__.split(".")[0]
    if module not in ("workspace", "catalog", "sync"):
        return None
    code = getattr(exc, "exit_code", None)
    if code is None:
        from catalog.errors import CatalogBusy

        code = 7 if isinstance(exc, CatalogBusy) else 10
    return int(code)
