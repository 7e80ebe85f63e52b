"""Maintenance of the local store: ``ws fsck`` (verify everything) and ``ws gc`` (reclaim pack space).

fsck re-reads every pack and checks every chunk hash and catalog reference;
gc deletes unreferenced packs and rewrites mostly-garbage ones. The SQL they
need lives in :mod:`catalog` (objects, history, releases).
"""
