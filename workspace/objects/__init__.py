"""Content storage: content-defined chunking, the pack format, the local store."""
