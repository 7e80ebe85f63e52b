"""Secrets in URLs: refused wherever ws takes a URL, and hidden wherever it shows one.

A URL's userinfo (``https://user:password@host``, ``s3://KEY:SECRET@bucket``,
``sftp://user@host``) is a secret in the wrong place: a remote's URL is stored
in ``.ws/config.toml`` and printed by ``ws remote list``, ``ws status`` and
error messages. So :func:`check_no_credentials` refuses any URL that has one
(``ws remote add``, ``ws clone``, opening a remote, URL-valued options), and
:func:`redact` replaces the userinfo of every URL in a text with ``***`` (what
ws shows, and the CLI's error boundary applies it to every message).

Standard library only: ``ws status`` imports this module.
"""

from __future__ import annotations

import re
from typing import Callable

from sync.errors import SyncError

# scheme://userinfo@ : the authority ends at the first / ? # (RFC 3986); userinfo runs to its last @
# (pattern strings: re compiles and caches them on first use; ws status with a remote shows its URL
# and needs _IN_TEXT only when that URL has an @)
_USERINFO = r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@"
# in free text: any scheme://...@ whose authority holds no space or quote either
_IN_TEXT = r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s\"'<>]*@"
HIDDEN = "***"


class CredentialsInURL(SyncError):
    """A URL with credentials in it (``user:password@``): secrets go through ``ws login`` (exit 2)."""

    exit_code = 2


def has_userinfo(url: str) -> bool:
    """Whether ``url`` (or any URL of a chained ``a::b://...`` one) has a ``user[:password]@`` part."""
    return isinstance(url, str) and any(re.match(_USERINFO, part) for part in url.split("::"))


def redact(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***`` (``https://***@host/x``)."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return re.sub(_IN_TEXT, lambda m: m.group(1) + HIDDEN + "@", text)


def strip_userinfo(url: str) -> str:
    """``url`` without its userinfo (``https://user:pw@host/x`` -> ``https://host/x``), for hints."""
    return "::".join(re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1", part) for part in url.split("::"))


def check_no_credentials(url: str, hint: str, what: str = "URL") -> str:
    """``url`` unless it holds credentials; else CredentialsInURL (exit 2): one line, ``hint`` says what to do."""
    if has_userinfo(url):
        raise CredentialsInURL(f"refusing a {what} with credentials in it ({redact(url)}): secrets never go "
                               f"into .ws/ or onto the screen; {hint}")
    return url


def check_options(options: dict, hint: Callable[[str, str], str]) -> None:
    """Refuse option values that are URLs with credentials (``-o endpoint_url=http://user:pw@host``).

    ``hint(key, value)`` says what to do instead.
    """
    for key, value in options.items():
        if isinstance(value, str) and has_userinfo(value):
            check_no_credentials(value, hint(key, value), what=f"value of option '{key}'")
