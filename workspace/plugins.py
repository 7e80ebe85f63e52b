"""Registers the upper layers' providers with :mod:`workspace.hooks`.

Imported lazily by the hooks, so each module named here must import cheaply
(standard library and ``catalog`` only): it is on the ``ws status`` path.
"""

import importlib

for _name in ("workspace.release_hooks", "sync.remote_status"):
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name != _name:
            raise
