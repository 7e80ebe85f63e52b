"""HTTP to a PROMINENCE service for :mod:`sync.compute.prominence`: the bearer token, errors, retries.

The API URL is what PROMINENCE's own client calls ``PROMINENCE_URL``: the
service's base ending in ``/v1`` (``https://host/prominence/v1``); a URL
without the ``/v1`` gets it appended. Every call carries ``Authorization:
Bearer <token>``; downloads from the temporary storage URLs PROMINENCE hands
out for output files never do (they are presigned, and a token must not leak
to a storage host).

The token comes, in this order, from the ``token`` option, a ``token_provider``
callable, ``WS_BACKEND_<NAME>_TOKEN``, the keyring entry of the backend (service
``ws``, user ``backend:<NAME>``, a JSON object ``{"token": ...}``, the scheme
:mod:`sync.credentials` uses for remotes), and last ``PROMINENCE_TOKEN`` (set
inside PROMINENCE jobs).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable

from sync.credentials import CredentialStoreError, load_secrets
from sync.errors import BackendError

GET_RETRIES = 2  # extra tries of an idempotent request after a connection error or a 5xx/429 answer
RETRY_BACKOFF_S = 0.5


class ProminenceAuthError(BackendError):
    """PROMINENCE has no token to use, or refused the one it got (401): exit 11, like other credentials."""

    exit_code = 11


def api_url(url: str) -> str:
    """The API base (ending in ``/v1``) of a PROMINENCE URL given with or without it."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def keyring_user(backend_name: str) -> str:
    """The keyring user name holding a backend's secrets (service ``ws``)."""
    return f"backend:{backend_name}"


def token_env(backend_name: str) -> str:
    """``WS_BACKEND_<NAME>_TOKEN`` (NAME upper-cased, other characters than letters and digits as ``_``)."""
    return "WS_BACKEND_" + re.sub(r"[^A-Z0-9]", "_", backend_name.upper()) + "_TOKEN"


def token_hint(backend_name: str) -> str:
    """How to give a backend its token, for error messages."""
    return (f"run 'ws login {backend_name}' (the keyring: service 'ws', user '{keyring_user(backend_name)}') "
            f"or set {token_env(backend_name)}")


def keyring_token(backend_name: str) -> Callable[[], str]:
    """A token provider reading the environment and the keyring (see the module doc); nothing is read until called."""

    def provide() -> str:
        token = os.environ.get(token_env(backend_name))
        if token:
            return token
        try:
            token = load_secrets(keyring_user(backend_name)).get("token")
        except CredentialStoreError as exc:
            if not os.environ.get("PROMINENCE_TOKEN"):
                raise ProminenceAuthError(f"backend '{backend_name}': {exc}") from exc
        token = token or os.environ.get("PROMINENCE_TOKEN")
        if not token:
            raise ProminenceAuthError(f"backend '{backend_name}' has no PROMINENCE token; {token_hint(backend_name)}")
        return token

    return provide


class ProminenceAPI:
    """One PROMINENCE service: JSON requests with the bearer token, and plain downloads.

    Nothing is contacted (and no token read) until the first request.
    """

    def __init__(self, url: str | None, token_provider: Callable[[], str], backend_name: str,
                 timeout: float = 30.0, verify: bool | str = True, session: Any = None):
        self.url = api_url(url) if url else None
        self.backend_name = backend_name
        self.timeout = timeout
        self.verify = verify
        self._token_provider = token_provider
        self._token: str | None = None
        self._session = session
        self.requests_made = 0  # how many API requests this instance sent (tests check the one-per-poll rule)

    # -- plumbing ------------------------------------------------------------
    def _http(self):
        if self._session is None:
            import requests  # imported on first use: building a backend stays cheap

            self._session = requests.Session()
        return self._session

    def _base(self) -> str:
        if not self.url:
            raise BackendError(f"backend '{self.backend_name}' has no PROMINENCE URL (option 'url', "
                               "e.g. https://host/prominence/v1)")
        return self.url

    def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def call(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
             missing_ok: bool = False) -> Any:
        """One API request: the decoded JSON answer (text for non-JSON), or None for a 404 when ``missing_ok``.

        401 is :class:`ProminenceAuthError` (after one retry with a token read
        afresh); other refusals are BackendError with the service's ``error``.
        GET and DELETE are retried on connection errors, 429 and 5xx.
        """
        import requests

        url = self._base() + path
        tries = 1 + (GET_RETRIES if method in ("GET", "DELETE") else 0)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
            try:
                self.requests_made += 1
                resp = self._http().request(method, url, params=params, json=body, headers=headers,
                                            timeout=self.timeout, verify=self.verify)
            except requests.RequestException as exc:
                if attempt < tries:
                    time.sleep(RETRY_BACKOFF_S * attempt)  # a real network: back off before trying again
                    continue
                raise BackendError(f"cannot reach PROMINENCE at {self.url}: {_short(exc)}") from exc
            if resp.status_code == 401 and not refreshed:
                self._token, refreshed = None, True  # maybe renewed meanwhile (ws login, a new env)
                attempt -= 1
                continue
            if (resp.status_code == 429 or resp.status_code >= 500) and attempt < tries:
                time.sleep(RETRY_BACKOFF_S * attempt)
                continue
            return self._answer(resp, method, path, missing_ok)

    def _answer(self, resp, method: str, path: str, missing_ok: bool) -> Any:
        code = resp.status_code
        if code == 401:
            raise ProminenceAuthError(f"PROMINENCE at {self.url} rejected the token of backend "
                                      f"'{self.backend_name}' (401); {token_hint(self.backend_name)}")
        if code == 404 and missing_ok:
            return None
        if code >= 400:
            raise BackendError(f"PROMINENCE refused {method} {path} ({code}): {_error_text(resp)}")
        if "json" in resp.headers.get("Content-Type", ""):
            try:
                return resp.json()
            except ValueError as exc:
                raise BackendError(f"PROMINENCE answered {method} {path} with broken JSON: {exc}") from None
        return resp.text

    def _bearer(self) -> str:
        if self._token is None:
            self._token = self._token_provider()
        return self._token

    def download(self, url: str, dest: str) -> int:
        """Stream ``url`` (a presigned storage URL: no token is sent) into the file ``dest``; its size."""
        import requests

        try:
            with self._http().get(url, stream=True, timeout=self.timeout, verify=self.verify) as resp:
                if resp.status_code >= 400:
                    raise BackendError(f"cannot download {_strip_query(url)} ({resp.status_code}): "
                                       f"{_error_text(resp)}")
                size = 0
                with open(dest, "wb") as out:
                    for block in resp.iter_content(1 << 20):
                        out.write(block)
                        size += len(block)
                return size
        except requests.RequestException as exc:
            raise BackendError(f"cannot download {_strip_query(url)}: {_short(exc)}") from exc


def _error_text(resp) -> str:
    """The ``error`` of a PROMINENCE error answer, else the start of its body."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    text = (resp.text or "").strip().replace("\n", " ")
    return text[:200] or resp.reason or "no detail"


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]  # presigned URLs carry signatures: keep them out of messages


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:300]
