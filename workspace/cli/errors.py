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


def error_line(exc: BaseException) -> str:
    """The one line an error of ours becomes on stderr; a URL in it never shows its userinfo."""
    from workspace.api import redact_secrets

    return f"ws: error: {redact_secrets(error_message(exc))}\n"


def redact_exception(exc: BaseException | None) -> None:
    """Hide URL userinfo in a bug's exception (and those it chains) before Python prints its traceback.

    A library below us (fsspec, s3fs, botocore) may echo a URL in its message;
    ws refuses URLs with credentials, and this is the last line of defence.
    """
    from workspace.api import redact_secrets

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        try:
            exc.args = tuple(redact_secrets(a) if isinstance(a, str) else a for a in exc.args)
            if isinstance(exc, OSError):
                for attr in ("strerror", "filename", "filename2"):
                    if isinstance(getattr(exc, attr, None), str):
                        setattr(exc, attr, redact_secrets(getattr(exc, attr)))
        except (AttributeError, TypeError):  # an exception type with read-only args: leave it
            pass
        exc = exc.__cause__ or exc.__context__


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
            redact_exception(exc)
            raise
        sys.stderr.write(error_line(exc))
        return code
