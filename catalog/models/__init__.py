"""Every SQLModel table of the catalog; importing this registers them all."""

from catalog.models.core import (  # noqa: F401
    ChunkRow,
    CommitRow,
    FileRow,
    HeadManifestRow,
    MetaRow,
    PackRow,
    RefRow,
    StatCacheRow,
    StatusSnapshotRow,
    TreeRow,
)
from catalog.models import releases, jobs  # noqa: F401,E402
from catalog.models import remotes  # noqa: F401,E402  (remotes: what each remote holds)
