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


def run_guarded(fn) -> int:
    """Run a fast-path command: library errors become one line and their exit code."""
    import sys

    try:
        return fn()
    except KeyboardInterrupt:
        sys.stderr.write("ws: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0  # `ws ... --json | head` is fine
    except Exception as exc:
        code = error_exit_code(exc)
        if code is None:
            raise
        sys.stderr.write(f"ws: error: {exc}\n")
        return code
