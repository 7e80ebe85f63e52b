"""The SQLite catalog of a workspace.

Schema lives in :mod:`catalog.models` (SQLModel tables). Queries live in one
module per concern and run on the standard :mod:`sqlite3` module, because the
status path must not pay for importing SQLAlchemy (about 0.4 s). No other
package writes SQL.
"""

from catalog.db import Catalog
from catalog.errors import CatalogError, CatalogBusy, CatalogCorrupt

__all__ = ["Catalog", "CatalogError", "CatalogBusy", "CatalogCorrupt"]
