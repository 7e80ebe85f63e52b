"""History: the commit graph and refs, without the working tree.

refs (HEAD, branches, resolving ref expressions), trees (tree objects),
manifest (a commit's flat manifest, HEAD's cached one), log, read (a commit's
files and their bytes) and record (the one transaction that records a commit).
Everything here takes a :class:`~catalog.db.Catalog` or a
:class:`~workspace.repo.Repo`; nothing reads the working tree.
"""
