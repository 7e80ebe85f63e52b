"""Releases: immutable, semver-versioned snapshots of (part of) a commit, and exchanging them with remotes.

versions (semver and version expressions), mapping (which files a release
takes), records (Release, ReleaseFile, validating remote records), collection
(``ws.releases``: create, list, get, resolve, import) and exchange (``ws push``,
``ws pull``, ``ws clone``, ``ws fsck --remote``, listing a remote's releases),
which drives the engines of :mod:`sync`.

Kept free of imports, so importing one module does not load the others.
"""
