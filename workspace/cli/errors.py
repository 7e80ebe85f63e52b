"""Mapping library errors to exit codes (docs/errors.md); shared by the Typer app and the fast paths."""

from __future__ import annotations

EXIT_INTERRUPTED = 130


def error_exit_code(exc: BaseException) -> int | None:
    """The exit code of one of our errors, or None for anything else (a bug: let it show).

    Every error class of ws derives from one of the three package bases
    (``workspace.api.error_bases()``) and carries its ``exit_code``; a test checks
    that no exception class of ours stands outside them and that each is
    documented in docs/errors.md. The bases are checked, not any ``exit_code``
    attribute: click's own Exit has one too, and must pass through untouched.
    """
    from workspace.api import as_library_error, error_bases

    exc = as_library_error(exc)  # a full disk or a read-only file system that no layer named
    if isinstance(exc, error_bases()):
        return int(exc.exit_code)
    return None


def error_message(exc: BaseException) -> str:
    """The one line printed for an error :func:`error_exit_code` maps (after ``ws: error: ``)."""
    from workspace.api import as_library_error

    return str(as_library_error(exc))


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
        sys.stderr.write(f"ws: error: {error_message(exc)}\n")
        return code
