"""Crash points for tests of crash safety.

``checkpoint(name)`` kills the process with SIGKILL when the environment
variable ``WS_CRASH_AT`` equals ``name``: the tests use it to stop a real
``ws`` at an exact step of a write (the same effect as kill -9 there). It costs
one dictionary lookup otherwise.
"""

import os
import signal


def checkpoint(name: str) -> None:
    """Die here, like kill -9, when WS_CRASH_AT names this point."""
    if os.environ.get("WS_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
