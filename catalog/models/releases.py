"""Tables for releases and remotes (filled in by the releases/remotes work)."""
