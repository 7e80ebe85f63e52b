"""Tables for jobs and workflows (filled in by the jobs work)."""
