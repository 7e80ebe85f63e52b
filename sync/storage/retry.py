"""A backend wrapper that retries transient failures with exponential backoff.

It has the same protocol as the backend it wraps, so callers cannot tell the
difference. Only :class:`~sync.errors.TransientError` is retried: a missing
key, an existing key or refused credentials will not get better by waiting.
"""

from __future__ import annotations

import random
import time

from sync.errors import TransientError
from sync.storage.base import CAPABILITIES, ObjectInfo, Payload


class RetryBackend:
    """Retries each operation up to ``attempts`` times on TransientError."""

    def __init__(self, inner, attempts: int = 4, base_delay: float = 0.2, max_delay: float = 5.0):
        self.inner = inner
        self.url = inner.url
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __getattr__(self, name: str):
        """The wrapped backend's optional capabilities (base.CAPABILITIES); methods are retried like the rest."""
        if name not in CAPABILITIES:
            raise AttributeError(name)
        value = getattr(self.inner, name)  # AttributeError when it lacks it: isinstance/hasattr stay honest
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._retry(value, *args, **kwargs)

    def _retry(self, fn, *args, **kwargs):
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(*args, **kwargs)
            except TransientError:
                if attempt == self.attempts:
                    raise
                # full jitter spreads the retries of parallel uploads apart
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                time.sleep(random.uniform(0, delay))

    def stat(self, key: str) -> ObjectInfo | None:
        """As the wrapped backend, retried."""
        return self._retry(self.inner.stat, key)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """As the wrapped backend, retried."""
        return self._retry(self.inner.get, key, start, end)

    def get_file(self, key: str, local_path: str) -> int:
        """As the wrapped backend, retried."""
        return self._retry(self.inner.get_file, key, local_path)

    def put(self, key: str, data: Payload, exclusive: bool = False) -> None:
        """As the wrapped backend, retried (a create-only put that raced itself stays ObjectExists)."""
        return self._retry(self.inner.put, key, data, exclusive)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """As the wrapped backend, retried."""
        return self._retry(self.inner.list, prefix)

    def delete(self, key: str) -> None:
        """As the wrapped backend, retried."""
        return self._retry(self.inner.delete, key)
